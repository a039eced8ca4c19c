// k-winners-take-all on the GPU (kernels/sparsity.hpp): one block per sample
// row. The keep-th largest key is found by a radix select a byte at a time
// (four passes over the row, each a 256-bin count in shared memory; no sort,
// no global scratch); ties at it go to the lower indices through a prefix over
// contiguous chunks, so the winners equal the CPU's exactly.
#include "kernels/cuda_util.cuh"
#include "kernels/sparsity.hpp"

namespace evoplast::kernels::cuda {
namespace {

// One bin a byte value, one thread a bin (the bins' scan is a block scan).
constexpr int kDigits = 256;
static_assert(kThreads == kDigits, "kwta_forward_kernel runs one thread per byte value");

__global__ void kwta_forward_kernel(int P, int N, int units, const KwtaParams* __restrict__ params,
                                    float* __restrict__ y, float* __restrict__ scale) {
  __shared__ int count_part[kThreads];
  __shared__ float sum_part[kThreads];
  __shared__ int digit_count[kDigits];  // keys with T's bytes so far, by their next byte
  __shared__ int chosen[2];             // that byte of T, and how many keys have a larger one
  const int tid = int(threadIdx.x), threads = int(blockDim.x);
  for (std::size_t row = blockIdx.x; row < std::size_t(P) * N; row += gridDim.x) {
    const KwtaParams kp = params[row / std::size_t(N)];
    const int keep = kp.keep < 1 ? 1 : (kp.keep > units ? units : kp.keep);
    float* r = y + row * units;
    if (keep < units) {
      // T, the keep-th largest key, a byte at a time from the top. need: how
      // many of the keys sharing T's bytes so far are ≥ T (keep, then keep
      // less the keys whose byte was larger at each step); at the end, the
      // ties at T that win (keep − #{key > T}, ≥ 1).
      std::uint32_t T = 0;
      int need = keep;
      for (int shift = 24; shift >= 0; shift -= 8) {
        const std::uint32_t known = shift == 24 ? 0u : ~0u << (shift + 8);  // T's bytes chosen so far
        digit_count[tid] = 0;
        __syncthreads();
        for (int i = tid; i < units; i += threads) {
          const std::uint32_t k = kwta_key(r[i]);
          if ((k & known) == T) atomicAdd(&digit_count[(k >> shift) & 0xFFu], 1);
        }
        __syncthreads();
        // Thread t takes byte 255 − t, so its exclusive prefix counts the keys
        // with a larger byte; T's byte is the largest whose count from the top
        // reaches need (one thread finds it).
        const int digit = kDigits - 1 - tid, here = digit_count[digit];
        const int larger = block_exclusive_scan(here, count_part);
        if (larger < need && larger + here >= need) {
          chosen[0] = digit;
          chosen[1] = larger;
        }
        __syncthreads();
        T |= std::uint32_t(chosen[0]) << shift;
        need -= chosen[1];
      }
      // Ties in index order: thread t owns units [t·chunk, (t+1)·chunk).
      const int chunk = (units + threads - 1) / threads;
      const int begin = tid * chunk, end = begin + chunk < units ? begin + chunk : units;
      int ties = 0;
      for (int i = begin; i < end; ++i) ties += kwta_key(r[i]) == T;
      int rank = block_exclusive_scan(ties, count_part);  // ties before this thread's chunk
      for (int i = begin; i < end; ++i) {
        const std::uint32_t k = kwta_key(r[i]);
        bool wins = k > T;
        if (k == T) wins = rank++ < need;
        if (!wins) r[i] = 0.0f;
      }
      __syncthreads();  // the zeros are seen by the normalisation's strided reads
    }
    // The sum of squares is taken even without normalise, so every launch
    // reaches a barrier (the simulator runs barrier-free kernels without fibers).
    float sq = 0;
    for (int i = tid; i < units; i += threads) sq += r[i] * r[i];
    const float norm = sqrtf(block_sum(sq, sum_part));
    const float s = kp.normalise ? sqrtf(float(keep)) / (norm + kKwtaEps) : 1.0f;
    if (kp.normalise)
      for (int i = tid; i < units; i += threads) r[i] *= s;
    if (tid == 0) scale[row] = s;
  }
}

__global__ void kwta_backward_kernel(int P, int N, int units, const KwtaParams* __restrict__ params,
                                     const float* __restrict__ y, const float* __restrict__ scale,
                                     const float* dy, float* dx) {  // dx may alias dy
  __shared__ float sum_part[kThreads];
  const int tid = int(threadIdx.x), threads = int(blockDim.x);
  for (std::size_t row = blockIdx.x; row < std::size_t(P) * N; row += gridDim.x) {
    const KwtaParams kp = params[row / std::size_t(N)];
    const std::size_t off = row * units;
    const int keep = kp.keep < 1 ? 1 : (kp.keep > units ? units : kp.keep);
    float dot = 0;  // taken without normalise too: every launch reaches the barrier
    for (int i = tid; i < units; i += threads) dot += y[off + i] * dy[off + i];
    const float total = block_sum(dot, sum_part);
    const float s = kp.normalise ? scale[row] : 1.0f, proj = kp.normalise ? total / float(keep) : 0.0f;
    for (int i = tid; i < units; i += threads)
      dx[off + i] = y[off + i] != 0.0f ? s * (dy[off + i] - y[off + i] * proj) : 0.0f;
  }
}

unsigned row_blocks(std::size_t rows) { return unsigned(rows < max_blocks() ? (rows ? rows : 1) : max_blocks()); }

}  // namespace

void kwta_forward(Stream st, int P, int N, int units, const KwtaParams* params, float* y, float* scale) {
  EVOPLAST_LAUNCH(kwta_forward_kernel, row_blocks(std::size_t(P) * N), kThreads, 0, st, P, N, units, params, y,
                  scale);
}
void kwta_backward(Stream st, int P, int N, int units, const KwtaParams* params, const float* y,
                   const float* scale, const float* dy, float* dx) {
  EVOPLAST_LAUNCH(kwta_backward_kernel, row_blocks(std::size_t(P) * N), kThreads, 0, st, P, N, units, params, y,
                  scale, dy, dx);
}

}  // namespace evoplast::kernels::cuda
