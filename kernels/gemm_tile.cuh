// One 64×64 output tile of C = A·B, for any operand layout and at any
// precision: the caller's loaders fill the shared A and B tiles (16-deep k
// slices, zeros outside the matrices), and its store takes each finished
// C(m, n). 128 threads, four warps in 2 × 2, each warp 32×32 outputs as 2 × 4
// m16n8 tiles: on tensor cores as mma.sync m16n8k8 (m16n8k16 in bf16;
// kernels/mma.cuh), or in fp32 by each lane's FMAs over the outputs the same
// fragment layout gives it. Used by the GEMM kernel (strided operands), the
// implicit-GEMM convolution (B gathered from the image as it is loaded: no
// im2col matrix in global memory) and the fused steps' epilogues, so every
// one of them runs at every precision.
#pragma once
#include <type_traits>

#include "kernels/mma.cuh"

namespace evoplast::kernels::cuda {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kTileThreads = 128;

// Each thread's share of an A (kTileM × kTileK) or a B (kTileK × kTileN) tile.
constexpr int kPerThread = kTileM * kTileK / kTileThreads;
static_assert(kTileM * kTileK == kTileK * kTileN && kTileM * kTileK % kTileThreads == 0,
              "every thread loads the same number of elements of either tile");

// A loader's share of a tile, every value fetched before any is stored:
// v[r] = fetch(r) for r = 0…kCount−1 in turn (fetch may step a place it
// carries), then put(r, v[r]). A load is waited for only where its value is
// used, so the kCount loads are in flight together; a store after each load
// would wait out each load's latency in turn.
template <int kCount, class Fetch, class Put>
__device__ __forceinline__ void fetch_then_put(const Fetch& fetch, const Put& put) {
  float v[kCount];
#pragma unroll
  for (int r = 0; r < kCount; ++r) v[r] = fetch(r);
#pragma unroll
  for (int r = 0; r < kCount; ++r) put(r, v[r]);
}

// The shared tiles, padded so that a warp's fragment loads fall in 32
// different banks; aligned so that fp32's pairs of B values (an even column
// of a row 72 floats long) load as one 8-byte float2.
struct alignas(16) GemmTiles {
  float a[kTileM][kTileK + 4];  // A(m0 + m, k0 + k) at a[m][k]
  float b[kTileK][kTileN + 8];  // B(k0 + k, n0 + n) at b[k][n]
};

// The warp's 32×32 outputs at (wm, wn) of the tile: acc += A·B over one
// 16-deep slice in shared memory (g = lane / 4, t = lane % 4), at precision
// kP: two TF32 k-steps of 8 (one mma each, or three in split TF32), one
// bf16 k-step of 16, or (fp32) 16 fused multiply-adds per output in k order,
// each lane summing its own fragment's outputs (no warp collective). In fp32
// a lane reads 4 A values a k (8 addresses in a warp, rows 20 floats apart:
// 8 banks; ptxas loads each row's 4 k at once, the tiles being aligned) and
// 4 float2 pairs of B (4 addresses in a row, shared by the lanes of a t) for
// its 32 FMAs: no bank conflicts, and about 5 loads a k (one wavefront
// each) keep pace with the FMAs (4 warp instructions a clock on an SM, its
// shared memory one wavefront).
template <Precision kP>
__device__ __forceinline__ void warp_slice(float (&acc)[2][4][4], const float (&ta)[kTileM][kTileK + 4],
                                           const float (&tb)[kTileK][kTileN + 8], int wm, int wn, int g, int t) {
  if constexpr (kP == Precision::fp32) {
#pragma unroll
    for (int k = 0; k < kTileK; ++k) {
      float a[2][2], b[4][2];  // a[i][h]: row wm + 16i + g + 8h; b[j][h]: column wn + 8j + 2t + h
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        a[i][0] = ta[wm + i * 16 + g][k];
        a[i][1] = ta[wm + i * 16 + g + 8][k];
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 pair = *reinterpret_cast<const float2*>(&tb[k][wn + j * 8 + 2 * t]);
        b[j][0] = pair.x;
        b[j][1] = pair.y;
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int q = 0; q < 4; ++q) acc[i][j][q] = fmaf(a[i][q / 2], b[j][q % 2], acc[i][j][q]);
    }
  } else if constexpr (kP == Precision::bf16) {
    std::uint32_t a[2][4], b[4][2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = wm + i * 16 + g;
      a[i][0] = to_bf16x2(ta[r][2 * t], ta[r][2 * t + 1]);
      a[i][1] = to_bf16x2(ta[r + 8][2 * t], ta[r + 8][2 * t + 1]);
      a[i][2] = to_bf16x2(ta[r][2 * t + 8], ta[r][2 * t + 9]);
      a[i][3] = to_bf16x2(ta[r + 8][2 * t + 8], ta[r + 8][2 * t + 9]);
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = wn + j * 8 + g;
      b[j][0] = to_bf16x2(tb[2 * t][c], tb[2 * t + 1][c]);
      b[j][1] = to_bf16x2(tb[2 * t + 8][c], tb[2 * t + 9][c]);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) mma_bf16(acc[i][j], a[i], b[j], acc[i][j]);
  } else {
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 8) {
      float a[2][4], b[4][2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = wm + i * 16 + g;
        a[i][0] = ta[r][kk + t];
        a[i][1] = ta[r + 8][kk + t];
        a[i][2] = ta[r][kk + t + 4];
        a[i][3] = ta[r + 8][kk + t + 4];
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = wn + j * 8 + g;
        b[j][0] = tb[kk + t][c];
        b[j][1] = tb[kk + t + 4][c];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_fp32_operands<kP == Precision::tf32x3>(acc[i][j], a[i], b[j]);
    }
  }
}

