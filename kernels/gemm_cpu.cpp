// OpenBLAS is opened at run time (dlopen), not linked: OpenBLAS 0.3.21 reads
// OPENBLAS_CORETYPE in its load-time constructor, and on CPUs newer than it
// knows (seen: a Xeon with AVX-512 BF16) its DYNAMIC_ARCH detection falls back
// to the SSE3 "Prescott" kernels, a quarter of the speed of its AVX-512 ones.
// Opening it ourselves lets us name the kernel set from the CPU's features
// first — only when the user has not set OPENBLAS_CORETYPE. The OpenMP build
// of OpenBLAS is preferred: it shares libgomp's thread pool with our own
// OpenMP loops, where the pthread build's pool and libgomp's spinning threads
// fight over the cores (measured: 1.5-2x slower training steps on 2 cores).
#include "kernels/gemm_cpu.hpp"

#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/rounding.hpp"

namespace evoplast::kernels::cpu {
namespace {

// CBLAS enums, as cblas.h defines them.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                          int, float, float*, int);
using dgemm_fn = void (*)(int, int, int, int, int, int, double, const double*, int, const double*,
                          int, double, double*, int);
using set_threads_fn = void (*)(int);
using corename_fn = char* (*)();

struct OpenBlas {
  sgemm_fn sgemm = nullptr;
  dgemm_fn dgemm = nullptr;
  set_threads_fn set_threads = nullptr;
  corename_fn corename = nullptr;
  std::string path;             // the library opened
  std::string coretype_chosen;  // what we set, empty when the user's or OpenBLAS's own choice
};

const char* core_for_this_cpu() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return nullptr;
}

const OpenBlas& openblas() {
  static OpenBlas lib;
  static std::once_flag once;
  std::call_once(once, [] {
    if (!std::getenv("OPENBLAS_CORETYPE"))
      if (const char* core = core_for_this_cpu()) {
        setenv("OPENBLAS_CORETYPE", core, 0);
        lib.coretype_chosen = core;
      }
    void* h = nullptr;
    for (const char* name : {EVOPLAST_OPENBLAS_OPENMP_PATH, EVOPLAST_OPENBLAS_PATH, "libopenblas.so.0", "libopenblas.so"})
      if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL))) {
        lib.path = name;
        break;
      }
    if (!h)
      throw std::runtime_error("cannot load OpenBLAS (libopenblas.so.0): install libopenblas0 "
                               "(scripts/setup.sh does)");
    lib.sgemm = reinterpret_cast<sgemm_fn>(dlsym(h, "cblas_sgemm"));
    lib.dgemm = reinterpret_cast<dgemm_fn>(dlsym(h, "cblas_dgemm"));
    lib.set_threads = reinterpret_cast<set_threads_fn>(dlsym(h, "openblas_set_num_threads"));
    lib.corename = reinterpret_cast<corename_fn>(dlsym(h, "openblas_get_corename"));
    if (!lib.sgemm || !lib.dgemm || !lib.set_threads)
      throw std::runtime_error("the OpenBLAS found lacks cblas_sgemm, cblas_dgemm or "
                               "openblas_set_num_threads: install Debian's libopenblas0");
    // Every call is one block of blocked_gemm. OpenBLAS's OpenMP build sets
    // libgomp's thread count to what it is given too (omp_set_num_threads):
    // ours is put back, or every OpenMP loop of ours would run on one thread.
    const int ours = omp_get_max_threads();
    lib.set_threads(1);
    omp_set_num_threads(ours);
  });
  return lib;
}

// Results that do not depend on the thread count. OpenBLAS's own threading
// splits a product by the number of threads, and its sums then round
// differently (seen: 1 and 2 threads differed in a third of the elements of a
// 64×32×784 product), so a run's records would depend on the machine's cores
// and on an MPI rank's share of them. Here C is cut into blocks of a fixed
// size — rows, or columns when it has fewer rows than columns —, each block is
// one single-threaded OpenBLAS call, and our OpenMP threads share the blocks.
// OpenBLAS's OpenMP build runs a call made outside an active parallel region
// on libgomp's thread count, whatever openblas_set_num_threads said: a single
// block (or a single thread of ours) runs with that count at 1.
constexpr int kBlock = 128;

