// One 64×64 output tile of C = A·B, for any operand layout and at any
// precision: the caller's loaders fill the shared A and B tiles (16-deep k
// slices, zeros outside the matrices; the next slice's loads in flight while
// the warps multiply this one), and its store takes each finished C(m, n).
// 128 threads, four warps in 2 × 2, each warp 32×32 outputs as 2 × 4 m16n8
// tiles: on tensor cores as mma.sync m16n8k8 (m16n8k16 in bf16;
// kernels/mma.cuh), or in fp32 by each lane's FMAs over the outputs the same
// fragment layout gives it. Used by the GEMM kernel (strided operands), the
// implicit-GEMM convolution (B gathered from the image as it is loaded: no
// im2col matrix in global memory) and the fused steps' epilogues, so every
// one of them runs at every precision.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/async_copy.cuh"
#include "kernels/mma.cuh"

namespace evoplast::kernels::cuda {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kTileThreads = 128;

// Shared tile sets the slices take turns in (for_each_slice): 3, two
// slices' loads in flight while the warps multiply a third (the loads on
// tensor cores take longer than a slice's mmas: one slice ahead, as from
// 2026-12-05 to 12-07, left conv2's forward at 7% of an H200's TF32 GEMM).
// 2 keeps one slice in flight, 1 (load, wait, multiply, wait) none: CMake's
// EVOPLAST_TILE_BUFFERS builds them, under the same launch bounds, only so
// that one GPU call can time what the sets buy (bench/pack-gpu-build.sh
// builds bench_kernels each way, bench/gpu-check.sh runs them side by side).
#ifdef EVOPLAST_TILE_BUFFERS
constexpr int kTileBuffers = EVOPLAST_TILE_BUFFERS;
#else
constexpr int kTileBuffers = kDefaultTileBuffers;
#endif
static_assert(kTileBuffers >= 1 && kTileBuffers <= 3, "EVOPLAST_TILE_BUFFERS is 1, 2 or 3");

// Whether a copying loader's elements travel by cp.async (the default) or,
// where CMake's EVOPLAST_TILE_COPIES is OFF, through registers as a
// computing loader's do (see TileShare): a build with no cp.async at all,
// to fall back on should it misbehave on a card, and to time what it buys
// (with 2 sets, the loop of 2026-12-05 to 12-07, under today's bounds).
#ifdef EVOPLAST_TILE_COPIES
constexpr bool kAsyncTileCopies = EVOPLAST_TILE_COPIES;
#else
constexpr bool kAsyncTileCopies = true;
#endif

// The tile kernels' __launch_bounds__: 4 blocks an SM (at most 128
// registers a thread; 16 warps to hide what the slices in flight do not;
// three tile sets, 29 KiB, are 117 KiB of an SM's 228; 133 with a conv's
// 4 KiB patch-row table). Left to itself
// ptxas kept every share's addresses live across the slices, up to 242
// registers (2 blocks an SM) for the strided GEMM, with registers holding
// the next slice (2026-12-05 to 12-07). The dense plasticity step's two
// accumulators take 3 (168 registers, as before the next slice was held).
// With one tile set, the same bounds (at 5 or 6 blocks ptxas spilled up to
// 272 bytes; unbounded, it took up to 216 registers).
constexpr int kTileBlocksPerSM = 4, kPairTileBlocksPerSM = 3;

// Each thread's share of an A (kTileM × kTileK) or a B (kTileK × kTileN) tile.
constexpr int kPerThread = kTileM * kTileK / kTileThreads;
static_assert(kTileM * kTileK == kTileK * kTileN && kTileM * kTileK % kTileThreads == 0,
              "every thread loads the same number of elements of either tile");

// The first of the rows kTileThreads / kTileK apart that threads q·kTileK
// to q·kTileK + 15 put in an A tile, k along the lanes (q = threadIdx /
// kTileK; row-major A). A warp's two half-warps take rows 4 apart: rows of
// kTileK + 4 floats 1 apart share 4 of the 32 banks (a 2-way conflict on
// every put, seen in simt_memory_profile), 4 apart none (4·20 = 80 ≡ 16).
__device__ __forceinline__ int a_tile_row0(int q) { return q / 2 + 4 * (q % 2); }

// Where element i = thread + kTileThreads·r of a thread's share lies in a
// tile filled with the lanes down its columns (A stored (K, M), or the B of
// a weight gradient, whose long sum runs down its rows), at (m, k) of an A
// tile or (k, n) of a B tile. A warp's request is 8 m by 4 k, or 4 k by 8 n:
// 32 different banks (20·m + k of the 20-float A rows, 8·k + n of the
// 72-float B rows), where 32 m of one k, or 16 k of two n, hit each bank
// they use 4 times (seen in simt_memory_profile). A thread keeps its k (its
// row of a stored Aᵀ, its image pixel) and steps 8 along m or n.
__device__ __forceinline__ int down_a_m(int i) { return i % 8 + 8 * (i / kTileThreads); }
__device__ __forceinline__ int down_a_k(int i) { return i % 32 / 8 + 4 * (i / 32 % 4); }
__device__ __forceinline__ int down_b_k(int i) { return i % 4 + 4 * (i / 32 % 4); }
__device__ __forceinline__ int down_b_n(int i) { return i % 32 / 4 + 8 * (i / kTileThreads); }
constexpr int kDownStep = 8;  // down_a_m and down_b_n from element r to r + 1

// A loader fills its thread's share of each slice's A tile (at (m0, k0)) or
// B tile (at (k0, n0)), slice after slice in order (it may step a place it
// carries from one slice to the next); slot(tile, r) is where element r <
// kPerThread of the share goes. It reads the share in one of two ways:
// - copying (kCopies = true; the share's elements lie in global memory as
//   they are): sources(a, b, sink) calls sink(r, src) for each element r,
//   src its place or null for a 0. The elements are copied by cp.async
//   (async_copy.cuh): kTileBuffers − 1 slices in flight, no register held
//   for them (read through registers, as below, in a build without
//   kAsyncTileCopies);
// - computing (a value made from several reads as it loads: a pooled
//   error, a conv's Hebbian rows): fetch(share, a, b) reads the share into
//   registers (TileShare); gemm_tile fetches a slice before the warps
//   multiply the one before it and stores the share in its slots after, so
//   its loads are in flight during one slice's multiplications.
using TileShare = float[kPerThread];

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
// Only k in [kLo, kHi) of the slice where a half-tile's warps share it
// (gemm_tile's kHalves; bf16's one 16-deep step cannot be halved).
template <Precision kP, int kLo = 0, int kHi = kTileK>
__device__ __forceinline__ void warp_slice(float (&acc)[2][4][4], const float (&ta)[kTileM][kTileK + 4],
                                           const float (&tb)[kTileK][kTileN + 8], int wm, int wn, int g, int t) {
  static_assert(kLo % 8 == 0 && kHi % 8 == 0 && (kP != Precision::bf16 || (kLo == 0 && kHi == kTileK)),
                "a slice splits at tf32's 8-deep steps, bf16's not at all");
  if constexpr (kP == Precision::fp32) {
#pragma unroll
    for (int k = kLo; k < kHi; ++k) {
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
    // The mma's k = 2t + h + 8s (its fragment's pair h of half s) takes the
    // slice's column t + 4h + 8s, for A and B alike, so the 16 products are
    // the same, summed as the tensor core sums them. Read as the PTX layout
    // pairs them (columns 2t, 2t + 1), rows g of the 20-float A rows and
    // rows 2t of the 72-float B rows share banks: 2 passes a load (seen in
    // simt_memory_profile); lanes t apart in k, as TF32 reads them, none.
    std::uint32_t a[2][4], b[4][2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = wm + i * 16 + g;
      a[i][0] = to_bf16x2(ta[r][t], ta[r][t + 4]);
      a[i][1] = to_bf16x2(ta[r + 8][t], ta[r + 8][t + 4]);
      a[i][2] = to_bf16x2(ta[r][t + 8], ta[r][t + 12]);
      a[i][3] = to_bf16x2(ta[r + 8][t + 8], ta[r + 8][t + 12]);
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = wn + j * 8 + g;
      b[j][0] = to_bf16x2(tb[t][c], tb[t + 4][c]);
      b[j][1] = to_bf16x2(tb[t + 8][c], tb[t + 12][c]);
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) mma_bf16(acc[i][j], a[i], b[j], acc[i][j]);
  } else {
#pragma unroll
    for (int kk = kLo; kk < kHi; kk += 8) {
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
      using FragmentA = Tf32Fragment<kP == Precision::tf32x3, 4>;
      using FragmentB = Tf32Fragment<kP == Precision::tf32x3, 2>;
      const FragmentA fa[2] = {FragmentA(a[0]), FragmentA(a[1])};
      const FragmentB fb[4] = {FragmentB(b[0]), FragmentB(b[1]), FragmentB(b[2]), FragmentB(b[3])};
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_tf32_fragments<kP == Precision::tf32x3>(acc[i][j], fa[i], fb[j]);
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

// A store that also takes a thread's outputs two at a time,
// store(m, n, C(m, n), C(m, n + 1)) with n even (a fragment's neighbours),
// gets them so: a row's pair can then leave as one 8-byte access (a warp's
// request 8 rows of 8 floats, not 8 rows of every other float: half the
// requests and, in row-major memory, every sector whole).
template <class Store>
constexpr bool takes_pairs = std::is_invocable_v<const Store&, int, int, float, float>;

// Whether two neighbours, at[0] and at[1], go as one float2: the second is
// wanted and follows the first in memory (`adjacent`), and `at` is 8-byte
// aligned (an odd row length or offset leaves some pairs unaligned; they go
// as two floats).
__device__ __forceinline__ bool as_float2(const float* at, bool adjacent) {
  return adjacent && reinterpret_cast<std::uintptr_t>(at) % alignof(float2) == 0;
}
// at[0] = first, at[1] = second as one 8-byte store (`at` 8-byte aligned).
// Through a named float2: g++ (the simulator) stores a temporary's members
// one at a time, and would count two 4-byte stores.
__device__ __forceinline__ void store_float2(float* at, float first, float second) {
  const float2 pair{first, second};
  *reinterpret_cast<float2*>(at) = pair;
}
// {at[0], at[1]} as one 8-byte load (`at` 8-byte aligned).
__device__ __forceinline__ float2 load_float2(const float* at) { return *reinterpret_cast<const float2*>(at); }
// at[0] = first and, where `adjacent`, at[1] = second: one 8-byte store where
// as_float2 allows, else one float at a time.
__device__ __forceinline__ void store_pair(float* at, bool adjacent, float first, float second) {
  if (as_float2(at, adjacent)) {
    store_float2(at, first, second);
  } else {
    at[0] = first;
    if (adjacent) at[1] = second;
  }
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

// Whether a loader copies its share (kCopies; see TileShare).
template <class Load, class = void>
struct copies_share : std::false_type {};
template <class Load>
struct copies_share<Load, std::void_t<decltype(Load::kCopies)>> : std::bool_constant<Load::kCopies> {};

// Whether a copying loader names its share as runs of 4 consecutive
// elements, 16 bytes aligned in global and shared memory (kCopiesRuns):
// sources(a, b, sink) calls sink(j, src) for each run j < kRunsPerThread,
// run_slot(tile, j) is where run j goes. One 16-byte copy a run where a
// plain copying loader issues four.
template <class Load, class = void>
struct copies_runs : std::false_type {};
template <class Load>
struct copies_runs<Load, std::void_t<decltype(Load::kCopiesRuns)>> : std::bool_constant<Load::kCopiesRuns> {};
constexpr int kRunsPerThread = kPerThread / 4;

// Whether a loader's share travels by cp.async: a copying loader's, unless
// the build loads every share through registers (kAsyncTileCopies).
template <class Load>
constexpr bool copies_async = kAsyncTileCopies && copies_share<Load>::value;

// No copies in flight, where the build issues none: nothing to commit or wait for.
struct NoAsyncCopies {
  __device__ __forceinline__ void commit() {}
  template <int>
  __device__ __forceinline__ void wait() {}
};

// The copies one thread may have in flight, kOperands loaders' shares a
// slice: at most kTileBuffers − 1 slices' (one where the sets are 1).
template <int kOperands>
using TileCopies = std::conditional_t<kAsyncTileCopies,
                                      AsyncCopies<kOperands * kPerThread * (kTileBuffers > 1 ? kTileBuffers - 1 : 1)>,
                                      NoAsyncCopies>;

// Starts loading a loader's share of the slice at (a, b) into tile: a
// copying loader's copies are issued (or, without cp.async, its elements
// read into share), a computing loader's values fetched into share.
template <class Load, class Tile, class Copies>
__device__ __forceinline__ void start_share(Load& load, TileShare& share, Tile& tile, int a, int b, Copies& copies) {
  if constexpr (copies_async<Load> && copies_runs<Load>::value) {
    load.sources(a, b, [&](int j, const float* src) { copies.copy4(load.run_slot(tile, j), src); });
  } else if constexpr (copies_async<Load>) {
    load.sources(a, b, [&](int r, const float* src) { copies.copy(&load.slot(tile, r), src); });
  } else if constexpr (copies_runs<Load>::value) {
    load.sources(a, b, [&](int j, const float* src) {
      const float4 v = src ? *reinterpret_cast<const float4*>(src) : float4{0.0f, 0.0f, 0.0f, 0.0f};
      share[4 * j] = v.x, share[4 * j + 1] = v.y, share[4 * j + 2] = v.z, share[4 * j + 3] = v.w;
    });
  } else if constexpr (copies_share<Load>::value) {
    load.sources(a, b, [&](int r, const float* src) { share[r] = src ? *src : 0.0f; });
  } else {
    load.fetch(share, a, b);
  }
}
// Finishes it: the values read into share stored in their slots (copies
// land by the copies' wait).
template <class Load, class Tile>
__device__ __forceinline__ void finish_share(const Load& load, Tile& tile, const TileShare& share) {
  if constexpr (copies_runs<Load>::value && !copies_async<Load>) {
#pragma unroll
    for (int j = 0; j < kRunsPerThread; ++j)
      *reinterpret_cast<float4*>(load.run_slot(tile, j)) =
          float4{share[4 * j], share[4 * j + 1], share[4 * j + 2], share[4 * j + 3]};
  } else if constexpr (!copies_async<Load>) {
#pragma unroll
    for (int r = 0; r < kPerThread; ++r) load.slot(tile, r) = share[r];
  }
}

// The slices k0 = k_begin, k_begin + kTileK, … < k_end of a tile's sum, in
// the block's kTileBuffers shared tile sets: start(k0, set) issues slice
// k0's copies into tile set `set` and fetches its computed shares,
// finish(set) stores those, multiply(set) runs the warps' mmas on the set.
// Every thread calls it alike. With S sets, slice i + S − 1 is started
// while slice i is multiplied: each slice begins with a wait for this
// thread's copies of it and a barrier, after which the slice is whole in
// its set and every warp is done reading slice i − 1, whose set slice i +
// S − 1 then fills. One set: load, barrier, multiply, barrier. The tile
// sets are free again on return (a barrier behind the last multiply).
template <class Copies, class Start, class Finish, class Multiply>
__device__ __forceinline__ void for_each_slice(int k_begin, int k_end, Copies& copies, const Start& start,
                                               const Finish& finish, const Multiply& multiply) {
  if constexpr (kTileBuffers == 1) {
    for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
      start(k0, 0);
      copies.commit();
      finish(0);
      copies.template wait<0>();
      __syncthreads();
      multiply(0);
      __syncthreads();  // every warp has read the slice before the next overwrites it
    }
  } else {
    constexpr int S = kTileBuffers;
    const int slices = k_begin < k_end ? (k_end - k_begin + kTileK - 1) / kTileK : 0;
#pragma unroll
    for (int s = 0; s < S - 1; ++s) {
      if (s < slices) {
        start(k_begin + s * kTileK, s);
        finish(s);
      }
      copies.commit();  // a group even when empty: the waits count groups
    }
    int turn = 0, fill = S - 1;  // the sets of slice i and of slice i + S − 1
    for (int i = 0; i < slices; ++i) {
      copies.template wait<S - 2>();  // this thread's copies of slice i have landed
      __syncthreads();
      const bool next = i + S - 1 < slices;  // the same for the whole block
      if (next) start(k_begin + (i + S - 1) * kTileK, fill);
      copies.commit();
      multiply(turn);
      if (next) finish(fill);
      turn = turn + 1 == S ? 0 : turn + 1;
      fill = fill + 1 == S ? 0 : fill + 1;
    }
    __syncthreads();
  }
}

// load_a and load_b (copying or computing: see TileShare) are called by
// every thread of the block (each takes its share), slice after slice in
// order (a loader may carry its place from one to the next: they are this
// thread's copies); store(m, n, value) once
// per output inside the tile (the caller checks the bounds). The sum runs over
// k in [k_begin, k_end): all of K, or one split of a long reduction (k_begin a
// multiple of kTileK; the loaders give zeros past their K).
//
// kHalves, for a product of at most 32 rows (C.M ≤ 32, m0 = 0: conv2's
// input gradient, Cin = 32), where warps 2 and 3 would hold only rows past
// it: all four warps take rows 0–31, warps 0 and 1 the first half of each
// slice's k, warps 2 and 3 the second, and at the end 2 and 3 hand their
// sums to 0 and 1 through shared memory (the same outputs, the same
// fragment layout), which add them and store. The sum's order is fixed: the
// same bits every run. bf16 (one 16-deep mma a slice) ignores it.
template <Precision kP, bool kHalves = false, class LoadA, class LoadB, class Store>
__device__ void gemm_tile(int m0, int n0, TileExtent c, int k_begin, int k_end, LoadA load_a, LoadB load_b,
                          const Store& store) {
  constexpr bool halves = kHalves && kP != Precision::bf16;
  __shared__ GemmTiles tiles[kTileBuffers];
  WarpPlace p = warp_place();
  const bool upper = halves && threadIdx.x >= 2 * 32;  // warps 2 and 3: the slices' second halves
  if (halves) p.wm = 0;
  const bool busy = warp_has_outputs(m0, n0, c, p);  // the same for every lane of the warp
  float acc[2][4][4] = {};  // [m16 tile][n8 tile][fragment]
  TileShare va, vb;  // a computing loader's share between its fetch and its store
  TileCopies<2> copies;
  for_each_slice(
      k_begin, k_end, copies,
      [&](int k0, int set) {
        start_share(load_a, va, tiles[set].a, m0, k0, copies);
        start_share(load_b, vb, tiles[set].b, k0, n0, copies);
      },
      [&](int set) {
        finish_share(load_a, tiles[set].a, va);
        finish_share(load_b, tiles[set].b, vb);
      },
      [&](int turn) {
        if (!busy) return;
        if constexpr (!halves) warp_slice<kP>(acc, tiles[turn].a, tiles[turn].b, p.wm, p.wn, p.g, p.t);
        else if (upper) warp_slice<kP, kTileK / 2, kTileK>(acc, tiles[turn].a, tiles[turn].b, p.wm, p.wn, p.g, p.t);
        else warp_slice<kP, 0, kTileK / 2>(acc, tiles[turn].a, tiles[turn].b, p.wm, p.wn, p.g, p.t);
      });
  if constexpr (halves) {  // the tiles are free: the loop's last barrier is behind every read of them
    static_assert(2 * 32 * 32 * sizeof(float) <= sizeof(tiles), "the upper warps' sums fit in the tiles");
    // [element][lane of warps 2, 3]: a warp's lanes write one element at once into 32 banks.
    float* handed = reinterpret_cast<float*>(tiles) + int(threadIdx.x) % 64;
    const auto at = [](int i, int j, int q) { return (i * 16 + j * 4 + q) * 64; };
    if (upper) for_each_fragment(m0, n0, p, [&](int, int, int i, int j, int q) { handed[at(i, j, q)] = acc[i][j][q]; });
    __syncthreads();
    if (!upper) for_each_fragment(m0, n0, p, [&](int, int, int i, int j, int q) { acc[i][j][q] += handed[at(i, j, q)]; });
  }
  if (upper) return;  // their sums are in the lower warps' acc
  if constexpr (takes_pairs<Store>) {
    for_each_fragment(m0, n0, p, [&](int m, int n, int i, int j, int q) {
      if (q % 2 == 0) store(m, n, acc[i][j][q], acc[i][j][q + 1]);
    });
  } else {
    for_each_fragment(m0, n0, p, [&](int m, int n, int i, int j, int q) { store(m, n, acc[i][j][q]); });
  }
}

// A gemm_tile_pair store that also takes a thread's neighbouring outputs
// of both products at once, store(m, n, {first(m, n), first(m, n + 1)},
// {second(m, n), second(m, n + 1)}) with n even, gets them so (as
// takes_pairs: one 8-byte access for a row's two, where memory allows).
template <class Store>
constexpr bool takes_pair_columns = std::is_invocable_v<const Store&, int, int, float2, float2>;

// Two products with the same right operand, A1·B and A2·B, in one pass over
// B: store(m, n, first, second) once per output. For the plasticity step,
// where A1 holds the error rows and A2 the Hebbian rows of the same units.
// A product whose rows are all 0 (with_first or with_second false: the same
// for the whole block) is neither loaded nor multiplied: it is stored as
// the 0 it would sum to. The sum runs over k in [k_begin, k_end), as in
// gemm_tile; the slices take turns in the tile sets as there (for_each_slice).
template <Precision kP, class LoadA1, class LoadA2, class LoadB, class Store>
__device__ void gemm_tile_pair(int m0, int n0, TileExtent c, int k_begin, int k_end, bool with_first,
                               bool with_second, LoadA1 load_a1, LoadA2 load_a2, LoadB load_b, const Store& store) {
  __shared__ GemmTiles tiles[kTileBuffers];
  alignas(16) __shared__ float a2[kTileBuffers][kTileM][kTileK + 4];  // aligned as GemmTiles
  const WarpPlace p = warp_place();
  const bool busy = warp_has_outputs(m0, n0, c, p);
  float acc1[2][4][4] = {}, acc2[2][4][4] = {};
  if (!with_first && !with_second) k_end = k_begin;  // nothing to sum: B is not read either
  TileShare v1, v2, vb;  // computing loaders' shares between their fetch and their store
  TileCopies<3> copies;
  const auto start = [&](int k0, int set) {
    if (with_first) start_share(load_a1, v1, tiles[set].a, m0, k0, copies);
    if (with_second) start_share(load_a2, v2, a2[set], m0, k0, copies);
    start_share(load_b, vb, tiles[set].b, k0, n0, copies);
  };
  const auto finish = [&](int set) {
    if (with_first) finish_share(load_a1, tiles[set].a, v1);
    if (with_second) finish_share(load_a2, a2[set], v2);
    finish_share(load_b, tiles[set].b, vb);
  };
  for_each_slice(k_begin, k_end, copies, start, finish, [&](int turn) {
    if (!busy) return;
    if (with_first) warp_slice<kP>(acc1, tiles[turn].a, tiles[turn].b, p.wm, p.wn, p.g, p.t);
    if (with_second) warp_slice<kP>(acc2, a2[turn], tiles[turn].b, p.wm, p.wn, p.g, p.t);
  });
  if constexpr (takes_pair_columns<Store>) {
    for_each_fragment(m0, n0, p, [&](int m, int n, int i, int j, int q) {
      if (q % 2 == 0)
        store(m, n, float2{acc1[i][j][q], acc1[i][j][q + 1]}, float2{acc2[i][j][q], acc2[i][j][q + 1]});
    });
  } else {
    for_each_fragment(m0, n0, p,
                      [&](int m, int n, int i, int j, int q) { store(m, n, acc1[i][j][q], acc2[i][j][q]); });
  }
}

// sink(r, &X[row + r·step][col]) of a row-major matrix X (rows, cols;
// leading dimension ld), null outside it: one pointer stepped from element
// to element (eight addresses kept apart cost the registers of a block).
template <class Sink>
__device__ __forceinline__ void row_sources(const float* X, int ld, int rows, int cols, int row, int col, int step,
                                            const Sink& sink) {
  const float* at = X + (long long)row * ld + col;
#pragma unroll
  for (int r = 0; r < kPerThread; ++r, at += (long long)step * ld)
    sink(r, row + r * step < rows && col < cols ? at : nullptr);
}

// sink(r, &X[row][col + r·step]) of a row-major matrix X (rows, cols;
// leading dimension ld), null outside it.
template <class Sink>
__device__ __forceinline__ void column_sources(const float* X, int ld, int rows, int cols, int row, int col, int step,
                                               const Sink& sink) {
  const float* at = X + (long long)row * ld + col;
#pragma unroll
  for (int r = 0; r < kPerThread; ++r, at += step) sink(r, row < rows && col + r * step < cols ? at : nullptr);
}

// A strided matrix operand, op(M) = M or Mᵀ, as the A (rows m) or B (rows k)
// of a tile, copied: element i = thread + 128·r of the thread's share at
// (mm, kk) or (kk, nn), consecutive threads on consecutive addresses: A
// stored (M, K) within a half-warp, whose rows a_tile_row0 picks; A stored
// (K, M) in runs of 8 (down_a_m, down_a_k); B in either layout. Element r
// lies r rows of the stored matrix (8 or 2) from element 0, or (A stored
// (K, M)) 8 columns.
struct StridedA {
  static constexpr bool kCopies = true;
  const float* A;
  int lda, M, K;
  bool ta;  // A is stored (K, M)
  __device__ int mm(int i) const {
    const int q = i / kTileK % (kTileThreads / kTileK);  // A stored (M, K): i's row, by a_tile_row0
    return ta ? down_a_m(i) : a_tile_row0(q) + i / kTileThreads * (kTileThreads / kTileK);
  }
  __device__ int kk(int i) const { return ta ? down_a_k(i) : i % kTileK; }
  template <class Sink>
  __device__ void sources(int m0, int k0, const Sink& sink) const {
    const int gm = m0 + mm(int(threadIdx.x)), gk = k0 + kk(int(threadIdx.x));
    if (ta) column_sources(A, lda, K, M, gk, gm, kDownStep, sink);
    else row_sources(A, lda, M, K, gm, gk, kTileThreads / kTileK, sink);
  }
  __device__ float& slot(float (&tile)[kTileM][kTileK + 4], int r) const {
    const int i = int(threadIdx.x) + r * kTileThreads;
    return tile[mm(i)][kk(i)];
  }
};
// A stored (M, ld) row-major, 16-byte aligned, ld a multiple of kTileK and
// the columns from K to ld 0 (the conv input gradient's Wᵀ, padded for it;
// a conv forward's W where Cin·K² is a multiple of 16), copied in runs of 4 k: a slice's k0…k0 + 15 lie inside
// every row, so only the rows are bounded. Run u = thread + 128·j of the
// slice is row row_of(u / 4), k 4·(u % 4): a quarter-warp's 8 runs (one
// shared-memory pass of 16-byte stores) are rows 4 apart, 80 floats, in
// all 32 banks (rows 1 apart, 20 floats, would share 4); a warp reads 8
// rows' 64 bytes, 16 sectors where ld·4 is a multiple of 64.
struct PaddedRowsA {
  static constexpr bool kCopies = true, kCopiesRuns = true;
  const float* A;
  int ld, M;
  __device__ static int row_of(int q) { return q / 8 * 8 + a_tile_row0(q % 8); }
  template <class Sink>
  __device__ void sources(int m0, int k0, const Sink& sink) const {
#pragma unroll
    for (int j = 0; j < kRunsPerThread; ++j) {
      const int u = int(threadIdx.x) + j * kTileThreads, m = m0 + row_of(u / 4);
      sink(j, m < M ? A + (long long)m * ld + k0 + 4 * (u % 4) : nullptr);
    }
  }
  __device__ float* run_slot(float (&tile)[kTileM][kTileK + 4], int j) const {
    const int u = int(threadIdx.x) + j * kTileThreads;
    return &tile[row_of(u / 4)][4 * (u % 4)];
  }
};
static_assert(kTileM * kTileK == 4 * kRunsPerThread * kTileThreads, "PaddedRowsA: one run of 4 k a thread, twice");

// B stored (N, K): a warp's request is 8 k of 4 rows n (32-byte runs: the
// sectors of 16 k of 2 rows), 2 passes a put (8·k + n of the 72-float B
// rows: k and k + 4 share a bank) where 16 k of 2 rows took 4; only runs of
// 4 k (twice the sectors) would take 1.
struct StridedB {
  static constexpr bool kCopies = true;
  const float* B;
  int ldb, K, N;
  bool tb;  // B is stored (N, K)
  __device__ int kk(int i) const { return tb ? i % 8 + 8 * (i / 32 % 2) : i / kTileN; }
  __device__ int nn(int i) const { return tb ? i % 32 / 8 + 4 * (i / 64 % 2) + 8 * (i / kTileThreads) : i % kTileN; }
  template <class Sink>
  __device__ void sources(int k0, int n0, const Sink& sink) const {
    const int gk = k0 + kk(int(threadIdx.x)), gn = n0 + nn(int(threadIdx.x));
    if (tb) row_sources(B, ldb, N, K, gn, gk, kTileThreads / kTileK, sink);
    else row_sources(B, ldb, K, N, gk, gn, kTileThreads / kTileN, sink);
  }
  __device__ float& slot(float (&tile)[kTileK][kTileN + 8], int r) const {
    const int i = int(threadIdx.x) + r * kTileThreads;
    return tile[kk(i)][nn(i)];
  }
};

// A plain row-major store: out[m·ld + n] for m < M, n < N.
struct RowMajorStore {
  float* out;
  int M, N, ld;
  __device__ void operator()(int m, int n, float v) const {
    if (m < M && n < N) out[std::size_t(m) * ld + n] = v;
  }
  __device__ void operator()(int m, int n, float v0, float v1) const {
    if (m >= M || n >= N) return;
    store_pair(out + std::size_t(m) * ld + n, n + 1 < N, v0, v1);
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