// launch(std::integral_constant<Precision, p>{}) for the precision p: the
// one place a run-time precision picks a kernel.
template <class Launch>
void with_precision(Precision p, const Launch& launch) {
  switch (p) {
    case Precision::fp32: return launch(std::integral_constant<Precision, Precision::fp32>{});
    case Precision::tf32x3: return launch(std::integral_constant<Precision, Precision::tf32x3>{});
    case Precision::bf16: return launch(std::integral_constant<Precision, Precision::bf16>{});
    default: return launch(std::integral_constant<Precision, Precision::tf32>{});
  }
}

// Where this thread's warp and lane sit in the tile: the warp's 32×32
// outputs start at (wm, wn); g = lane / 4 and t = lane % 4 pick its fragments.
struct WarpPlace {
  int wm, wn, g, t;
};
__device__ __forceinline__ WarpPlace warp_place() {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  return {(warp / 2) * 32, (warp % 2) * 32, lane / 4, lane % 4};
}

// visit(m, n, i, j, q) for each element q of each accumulator tile [i][j]
// this thread holds, with the output (m, n) it belongs to.
template <class Visit>
__device__ __forceinline__ void for_each_fragment(int m0, int n0, const WarpPlace& p, const Visit& visit) {
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q)
        visit(m0 + p.wm + i * 16 + p.g + (q >= 2 ? 8 : 0), n0 + p.wn + j * 8 + 2 * p.t + (q & 1), i, j, q);
}

// The product C's rows and columns (M, N). A warp whose 32×32 outputs all
// lie past them (rows 32–63 where M = 32: conv1's outputs, conv2's input
// gradient; most of a 10-class head's tile) skips its mma, leaving the
// tensor cores to the warps with work; it still helps load the tiles, and
// the store drops its outputs as it drops every output past C.
struct TileExtent {
  int M, N;
};
__device__ __forceinline__ bool warp_has_outputs(int m0, int n0, TileExtent c, const WarpPlace& p) {
  return m0 + p.wm < c.M && n0 + p.wn < c.N;
}

// load_a.fill(tiles.a, m0, k0) and load_b.fill(tiles.b, k0, n0) are called by
// every thread of the block (each fills its share), slice after slice (a
// loader may carry its place from one to the next: they are this thread's
// copies); store(m, n, value) once
// per output inside the tile (the caller checks the bounds). The sum runs over
// k in [k_begin, k_end): all of K, or one split of a long reduction (k_begin a
// multiple of kTileK; the loaders give zeros past their K).
template <Precision kP, class LoadA, class LoadB, class Store>
__device__ void gemm_tile(int m0, int n0, TileExtent c, int k_begin, int k_end, LoadA load_a, LoadB load_b,
                          const Store& store) {
  __shared__ GemmTiles tiles;
  const WarpPlace p = warp_place();
  const bool busy = warp_has_outputs(m0, n0, c, p);  // the same for every lane of the warp
  float acc[2][4][4] = {};  // [m16 tile][n8 tile][fragment]
  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
    load_a.fill(tiles.a, m0, k0);
    load_b.fill(tiles.b, k0, n0);
    __syncthreads();
    if (busy) warp_slice<kP>(acc, tiles.a, tiles.b, p.wm, p.wn, p.g, p.t);
    __syncthreads();  // every warp has read the slice before it is overwritten
  }
  for_each_fragment(m0, n0, p, [&](int m, int n, int i, int j, int q) { store(m, n, acc[i][j][q]); });
}

