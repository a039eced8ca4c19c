// Row-major GEMM on the CPU through OpenBLAS, for float and double (the tests
// run the same kernels in double for finite differences).
#pragma once
#include <string>

namespace evoplast::kernels::cpu {

// C (M, N) = alpha · op(A) · op(B) + beta · C; op(A) is (M, K), op(B) is (K, N).
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
          const T* B, int ldb, T beta, T* C, int ldc);

// Threads the CPU kernels may use (OpenMP loops and OpenBLAS); 0 = all cores.
void set_cpu_threads(int threads);
int cpu_threads();

// Which BLAS and kernel set runs the GEMMs, for logs (e.g. "OpenBLAS SkylakeX kernels").
std::string blas_description();

}  // namespace evoplast::kernels::cpu
