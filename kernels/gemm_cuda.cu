// Row-major strided-batched GEMM, selectable at run time:
//   cublas — the vendor yardstick (the row-major C = op(A)·op(B) is the
//            column-major Cᵀ = op(B)ᵀ·op(A)ᵀ);
//   tiled  — ours (kernels/gemm_tile.cuh): 64×64 output tiles, 16-deep k slices
//            staged in shared memory with loads ordered for coalescing, four
//            warps of 32×32 outputs; in fp32 each lane's FMAs, on tensor cores
//            (tf32, tf32x3, bf16) 2×4 mma.sync tiles a warp.
// A tensor-core precision runs every GEMM on ours; fp32 runs them on cuBLAS
// unless tiled is chosen.
#include <cstdlib>
#include <cstring>

#include "kernels/cuda_util.cuh"
#include "kernels/gemm_plan.hpp"
#include "kernels/gemm_tile.cuh"

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
  __device__ void operator()(int m, int n, float v0, float v1) const {
    if (m >= M || n >= N) return;
    float* c = C + (long long)m * ldc + n;
    if (!as_float2(c, n + 1 < N)) {
      (*this)(m, n, v0);
      (*this)(m, n + 1, v1);
      return;
    }
    float2 out{alpha * v0, alpha * v1};
    if (beta != 0.0f) {  // as the single store sums
      const float2 old = load_float2(c);
      out = float2{alpha * v0 + beta * old.x, alpha * v1 + beta * old.y};
    }
    store_float2(c, out.x, out.y);
  }
};

// The layouts are template arguments: ptxas then computes one layout's
// addresses (with both possible, it kept both, and spilled at 128 registers).
template <Precision kP, bool kTA, bool kTB>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    sgemm_tile(int M, int N, int K, float alpha, const float* __restrict__ A, int lda, long long sA,
               const float* __restrict__ B, int ldb, long long sB, float beta, float* __restrict__ C, int ldc,
               long long sC) {
  gemm_tile<kP>(int(blockIdx.y) * kTileM, int(blockIdx.x) * kTileN, TileExtent{M, N}, 0, K,
                StridedA{A + blockIdx.z * sA, lda, M, K, kTA}, StridedB{B + blockIdx.z * sB, ldb, K, N, kTB},
                GemmStore{C + blockIdx.z * sC, ldc, M, N, alpha, beta});
}

// launch(integral_constant<bool, ta>, integral_constant<bool, tb>): the one
// place the run-time layouts pick a kernel's template arguments.
template <class Launch>
void with_layouts(bool ta, bool tb, const Launch& launch) {
  using Yes = std::true_type;
  using No = std::false_type;
  if (ta && tb) launch(Yes{}, Yes{});
  else if (ta) launch(Yes{}, No{});
  else if (tb) launch(No{}, Yes{});
  else launch(No{}, No{});
}

// One split of the sums of `count` products: block z = g·count + b takes
// terms [g·len, (g + 1)·len) of product b (len a multiple of the slice
// depth, so no slice crosses into the next split) and writes its (M, N)
// partial sum into partial[g][b].
template <Precision kP, bool kTA, bool kTB>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    sgemm_tile_split(int M, int N, int K, int len, int count, const float* __restrict__ A, int lda, long long sA,
                     const float* __restrict__ B, int ldb, long long sB, float* __restrict__ partial) {
  const int b = int(blockIdx.z) % count, g = int(blockIdx.z) / count;
  const int k_begin = g * len, k_end = k_begin + len < K ? k_begin + len : K;
  gemm_tile<kP>(int(blockIdx.y) * kTileM, int(blockIdx.x) * kTileN, TileExtent{M, N}, k_begin, k_end,
                StridedA{A + b * sA, lda, M, K, kTA}, StridedB{B + b * sB, ldb, K, N, kTB},
                RowMajorStore{partial + (std::size_t(g) * count + b) * M * N, M, N, N});
}