// Two products with the same right operand, A1·B and A2·B, in one pass over
// B: store(m, n, first, second) once per output. For the plasticity step,
// where A1 holds the error rows and A2 the Hebbian rows of the same units.
// A product whose rows are all 0 (with_first or with_second false: the same
// for the whole block) is neither loaded nor multiplied: it is stored as
// the 0 it would sum to.
template <Precision kP, class LoadA1, class LoadA2, class LoadB, class Store>
__device__ void gemm_tile_pair(int m0, int n0, TileExtent c, int K, bool with_first, bool with_second,
                               LoadA1 load_a1, LoadA2 load_a2, LoadB load_b, const Store& store) {
  __shared__ GemmTiles tiles;
  alignas(16) __shared__ float a2[kTileM][kTileK + 4];  // aligned as GemmTiles
  const WarpPlace p = warp_place();
  const bool busy = warp_has_outputs(m0, n0, c, p);
  float acc1[2][4][4] = {}, acc2[2][4][4] = {};
  if (!with_first && !with_second) K = 0;  // nothing to sum: B is not read either
  for (int k0 = 0; k0 < K; k0 += kTileK) {
    if (with_first) load_a1.fill(tiles.a, m0, k0);
    if (with_second) load_a2.fill(a2, m0, k0);
    load_b.fill(tiles.b, k0, n0);
    __syncthreads();
    if (busy) {
      if (with_first) warp_slice<kP>(acc1, tiles.a, tiles.b, p.wm, p.wn, p.g, p.t);
      if (with_second) warp_slice<kP>(acc2, a2, tiles.b, p.wm, p.wn, p.g, p.t);
    }
    __syncthreads();
  }
  for_each_fragment(m0, n0, p,
                    [&](int m, int n, int i, int j, int q) { store(m, n, acc1[i][j][q], acc2[i][j][q]); });
}

// A strided matrix operand, op(M) = M or Mᵀ, as the A (rows m) or B (rows k) of a tile.
struct StridedA {
  const float* A;
  int lda, M, K;
  bool ta;  // A is stored (K, M)
  __device__ void fill(float (&tile)[kTileM][kTileK + 4], int m0, int k0) const {
    for (int i = threadIdx.x; i < kTileK * kTileM; i += kTileThreads) {
      // Consecutive threads read consecutive addresses in either layout.
      const int kk = ta ? i / kTileM : i % kTileK, mm = ta ? i % kTileM : i / kTileK;
      const int gm = m0 + mm, gk = k0 + kk;
      tile[mm][kk] = (gm < M && gk < K) ? (ta ? A[(long long)gk * lda + gm] : A[(long long)gm * lda + gk]) : 0.0f;
    }
  }
};
struct StridedB {
  const float* B;
  int ldb, K, N;
  bool tb;  // B is stored (N, K)
  __device__ void fill(float (&tile)[kTileK][kTileN + 8], int k0, int n0) const {
    for (int i = threadIdx.x; i < kTileK * kTileN; i += kTileThreads) {
      const int kk = tb ? i % kTileK : i / kTileN, nn = tb ? i / kTileK : i % kTileN;
      const int gn = n0 + nn, gk = k0 + kk;
      tile[kk][nn] = (gn < N && gk < K) ? (tb ? B[(long long)gn * ldb + gk] : B[(long long)gk * ldb + gn]) : 0.0f;
    }
  }
};

// A plain row-major store: out[m·ld + n] for m < M, n < N.
struct RowMajorStore {
  float* out;
  int M, N, ld;
  __device__ void operator()(int m, int n, float v) const {
    if (m < M && n < N) out[std::size_t(m) * ld + n] = v;
  }
};

// Each net's weights (P, per_net): its own w, or (feedback alignment) its
// fixed feedback matrix fb where use_fb[p] is set; use_fb null: w for all.
struct PickedWeights {
  const float* w;
  const float* fb;             // null where use_fb is
  const std::uint8_t* use_fb;  // (P) or null
  std::size_t per_net;
  __device__ const float* of(std::size_t p) const { return (use_fb && use_fb[p] ? fb : w) + p * per_net; }
};

}  // namespace evoplast::kernels::cuda
