// cuBLAS in the SIMT simulator: column-major SGEMMs run by the CPU BLAS the
// CPU backend uses (kernels/gemm_cpu.hpp, row-major: a column-major C = op(A)·op(B)
// is the row-major Cᵀ = op(B)ᵀ·op(A)ᵀ), queued in stream order. Every
// matrix's extent, over the whole batch, must lie in one device allocation.
#include <cublas_v2.h>

#include <string>

#include "device.hpp"
#include "kernels/gemm_cpu.hpp"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

// Elements spanned by `batch` column-major rows×cols matrices (leading dim ld, stride apart).
long long extent(int rows, int cols, int ld, long long stride, int batch) {
  if (rows == 0 || cols == 0 || batch == 0) return 0;
  return (long long)(cols - 1) * ld + rows + (long long)(batch - 1) * stride;
}

cublasStatus_t invalid(const std::string& why) {
  simt::device::refuse(cudaErrorInvalidValue, "cublasSgemm: " + why);
  std::fprintf(stderr, "simt: cublasSgemm: %s\n", why.c_str());
  return CUBLAS_STATUS_INVALID_VALUE;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t) {
  return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, std::size_t bytes) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes && !simt::device::is_device_range(workspace, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;  // the stand-in needs no workspace
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m,
                                         int n, int k, const float* alpha, const float* A, int lda, long long strideA,
                                         const float* B, int ldb, long long strideB, const float* beta, float* C,
                                         int ldc, long long strideC, int batch) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (simt::device::sticky() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (m < 0 || n < 0 || k < 0 || batch < 0) return invalid("negative size");
  const bool tA = ta == CUBLAS_OP_T, tB = tb == CUBLAS_OP_T;
  const int a_rows = tA ? k : m, a_cols = tA ? m : k, b_rows = tB ? n : k, b_cols = tB ? k : n;
  if (lda < std::max(1, a_rows)) return invalid("lda " + std::to_string(lda) + " < " + std::to_string(a_rows));
  if (ldb < std::max(1, b_rows)) return invalid("ldb " + std::to_string(ldb) + " < " + std::to_string(b_rows));
  if (ldc < std::max(1, m)) return invalid("ldc " + std::to_string(ldc) + " < " + std::to_string(m));
  auto inside = [&](const float* p, long long elems) {
    return elems == 0 || simt::device::is_device_range(p, std::size_t(elems) * sizeof(float));
  };
  if (!inside(A, extent(a_rows, a_cols, lda, strideA, batch)))
    return invalid("A's " + std::to_string(batch) + " matrices run outside its device allocation");
  if (!inside(B, extent(b_rows, b_cols, ldb, strideB, batch)))
    return invalid("B's " + std::to_string(batch) + " matrices run outside its device allocation");
  if (!inside(C, extent(m, n, ldc, strideC, batch)))
    return invalid("C's " + std::to_string(batch) + " matrices run outside its device allocation");
  const float a = *alpha, b = *beta;  // host scalars, read at the call as cuBLAS does
  if (simt::device::enqueue(handle->stream, "kernel cublasSgemmStridedBatched", [=] {
    for (int i = 0; i < batch; ++i)
      evoplast::kernels::cpu::gemm<float>(tB, tA, n, m, k, a, B + i * strideB, ldb, A + i * strideA, lda, b,
                                          C + i * strideC, ldc);
      }) != cudaSuccess)
    return CUBLAS_STATUS_EXECUTION_FAILED;
  return CUBLAS_STATUS_SUCCESS;
}

// cuBLAS picks its kernel by the call and the problem's size, so a plain
// SGEMM need not sum as the same matrices inside a batched call: on an H200
// (2026-12-04) a net trained alone through cublasSgemm lost other bits than
// the same net among 6 through cublasSgemmStridedBatched. The stand-in sums
// a plain SGEMM's k in two halves (as a split-k kernel would), so code that
// expects the batched call's bits from it shows here too.
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  if (k < 2) return cublasSgemmStridedBatched(handle, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
  // Column-major: op(A) is m×k and op(B) k×n; the first h of k start at the same place, the rest h columns of
  // op(A) (h·lda elements on, or h when transposed) and h rows of op(B) (h, or h·ldb when transposed) further.
  const int h = k / 2;
  const long long a_rest = ta == CUBLAS_OP_T ? h : (long long)h * lda;
  const long long b_rest = tb == CUBLAS_OP_T ? (long long)h * ldb : h;
  const float one = 1.0f;
  if (const cublasStatus_t s =
          cublasSgemmStridedBatched(handle, ta, tb, m, n, h, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1))
    return s;
  return cublasSgemmStridedBatched(handle, ta, tb, m, n, k - h, alpha, A + a_rest, lda, 0, B + b_rest, ldb, 0, &one,
                                   C, ldc, 0, 1);
}