template <typename T, typename Call>
void blocked_gemm(Call call, bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
                  int ldb, T beta, T* C, int ldc) {
  const int oa = ta ? kTrans : kNoTrans, ob = tb ? kTrans : kNoTrans;
  const bool by_rows = M >= N;
  const int extent = by_rows ? M : N;
  const int blocks = (extent + kBlock - 1) / kBlock;
  const auto block = [&](int b) {
    const int lo = b * kBlock, n = extent - lo < kBlock ? extent - lo : kBlock;
    if (by_rows)
      call(kRowMajor, oa, ob, n, N, K, alpha, ta ? A + lo : A + std::size_t(lo) * lda, lda, B, ldb, beta,
           C + std::size_t(lo) * ldc, ldc);
    else
      call(kRowMajor, oa, ob, M, n, K, alpha, A, lda, tb ? B + std::size_t(lo) * ldb : B + lo, ldb, beta, C + lo,
           ldc);
  };
  const int threads = omp_get_max_threads();
  if (blocks == 1 || threads == 1 || omp_in_parallel()) {
    omp_set_num_threads(1);
    for (int b = 0; b < blocks; ++b) block(b);
    omp_set_num_threads(threads);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int b = 0; b < blocks; ++b) block(b);  // in an active region: each call on its thread alone
}

// ScopedOperandRounding's setting: written only outside parallel regions.
OperandRounding g_rounding = OperandRounding::none;

// The rows × cols matrix at `from` (leading dimension ld), each element
// rounded as r says, packed (leading dimension cols) into `to`.
void round_matrix(OperandRounding r, const float* from, int rows, int cols, int ld, std::vector<float>& to) {
  to.resize(std::size_t(rows) * cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) to[std::size_t(i) * cols + j] = operand_rounded(r, from[std::size_t(i) * ld + j]);
}

}  // namespace

ScopedOperandRounding::ScopedOperandRounding(OperandRounding r) : before_(g_rounding) { g_rounding = r; }
ScopedOperandRounding::~ScopedOperandRounding() { g_rounding = before_; }

template <>
void gemm<float>(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  if (g_rounding == OperandRounding::none) {
    blocked_gemm(openblas().sgemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // The operands as stored (A: (M, K), or (K, M) where ta; B: (K, N), or (N, K) where tb), rounded into this
  // thread's buffers (the nets' GEMMs may run on several threads at once: for_each_net).
  thread_local std::vector<float> a, b;
  round_matrix(g_rounding, A, ta ? K : M, ta ? M : K, lda, a);
  round_matrix(g_rounding, B, tb ? N : K, tb ? K : N, ldb, b);
  const int packed_lda = std::max(ta ? M : K, 1), packed_ldb = std::max(tb ? K : N, 1);  // BLAS wants ld ≥ 1
  blocked_gemm(openblas().sgemm, ta, tb, M, N, K, alpha, a.data(), packed_lda, b.data(), packed_ldb, beta, C, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                  const double* B, int ldb, double beta, double* C, int ldc) {
  blocked_gemm(openblas().dgemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void set_cpu_threads(int threads) {
  if (threads <= 0) threads = omp_get_num_procs();
  openblas();  // loaded first: it leaves OpenBLAS on one thread a call (each a block of blocked_gemm)
  omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

void load_blas() { openblas(); }

std::string blas_description() {
  const OpenBlas& lib = openblas();
  std::string core = lib.corename ? lib.corename() : "unknown";
  const bool openmp = lib.path.find("openmp") != std::string::npos;
  return "OpenBLAS " + std::string(openmp ? "OpenMP" : "pthread") + " build, " + core +
         " kernels" + (lib.coretype_chosen.empty() ? "" : " (chosen from the CPU's features)");
}

}  // namespace evoplast::kernels::cpu
