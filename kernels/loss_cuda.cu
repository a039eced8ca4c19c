#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {
namespace {

// One thread per (p, n) row: C is small (10 classes).
__global__ void log_softmax_kernel(int P, int N, int C, const float* __restrict__ z, float* __restrict__ logp,
                                   float* __restrict__ row_loss, const std::int32_t* __restrict__ labels) {
  EVOPLAST_GRID_STRIDE(r, std::size_t(P) * N) {
    const float* zr = z + r * C;
    float m = zr[0];
    for (int c = 1; c < C; ++c) m = fmaxf(m, zr[c]);
    float sum = 0;
    for (int c = 0; c < C; ++c) sum += expf(zr[c] - m);
    const float lse = m + logf(sum);
    for (int c = 0; c < C; ++c) logp[r * C + c] = zr[c] - lse;
    row_loss[r] = -(zr[labels[r % N]] - lse);
  }
}

// loss[p] = mean over rows, one block per net, fixed order (deterministic).
__global__ void mean_rows_kernel(int N, const float* __restrict__ rows, float* __restrict__ out) {
  __shared__ double part[kThreads];
  const int p = blockIdx.x;
  double acc = 0;
  for (int n = threadIdx.x; n < N; n += blockDim.x) acc += rows[std::size_t(p) * N + n];
  const double total = block_sum(acc, part);
  if (threadIdx.x == 0) out[p] = float(total / N);
}

__global__ void nll_backward_kernel(int P, int N, int C, const float* __restrict__ logp,
                                    const std::int32_t* __restrict__ labels, float* __restrict__ d) {
  const float inv = 1.0f / float(N);
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * N * C) {
    const int c = int(i % C), n = int(i / C % N);
    d[i] = (expf(logp[i]) - (c == labels[n] ? 1.0f : 0.0f)) * inv;
  }
}

__global__ void correct_kernel(int N, int C, const float* __restrict__ z, const std::int32_t* __restrict__ labels,
                               std::int64_t* __restrict__ out) {
  __shared__ int part[kThreads];
  const int p = blockIdx.x;
  int hits = 0;
  for (int n = threadIdx.x; n < N; n += blockDim.x) {
    const float* zr = z + (std::size_t(p) * N + n) * C;
    int best = 0;
    for (int c = 1; c < C; ++c)
      if (zr[c] > zr[best]) best = c;
    hits += best == labels[n];
  }
  const int total = block_sum(hits, part);
  if (threadIdx.x == 0) out[p] = total;
}

}  // namespace

void log_softmax_nll_forward(Stream st, Scratch& ws, int P, int N, int C, const float* logits,
                             const std::int32_t* labels, float* logp, float* loss) {
  const std::size_t need = std::size_t(P) * N;
  float* rows = ws.floats(3, need);  // per-row losses, reduced per net below
  EVOPLAST_LAUNCH(log_softmax_kernel, blocks_for(need), kThreads, 0, st, P, N, C, logits, logp, rows, labels);
  EVOPLAST_LAUNCH(mean_rows_kernel, unsigned(P), kThreads, 0, st, N, rows, loss);
}

void log_softmax_nll_backward(Stream st, int P, int N, int C, const float* logp, const std::int32_t* labels,
                              float* dlogits) {
  EVOPLAST_LAUNCH(nll_backward_kernel, blocks_for(std::size_t(P) * N * C), kThreads, 0, st, P, N, C, logp, labels, dlogits);
}

void count_correct(Stream st, int P, int N, int C, const float* scores, const std::int32_t* labels,
                   std::int64_t* correct) {
  EVOPLAST_LAUNCH(correct_kernel, unsigned(P), kThreads, 0, st, N, C, scores, labels, correct);
}

}  // namespace evoplast::kernels::cuda
