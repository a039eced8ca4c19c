// Row-major strided-batched GEMM, selectable at run time:
//   cublas — the vendor yardstick (the row-major C = op(A)·op(B) is the
//            column-major Cᵀ = op(B)ᵀ·op(A)ᵀ);
//   tiled  — ours in fp32: 64×64 output tiles, 16-deep k slices staged in
//            shared memory with loads ordered for coalescing, 4×4 outputs per thread;
//   tensor — ours on tensor cores (precision tf32, tf32x3 or bf16): the same tiles
//            and staging, four warps of 32×32 outputs, each as 2×4 mma.sync
//            m16n8k8 tiles (m16n8k16 in bf16; kernels/mma.cuh).
#include <cstdlib>
#include <cstring>

#include "kernels/cuda_util.cuh"
#include "kernels/tensor_tile.cuh"

namespace evoplast::kernels::cuda {
namespace {

GemmImpl initial_impl() {
  const char* e = std::getenv("EVOPLAST_GEMM");
  return e && std::strcmp(e, "tiled") == 0 ? GemmImpl::tiled : GemmImpl::cublas;
}
GemmImpl g_impl = initial_impl();

Precision initial_precision() {
  const char* e = std::getenv("EVOPLAST_PRECISION");
  return e ? parse_precision(e).value_or(Precision::fp32) : Precision::fp32;
}
Precision g_precision = initial_precision();

constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4, kGemmThreads = (BM / TM) * (BN / TN);

__global__ void __launch_bounds__(kGemmThreads)
    sgemm_tiled(bool ta, bool tb, int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                long long sA, const float* __restrict__ B, int ldb, long long sB, float beta, float* __restrict__ C,
                int ldc, long long sC) {
  A += blockIdx.z * sA;
  B += blockIdx.z * sB;
  C += blockIdx.z * sC;
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  const int tid = threadIdx.x, tr = tid / (BN / TN), tc = tid % (BN / TN);
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  float acc[TM][TN] = {};
  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = tid; i < BK * BM; i += kGemmThreads) {
      // Consecutive threads read consecutive addresses of A in either layout.
      const int kk = ta ? i / BM : i % BK, mm = ta ? i % BM : i / BK;
      const int gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < K) ? (ta ? A[(long long)gk * lda + gm] : A[(long long)gm * lda + gk]) : 0.0f;
    }
    for (int i = tid; i < BK * BN; i += kGemmThreads) {
      const int kk = tb ? i % BK : i / BN, nn = tb ? i / BK : i % BN;
      const int gn = n0 + nn, gk = k0 + kk;
      Bs[kk][nn] = (gn < N && gk < K) ? (tb ? B[(long long)gn * ldb + gk] : B[(long long)gk * ldb + gn]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][tr * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tc * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int gm = m0 + tr * TM + i, gn = n0 + tc * TN + j;
      if (gm < M && gn < N) {
        float* c = C + (long long)gm * ldc + gn;
        *c = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *c;  // β = 0 never reads C
      }
    }
}

// C = α·op(A)·op(B) + β·C, one 64×64 tile per block; β = 0 never reads C.
struct GemmStore {
  float* C;
  int ldc, M, N;
  float alpha, beta;
  __device__ void operator()(int m, int n, float v) const {
    if (m >= M || n >= N) return;
    float* c = C + (long long)m * ldc + n;
    *c = beta == 0.0f ? alpha * v : alpha * v + beta * *c;
  }
};

template <Precision kP>
__global__ void __launch_bounds__(kTileThreads)
    sgemm_tensor(bool ta, bool tb, int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                 long long sA, const float* __restrict__ B, int ldb, long long sB, float beta,
                 float* __restrict__ C, int ldc, long long sC) {
  tensor_tile<kP>(int(blockIdx.y) * kTileM, int(blockIdx.x) * kTileN, TileExtent{M, N}, 0, K,
                      StridedA{A + blockIdx.z * sA, lda, M, K, ta}, StridedB{B + blockIdx.z * sB, ldb, K, N, tb},
                      GemmStore{C + blockIdx.z * sC, ldc, M, N, alpha, beta});
}

}  // namespace

void set_gemm_precision(Precision precision) { g_precision = precision; }
Precision gemm_precision() { return g_precision; }
std::optional<Precision> parse_precision(const char* name) {
  for (auto p : {Precision::fp32, Precision::tf32, Precision::tf32x3, Precision::bf16})
    if (std::strcmp(name, precision_name(p)) == 0) return p;
  return std::nullopt;
}
const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::tf32: return "tf32";
    case Precision::tf32x3: return "tf32x3";
    case Precision::bf16: return "bf16";
    case Precision::fp32: break;
  }
  return "fp32";
}

void set_gemm_impl(GemmImpl impl) { g_impl = impl; }
GemmImpl gemm_impl() { return g_impl; }

void gemm(Blas h, bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          long long strideA, const float* B, int ldb, long long strideB, float beta, float* C, int ldc,
          long long strideC, int batch) {
  if (g_precision != Precision::fp32) {
    cudaStream_t st = nullptr;
    EVOPLAST_CUBLAS(cublasGetStream(h, &st));
    const dim3 grid((N + kTileN - 1) / kTileN, (M + kTileM - 1) / kTileM, batch);
    with_tensor_precision(g_precision, [&](auto p) {
      EVOPLAST_LAUNCH(sgemm_tensor<decltype(p)::value>, grid, kTileThreads, 0, st, ta, tb, M, N, K, alpha, A, lda,
                      strideA, B, ldb, strideB, beta, C, ldc, strideC);
    });
    return;
  }
  if (g_impl == GemmImpl::tiled) {
    cudaStream_t st = nullptr;
    EVOPLAST_CUBLAS(cublasGetStream(h, &st));
    const dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM, batch);
    EVOPLAST_LAUNCH(sgemm_tiled, grid, kGemmThreads, 0, st, ta, tb, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C,
                                               ldc, strideC);
    return;
  }
  const cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1)
    EVOPLAST_CUBLAS(cublasSgemm(h, opB, opA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
  else
    EVOPLAST_CUBLAS(cublasSgemmStridedBatched(h, opB, opA, N, M, K, &alpha, B, ldb, strideB, A, lda, strideA,
                                              &beta, C, ldc, strideC, batch));
}

}  // namespace evoplast::kernels::cuda
