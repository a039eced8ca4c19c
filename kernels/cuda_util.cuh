// Shared by the .cu kernel files: checked launches (cuda_check.hpp), grid
// sizing, grid-stride loops, and the Thrust execution policy.
#pragma once
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

// The sum of v over the block (blockDim.x a power of two ≤ kThreads), returned
// to every thread; part is kThreads of __shared__ scratch, free again on return.
// Every thread of the block must call it (it holds barriers). A kernel that
// uses it calls it on every launch whatever its arguments: the simulator runs
// a kernel whose first launch reached no barrier without fibers from then on.
template <typename V>
__device__ V block_sum(V v, V* part) {
  part[threadIdx.x] = v;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  const V total = part[0];
  __syncthreads();
  return total;
}

}  // namespace evoplast::kernels::cuda
