// Shared by the .cu kernel files: checked launches (cuda_check.hpp), grid
// sizing, grid-stride loops, and the Thrust execution policy.
#pragma once
#include <type_traits>

#include "kernels/cuda.hpp"
#include "kernels/cuda_check.hpp"

#if defined(EVOPLAST_SIMT)
#include <thrust/system/cpp/execution_policy.h>
#else
#include <thrust/execution_policy.h>
#endif

namespace evoplast::kernels::cuda {

constexpr int kThreads = 256;
// Blocks for n elements at kThreads each, capped at max_blocks() (cuda.hpp);
// grid-stride loops cover the rest.
inline unsigned blocks_for(std::size_t n) {
  const std::size_t b = (n + kThreads - 1) / kThreads, cap = max_blocks();
  return unsigned(b < cap ? (b ? b : 1) : cap);
}

// for (i = global thread; i < n; i += grid size)
#define EVOPLAST_GRID_STRIDE(i, n)                                                     \
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += std::size_t(gridDim.x) * blockDim.x)

// Thrust algorithms on a stream. In the simulator they run on the host, after
// everything queued before them (stream order).
inline auto thrust_on(cudaStream_t stream) {
#if defined(EVOPLAST_SIMT)
  (void)stream;
  ::simt::drain();
  return thrust::cpp::par;
#else
  return thrust::cuda::par.on(stream);
#endif
}

}  // namespace evoplast::kernels::cuda

namespace evoplast::kernels::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullWarp = 0xFFFFFFFFu;  // every lane of a warp: the mask of a warp's shuffles

// The sum of v over the block (blockDim.x a power of two ≤ kThreads), returned
// to every thread; part is kThreads of __shared__ scratch, free again on return.
// Every thread of the block must call it (it holds barriers). A kernel that
// uses it calls it on every launch whatever its arguments: the simulator runs
// a kernel whose first launch reached no barrier without fibers from then on.
//
// A block of whole warps sums each warp by shuffles (lane 0 ends with its 32
// lanes summed as a tree), leaves the warps' sums in part and adds them in
// warp order in every thread: two barriers, where a tree in shared memory
// takes log2(blockDim) + 1 (nine at 256 threads). A block smaller than a warp
// has lanes that do not exist, which a full-warp shuffle must not name: it
// sums by the tree. The order is fixed either way, so every thread and every
// run gets the same bits.
template <typename V>
__device__ V block_sum(V v, V* part) {
  const int tid = int(threadIdx.x), threads = int(blockDim.x);
  if (threads < kWarpSize) {
    part[tid] = v;
    __syncthreads();
    for (int w = threads / 2; w > 0; w /= 2) {
      if (tid < w) part[tid] += part[tid + w];
      __syncthreads();
    }
    const V total = part[0];
    __syncthreads();
    return total;
  }
  for (int d = kWarpSize / 2; d > 0; d /= 2) v += __shfl_down_sync(kFullWarp, v, d);
  if (tid % kWarpSize == 0) part[tid / kWarpSize] = v;
  __syncthreads();
  V total = part[0];
  for (int w = 1; w < threads / kWarpSize; ++w) total += part[w];
  __syncthreads();
  return total;
}

// The sum of the integer v over the threads before this one (an exclusive
// prefix; blockDim.x a multiple of the warp, ≤ kThreads); part is kThreads
// of __shared__ scratch, free again on return. Every thread of the block
// must call it (it holds barriers). Each warp scans by shuffles, its last
// lane leaves the warp's total in part, and each thread adds the totals of
// the warps before its own.
template <typename V>
__device__ V block_exclusive_scan(V v, V* part) {
  static_assert(std::is_integral_v<V>, "inclusive − v is this thread's prefix only where sums are exact");
  const int tid = int(threadIdx.x), lane = tid % kWarpSize, warp = tid / kWarpSize;
  V inclusive = v;
  for (int d = 1; d < kWarpSize; d *= 2) {
    const V below = __shfl_up_sync(kFullWarp, inclusive, unsigned(d));
    if (lane >= d) inclusive += below;
  }
  if (lane == kWarpSize - 1) part[warp] = inclusive;
  __syncthreads();
  V before = inclusive - v;
  for (int w = 0; w < warp; ++w) before += part[w];
  __syncthreads();
  return before;
}

}  // namespace evoplast::kernels::cuda
