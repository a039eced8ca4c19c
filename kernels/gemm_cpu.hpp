// Row-major GEMM on the CPU through OpenBLAS, for float and double (the tests
// run the same kernels in double for finite differences).
#pragma once
#include <omp.h>

#include <string>

#include "kernels/rounding.hpp"

namespace evoplast::kernels::cpu {

// C (M, N) = alpha · op(A) · op(B) + beta · C; op(A) is (M, K), op(B) is (K, N).
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
          const T* B, int ldb, T beta, T* C, int ldc);

// Makes every gemm<float> of the process, while it lives, round its
// operands as r says (the setting before it put back at its end): not at
// all (fp32, the reference), or as a GPU's tensor cores round theirs
// (kernels/rounding.hpp), which emulates tf32 or bf16 on the CPU: products
// of rounded operands (2^-11 of each in tf32, 2^-8 in bf16), summed in fp32
// rounded to nearest. The tensor core's own summation is not emulated: it
// aligns the addends to the largest and cuts them toward zero, so a long
// sum chained through its accumulator drifts toward zero (~1e-3 of a conv
// weight gradient's 7 000 products on an H200; tests/simt/warp.cpp models
// it). C (beta's part of it) is not rounded, as a tile kernel's
// accumulator and epilogue are not; gemm<double> never rounds. The rounded
// copies stay in each thread's buffers, as large as the largest operands
// it rounded (a conv's chunked patch matrix at most: a chunk's scratch again).
// Process-wide, as set_cpu_threads is (OpenMP's threads read it): one
// backend's call sets it at a time (engine/cpu_backend.cpp).
class ScopedOperandRounding {
 public:
  explicit ScopedOperandRounding(OperandRounding r);
  ~ScopedOperandRounding();
  ScopedOperandRounding(const ScopedOperandRounding&) = delete;
  ScopedOperandRounding& operator=(const ScopedOperandRounding&) = delete;

 private:
  OperandRounding before_;
};

// Threads the CPU kernels may use (OpenMP loops and OpenBLAS); 0 = all cores.
void set_cpu_threads(int threads);
int cpu_threads();

// Loads OpenBLAS now (it throws if it cannot), so that no GEMM first loads it
// inside a parallel region, where a throw would end the program.
void load_blas();

// body(p) for every net p ∈ [0, P), whose GEMMs take about macs_per_net
// multiply-adds: the nets shared among the threads where there are at least
// as many as threads and each net's products are small, each net's GEMMs then
// on its thread alone (a population's small GEMMs, each split between
// threads, spent their time in the split: MLP 2×400 at P = 16, 33 k → 48 k
// network-images/s on 2 cores); else one net after another, each GEMM's
// blocks shared (large products share their operands in cache that way:
// MLP 2000×1 and the CNN's dense layer were 5–8% slower shared by net).
// The results are the same bits either way (gemm's fixed blocks).
constexpr double kSmallNetMacs = 1 << 25;
template <class Body>
void for_each_net(int P, double macs_per_net, Body body) {
  if (P >= 2 && P >= omp_get_max_threads() && macs_per_net <= kSmallNetMacs && !omp_in_parallel()) {
    load_blas();
#pragma omp parallel for schedule(static)
    for (int p = 0; p < P; ++p) body(p);
  } else {
    for (int p = 0; p < P; ++p) body(p);
  }
}

// Which BLAS and kernel set runs the GEMMs, for logs (e.g. "OpenBLAS SkylakeX kernels").
std::string blas_description();

}  // namespace evoplast::kernels::cpu