// C_b = α·Σ_g partial[g][b] + β·C_b for the count products, the splits in
// order (the same bits every run); β = 0 never reads C.
__global__ void sum_gemm_splits_kernel(int splits, int count, int M, int N, const float* __restrict__ partial,
                                       float alpha, float beta, float* __restrict__ C, int ldc, long long sC) {
  const std::size_t MN = std::size_t(M) * N;
  EVOPLAST_GRID_STRIDE(i, std::size_t(count) * MN) {
    const std::size_t b = i / MN, at = i % MN;
    float acc = 0;
    for (int g = 0; g < splits; ++g) acc += partial[(std::size_t(g) * count + b) * MN + at];
    float* c = C + b * sC + (long long)(at / N) * ldc + at % N;
    *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
  }
}

// The tiled GEMM with its sums split (gemm_plan.hpp): the batch a few
// products at a time within the scratch budget, each launch's partial sums
// added into C after it.
template <Precision kP, bool kTA, bool kTB>
void sgemm_split(cudaStream_t st, Scratch& ws, int M, int N, int K, float alpha, const float* A, int lda,
                 long long sA, const float* B, int ldb, long long sB, float beta, float* C, int ldc, long long sC,
                 int batch) {
  const int splits = gemm_k_splits(M, N, K), per_launch = gemm_split_batch(M, N, K, batch);
  const int len = ((K + splits - 1) / splits + kTileK - 1) / kTileK * kTileK;
  const int used = (K + len - 1) / len;  // rounding len up may leave fewer
  float* partial = ws.floats(8, gemm_partial_floats(M, N, K, batch));
  for (int b0 = 0; b0 < batch; b0 += per_launch) {
    const int count = std::min(per_launch, batch - b0);
    const dim3 grid((N + kTileN - 1) / kTileN, (M + kTileM - 1) / kTileM, unsigned(used * count));
    EVOPLAST_LAUNCH(sgemm_tile_split<kP, kTA, kTB>, grid, kTileThreads, 0, st, M, N, K, len, count, A + b0 * sA,
                    lda, sA, B + b0 * sB, ldb, sB, partial);
    EVOPLAST_LAUNCH(sum_gemm_splits_kernel, blocks_for(std::size_t(count) * M * N), kThreads, 0, st, used, count, M,
                    N, partial, alpha, beta, C + b0 * sC, ldc, sC);
  }
}

}  // namespace

void set_gemm_precision(Precision precision) { g_precision = precision; }
Precision gemm_precision() { return g_precision; }
int tile_buffers() { return kTileBuffers; }
bool tile_copies_async() { return kAsyncTileCopies; }
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
          long long strideC, int batch, Scratch* ws) {
  if (g_precision != Precision::fp32 || g_impl == GemmImpl::tiled) {
    cudaStream_t st = nullptr;
    EVOPLAST_CUBLAS(cublasGetStream(h, &st));
    const dim3 grid((N + kTileN - 1) / kTileN, (M + kTileM - 1) / kTileM, batch);
    with_precision(g_precision, [&](auto p) {
      constexpr Precision kP = decltype(p)::value;
      with_layouts(ta, tb, [&](auto a, auto b) {
        constexpr bool kTA = decltype(a)::value, kTB = decltype(b)::value;
        if (ws && gemm_k_splits(M, N, K) > 1)
          sgemm_split<kP, kTA, kTB>(st, *ws, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                                    strideC, batch);
        else
          EVOPLAST_LAUNCH(sgemm_tile<kP, kTA, kTB>, grid, kTileThreads, 0, st, M, N, K, alpha, A, lda, strideA, B,
                          ldb, strideB, beta, C, ldc, strideC);
      });
    });
    return;
  }
  // The batched call even for one matrix: a net alone (an MPI rank's slice of one net) must get the bits it
  // gets among others, and cublasSgemm summed it otherwise on an H200 (2026-12-04).
  const cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  EVOPLAST_CUBLAS(cublasSgemmStridedBatched(h, opB, opA, N, M, K, &alpha, B, ldb, strideB, A, lda, strideA, &beta, C,
                                            ldc, strideC, batch));
}

}  // namespace evoplast::kernels::cuda
