// Row-major strided-batched GEMM on cuBLAS (column-major underneath: the
// row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ).
#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {

void gemm(Blas h, bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          long long strideA, const float* B, int ldb, long long strideB, float beta, float* C, int ldc,
          long long strideC, int batch) {
  const cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1)
    EVOPLAST_CUBLAS(cublasSgemm(h, opB, opA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
  else
    EVOPLAST_CUBLAS(cublasSgemmStridedBatched(h, opB, opA, N, M, K, &alpha, B, ldb, strideB, A, lda, strideA,
                                              &beta, C, ldc, strideC, batch));
}

}  // namespace evoplast::kernels::cuda
