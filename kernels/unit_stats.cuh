// A plastic layer's per-unit statistics on the GPU: ⟨y⟩, ⟨y²⟩ and θ's move,
// one block per unit. Shared by the kernels that take them (the stacking
// pass's, and a conv layer's fused sums) so both sum in one order: the same
// bits.
#pragma once
#include <cstddef>

#include "kernels/cuda_util.cuh"
#include "kernels/plasticity.hpp"

namespace evoplast::kernels::cuda {

// Unit (p, o) of y (P, N, Out, S): Σy and Σy² over its N·S values, summed
// by the block (thread t takes elements t, t + blockDim, … in order, its
// (n, s) stepped by blockDim's digits with a carry: no division per
// element), then thread 0 writes mean_y, mean_y2 (P, Out) and moves θ
// (P, Out) a tenth toward ⟨y²⟩. Every thread of the block calls it
// (block_sum's barriers); part holds blockDim floats.
__device__ inline void unit_stats(std::size_t p, int o, int N, int Out, int S, const float* __restrict__ y,
                                  float* part, float* __restrict__ theta, float* __restrict__ mean_y,
                                  float* __restrict__ mean_y2) {
  const float inv = 1.0f / (float(N) * float(S));
  const int step_n = int(blockDim.x) / S, step_s = int(blockDim.x) % S;
  float sum = 0, sum2 = 0;
  for (int n = int(threadIdx.x) / S, s = int(threadIdx.x) % S; n < N;) {
    const float yv = y[((p * N + n) * Out + o) * S + s];
    sum += yv;
    sum2 += yv * yv;
    s += step_s;
    const int carry = s >= S;
    s -= carry * S;
    n += step_n + carry;
  }
  sum = block_sum(sum, part);
  sum2 = block_sum(sum2, part);
  if (threadIdx.x == 0) {
    const std::size_t unit = p * Out + o;
    mean_y[unit] = sum * inv;
    mean_y2[unit] = sum2 * inv;
    theta[unit] = (1.0f - kBcmTau) * theta[unit] + kBcmTau * sum2 * inv;
  }
}

}  // namespace evoplast::kernels::cuda
