// The fused plasticity update on the GPU: one kernel per plastic layer for
// all P nets, each with its own rule; it reads g, h, the statistics, W and its
// state once and writes W, the optimiser state and Ω once.
#include <stdexcept>
#include <string>

#include "kernels/cuda_util.cuh"
#include "kernels/optim_math.hpp"
#include "kernels/gemm_tile.cuh"
#include "kernels/unit_stats.cuh"

namespace evoplast::kernels::cuda {
namespace {

// The stacked [e | ŷ/(N·S)], one thread per element of (P, N, Out, S), with
// θ as it was before this step (stack_stats_kernel moves it after).
__global__ void stack_kernel(int P, int N, int Out, int S, const PlasticityCoeffs* __restrict__ coeffs,
                             const float* __restrict__ e, const float* __restrict__ y,
                             const std::int32_t* __restrict__ labels, const float* __restrict__ theta,
                             float* __restrict__ error_hebb) {
  const float inv = 1.0f / (float(N) * float(S));
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * N * Out * S) {
    const std::size_t s = i % S, o = i / S % Out, n = i / (std::size_t(S) * Out) % N, p = i / (std::size_t(S) * Out * N);
    const PlasticityCoeffs& c = coeffs[p];
    const float mix = labels ? c.label_mix : 0.0f;
    float* row = error_hebb + ((p * N + n) * 2 * Out + o) * S + s;
    row[0] = reads_error_rows(c) ? e[i] : 0.0f;  // a half the rule does not read is 0, and not read
    float z = 0.0f;
    if (reads_hebbian_rows(c)) {
      const float hebb = hebb_post(y[i], theta[p * Out + o], c.bcm);
      z = mix == 0.0f ? hebb * inv : ((1.0f - mix) * hebb + mix * (labels[n] == int(o) ? 1.0f : 0.0f)) * inv;
    }
    row[std::size_t(Out) * S] = z;
  }
}

// ⟨y⟩, ⟨y²⟩ and θ of each unit (p, o): one block per unit, its N·S values
// summed across the block (the conv layers' N·S is tens of thousands, and
// P·Out only a few thousand units: a thread per unit left most SMs idle).
__global__ void stack_stats_kernel(int P, int N, int Out, int S, const float* __restrict__ y,
                                   float* __restrict__ theta, float* __restrict__ mean_y,
                                   float* __restrict__ mean_y2) {
  __shared__ float part[kThreads];
  const std::size_t units = std::size_t(P) * Out, stride = gridDim.x;
  for (std::size_t unit = blockIdx.x; unit < units; unit += stride)
    unit_stats(unit / Out, int(unit % Out), N, Out, S, y, part, theta, mean_y, mean_y2);
}

__global__ void pre_mean_dense_kernel(DenseShape s, const float* __restrict__ x, float* __restrict__ m) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(s.P) * s.In) {
    const std::size_t p = i / s.In, j = i % s.In;
    const float* xp = x + (s.shared_input ? 0 : p * s.N * s.In);
    float acc = 0;
    for (int n = 0; n < s.N; ++n) acc += xp[std::size_t(n) * s.In + j];
    m[i] = acc / float(s.N);
  }
}

// ⟨x_patch⟩ in the CPU reference's order, so the two agree bit for bit: one
// block per (net, input channel) sums the channel's plane over the images
// (pixel by pixel, n = 0…N−1) into shared memory, then each of its K² patch
// elements is the Ho×Wo window sum of that plane. x is read once. (A thread
// per (net, patch element) summing its N·Ho·Wo values one after another, as
// before, kept a few hundred warps in flight for the seed CNN's conv2 at
// P = 64, each ~37 k loads long, and 18 warps for conv1.)
constexpr int kPlaneFloats = 64 * 64;  // the largest input plane (H·W) a block holds
__global__ void pre_mean_conv_kernel(ConvShape s, const float* __restrict__ x, float* __restrict__ m) {
  __shared__ float plane[kPlaneFloats];
  const int Ho = s.Ho(), Wo = s.Wo(), KK = s.K * s.K, HW = s.H * s.W;
  const float inv = 1.0f / (float(s.N) * Ho * Wo);
  for (std::size_t pc = blockIdx.x; pc < std::size_t(s.P) * s.Cin; pc += gridDim.x) {
    const std::size_t p = pc / s.Cin;
    const int ci = int(pc % s.Cin);
    const float* xc = x + ((s.shared_input ? 0 : p * s.N) * s.Cin + ci) * HW;  // image 0's plane ci
    for (int i = int(threadIdx.x); i < HW; i += int(blockDim.x)) {
      float acc = 0;
      for (int n = 0; n < s.N; ++n) acc += xc[std::size_t(n) * s.Cin * HW + i];
      plane[i] = acc;
    }
    __syncthreads();
    for (int j = int(threadIdx.x); j < KK; j += int(blockDim.x)) {
      const int ky = j / s.K, kx = j % s.K;
      float acc = 0;
      for (int oy = 0; oy < Ho; ++oy)
        for (int ox = 0; ox < Wo; ++ox) acc += plane[(oy + ky) * s.W + ox + kx];
      m[pc * KK + j] = acc * inv;
    }
    __syncthreads();  // the plane is read before the next channel's overwrites it
  }
}

__global__ void plasticity_kernel(int P, int Out, int In, const PlasticityCoeffs* __restrict__ coeffs,
                                  const float* __restrict__ grad_hebb, const float* __restrict__ mean_x,
                                  const float* __restrict__ mean_y, const float* __restrict__ mean_y2,
                                  float* __restrict__ w, float* __restrict__ sq, float* __restrict__ acc,
                                  float* __restrict__ omega) {
  EVOPLAST_GRID_STRIDE(k, std::size_t(P) * Out * In) {
    const std::size_t p = k / (std::size_t(Out) * In), o = k / In % Out, i = k % In;
    const PlasticityCoeffs c = coeffs[p];
    if (!moves_weights(c)) continue;  // ΔW = 0 (or a frozen net): W and its state left as they are
    const float g = grad_hebb[(p * 2 * Out + o) * In + i], h = grad_hebb[(p * 2 * Out + Out + o) * In + i];
    float wk = w[k], v = sq[k], u = acc[k], om = omega[k];
    update_synapse(c, g, h, mean_x[p * In + i], mean_y[p * Out + o], mean_y2[p * Out + o], wk, v, u, om);
    w[k] = wk, sq[k] = v, acc[k] = u, omega[k] = om;
  }
}

// A(o, n) = the stacked [e | ŷ] of one net at unit offset + o, sample n:
// its error rows (offset 0) or its Hebbian rows (offset Out), transposed as
// the tile loads (runs of 8 consecutive units: down_a_m, down_a_k).
struct StackedRows {
  static constexpr bool kCopies = true;
  const float* error_hebb;  // (N, 2·Out) of this net
  int N, Out, offset;
  // Element r of the thread's share at (down_a_m(threadIdx) + kDownStep·r, down_a_k(threadIdx)): one sample
  // n, units kDownStep apart (worked out per element, ptxas spilled 28-212 bytes in the pair kernel).
  template <class Sink>
  __device__ void sources(int m0, int k0, const Sink& sink) const {
    const int t = int(threadIdx.x);
    column_sources(error_hebb + offset, 2 * Out, N, Out, k0 + down_a_k(t), m0 + down_a_m(t), kDownStep, sink);
  }
  __device__ float& slot(float (&tile)[kTileM][kTileK + 4], int r) const {
    const int t = int(threadIdx.x);
    return tile[down_a_m(t) + r * kDownStep][down_a_k(t)];
  }
};

// The tile's epilogue: synapse (o, i) of one net updated from its g and h as
// they leave the accumulators (update_synapse), W and its state read and
// written once; [g; h] never reaches global memory.
struct SynapseUpdate {
  // This net's rule, read once a thread: through a pointer nvcc read its ~17
  // fields again at every pair of synapses (the float stores to W between
  // them may alias them): 892 global loads in the kernel's PTX, now 369.
  PlasticityCoeffs c;
  const float *mean_x, *mean_y, *mean_y2;
  float *w, *sq, *acc, *omega;  // (Out, In) each, this net's
  int Out, In;
  __device__ void operator()(int o, int i, float g, float h) const {
    if (o >= Out || i >= In) return;  // (a net whose weights do not move left before its tile)
    const std::size_t k = std::size_t(o) * In + i;
    float wk = w[k], v = sq[k], u = acc[k], om = omega[k];
    update_synapse(c, g, h, mean_x[i], mean_y[o], mean_y2[o], wk, v, u, om);
    w[k] = wk, sq[k] = v, acc[k] = u, omega[k] = om;
  }
  // Synapses (o, i) and (o, i + 1): W, its three states and mean_x read and
  // written as float2 where all five allow it.
  __device__ void operator()(int o, int i, float2 g, float2 h) const {
    if (o >= Out || i >= In) return;
    const std::size_t k = std::size_t(o) * In + i;
    const bool adjacent = i + 1 < In;
    if (!(as_float2(w + k, adjacent) && as_float2(sq + k, adjacent) && as_float2(acc + k, adjacent) &&
          as_float2(omega + k, adjacent) && as_float2(mean_x + i, adjacent))) {
      (*this)(o, i, g.x, h.x);
      (*this)(o, i + 1, g.y, h.y);
      return;
    }
    float2 wk = load_float2(w + k), v = load_float2(sq + k), u = load_float2(acc + k), om = load_float2(omega + k);
    const float2 mx = load_float2(mean_x + i);
    const float my = mean_y[o], my2 = mean_y2[o];
    update_synapse(c, g.x, h.x, mx.x, my, my2, wk.x, v.x, u.x, om.x);
    update_synapse(c, g.y, h.y, mx.y, my, my2, wk.y, v.y, u.y, om.y);
    store_float2(w + k, wk.x, wk.y);
    store_float2(sq + k, v.x, v.y);
    store_float2(acc + k, u.x, u.y);
    store_float2(omega + k, om.x, om.y);
  }
};

// The dense plasticity step by our tile kernel: block (x, y) a 64×64 tile of a
// net's (Out, In) synapses, block z the net; g and h from one pass over x.
template <Precision kP>
__global__ void __launch_bounds__(kTileThreads, kPairTileBlocksPerSM)
    plasticity_dense_fused_kernel(DenseShape s, const PlasticityCoeffs* __restrict__ coeffs,
                                  const float* __restrict__ x, const float* __restrict__ error_hebb,
                                  const float* __restrict__ mean_x, const float* __restrict__ mean_y,
                                  const float* __restrict__ mean_y2, float* __restrict__ w, float* __restrict__ sq,
                                  float* __restrict__ acc, float* __restrict__ omega) {
  const std::size_t p = blockIdx.z, synapses = std::size_t(s.Out) * s.In;
  const PlasticityCoeffs c = coeffs[p];  // this net's rule, read once
  if (!moves_weights(c)) return;         // ΔW = 0 (or a frozen net): nothing to sum or update
  const float* eh = error_hebb + p * s.N * 2 * s.Out;
  // A half of the rows the net's rule does not read is 0 (stack_kernel): g or h is 0 without the GEMM.
  gemm_tile_pair<kP>(int(blockIdx.y) * kTileM, int(blockIdx.x) * kTileN, TileExtent{s.Out, s.In}, 0, s.N,
                           reads_error_rows(c), reads_hebbian_rows(c),
                           StackedRows{eh, s.N, s.Out, 0}, StackedRows{eh, s.N, s.Out, s.Out},
                           StridedB{x + (s.shared_input ? 0 : p * s.N * s.In), s.In, s.N, s.In, false},
                           SynapseUpdate{c, mean_x + p * s.In, mean_y + p * s.Out, mean_y2 + p * s.Out,
                                         w + p * synapses, sq + p * synapses, acc + p * synapses,
                                         omega + p * synapses, s.Out, s.In});
}

__global__ void plasticity_bias_kernel(int P, int Out, const PlasticityCoeffs* __restrict__ coeffs,
                                       const float* __restrict__ gb, const float* __restrict__ mean_y,
                                       float* __restrict__ b, float* __restrict__ sq, float* __restrict__ acc) {
  EVOPLAST_GRID_STRIDE(k, std::size_t(P) * Out) {
    const std::size_t p = k / Out, o = k % Out;
    const PlasticityCoeffs c = coeffs[p];
    if (c.frozen) continue;
    float v = sq[k], u = acc[k];
    const float delta = rule_opt(c.adadelta != 0, gb[p * 2 * Out + o], c.rho, c.eps, v, u);
    sq[k] = v;
    acc[k] = u;
    b[k] = b[k] + (c.eta * (-c.alpha * delta) - c.gamma_h * (mean_y[k] - c.rho_star));
  }
}

// One block per (p, o) row: ‖W_o‖₂ by a block sum, then the rescale.
__global__ void bound_rows_kernel(int P, int Out, int In, const PlasticityCoeffs* __restrict__ coeffs,
                                  float* __restrict__ w) {
  __shared__ float part[kThreads];
  for (std::size_t row = blockIdx.x; row < std::size_t(P) * Out; row += gridDim.x) {
    const PlasticityCoeffs& c = coeffs[row / Out];
    float* wr = w + row * In;
    // The norm is taken for every row, bound or not, so each launch reaches
    // the barrier (see block_sum).
    float sq = 0;
    for (int i = int(threadIdx.x); i < In; i += int(blockDim.x)) sq += wr[i] * wr[i];
    const float norm = sqrtf(block_sum(sq, part));
    if (!c.frozen && c.w_norm > 0.0f && norm > c.w_norm) {
      const float f = c.w_norm / norm;
      for (int i = int(threadIdx.x); i < In; i += int(blockDim.x)) wr[i] *= f;
    }
  }
}

__global__ void route_error_kernel(int P, std::size_t per_net, const HiddenError* __restrict__ mode,
                                   const float* __restrict__ dfa_e, const float* __restrict__ y, bool relu_after,
                                   float* __restrict__ e) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * per_net) {
    const HiddenError m = mode[i / per_net];
    if (m == HiddenError::none) e[i] = 0.0f;
    else if (m == HiddenError::dfa) e[i] = !relu_after || y[i] > 0.0f ? dfa_e[i] : 0.0f;
  }
}

__global__ void pick_kernel(int P, std::size_t per_net, const std::uint8_t* __restrict__ use_b,
                            const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * per_net) out[i] = use_b[i / per_net] ? b[i] : a[i];
}

__global__ void fisher_kernel(std::size_t n, float scale, const float* g, float* f) {
  EVOPLAST_GRID_STRIDE(i, n) f[i] += scale * g[i] * g[i];
}
__global__ void proximal_kernel(int P, std::size_t per_net, const float* strength, const float* f,
                                const float* anchor, float* w) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * per_net) {
    const float c = strength[i / per_net];
    if (c == 0.0f) continue;
    const float cf = c * f[i];
    w[i] = (w[i] + cf * anchor[i]) / (1.0f + cf);
  }
}
__global__ void mask_kernel(int P, int N, int C, const std::uint8_t* allowed, float* logits) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * N * C) {
    const std::size_t nc = i % (std::size_t(N) * C);
    if (!allowed[nc]) logits[i] = -1e9f;
  }
}
// Block p looks at net p's values, and its thread 0 raises the net's flag if
// one is not finite: one writer a flag (where every thread that saw one wrote
// the same 1, it was still a race).
__global__ void nonfinite_kernel(std::size_t per_net, const float* x, std::uint8_t* flags) {
  __shared__ int part[kThreads];
  const float* net = x + blockIdx.x * per_net;
  int bad = 0;
  for (std::size_t i = threadIdx.x; i < per_net; i += blockDim.x) bad += !isfinite(net[i]);
  if (block_sum(bad, part) > 0 && threadIdx.x == 0) flags[blockIdx.x] = 1;
}

}  // namespace

void stack_error_and_hebb(Stream st, int P, int N, int Out, int S, const PlasticityCoeffs* coeffs, const float* e,
                          const float* y, const std::int32_t* labels, float* theta, float* error_hebb, float* mean_y,
                          float* mean_y2) {
  EVOPLAST_LAUNCH(stack_kernel, blocks_for(std::size_t(P) * N * Out * S), kThreads, 0, st, P, N, Out, S, coeffs, e, y,
                  labels, theta, error_hebb);
  const std::size_t units = std::size_t(P) * Out;  // then the statistics, moving θ after stack_kernel read it
  EVOPLAST_LAUNCH(stack_stats_kernel, unsigned(units < max_blocks() ? units : max_blocks()), kThreads, 0, st, P,
                  N, Out, S, y, theta, mean_y, mean_y2);
}
void plasticity_bound_rows(Stream st, int P, int Out, int In, const PlasticityCoeffs* coeffs, float* w) {
  const std::size_t rows = std::size_t(P) * Out;
  EVOPLAST_LAUNCH(bound_rows_kernel, unsigned(rows < max_blocks() ? rows : max_blocks()), kThreads, 0, st, P, Out,
                  In, coeffs, w);
}
void route_hidden_error(Stream st, int P, std::size_t per_net, const HiddenError* mode, const float* dfa_e,
                        const float* y, bool relu_after, float* e) {
  EVOPLAST_LAUNCH(route_error_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, P, per_net, mode, dfa_e,
                  y, relu_after, e);
}
void pick_per_net(Stream st, int P, std::size_t per_net, const std::uint8_t* use_b, const float* a, const float* b,
                  float* out) {
  EVOPLAST_LAUNCH(pick_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, P, per_net, use_b, a, b, out);
}
void pre_mean_dense(Stream st, const DenseShape& s, const float* x, float* mean_x) {
  EVOPLAST_LAUNCH(pre_mean_dense_kernel, blocks_for(std::size_t(s.P) * s.In), kThreads, 0, st, s, x, mean_x);
}
void pre_mean_conv(Stream st, const ConvShape& s, const float* x, float* mean_x) {
  if (std::size_t(s.H) * s.W > std::size_t(kPlaneFloats))
    throw std::invalid_argument("pre_mean_conv: an input plane of " + std::to_string(s.H) + "×" + std::to_string(s.W) +
                                " is larger than the 64×64 a block holds");
  const std::size_t planes = std::size_t(s.P) * s.Cin;
  EVOPLAST_LAUNCH(pre_mean_conv_kernel, unsigned(planes < max_blocks() ? planes : max_blocks()), kThreads, 0, st, s,
                  x, mean_x);
}
void plasticity_update(Stream st, int P, int Out, int In, const PlasticityCoeffs* coeffs, const float* grad_hebb,
                       const float* mean_x, const float* mean_y, const float* mean_y2, float* w, float* sq_avg,
                       float* acc_delta, float* omega) {
  EVOPLAST_LAUNCH(plasticity_kernel, blocks_for(std::size_t(P) * Out * In), kThreads, 0, st, 
      P, Out, In, coeffs, grad_hebb, mean_x, mean_y, mean_y2, w, sq_avg, acc_delta, omega);
}
void plasticity_update_dense_fused(Stream st, const DenseShape& s, const PlasticityCoeffs* coeffs, const float* x,
                                   const float* error_hebb, const float* mean_x, const float* mean_y,
                                   const float* mean_y2, float* w, float* sq_avg, float* acc_delta, float* omega) {
  const dim3 grid(unsigned((s.In + kTileN - 1) / kTileN), unsigned((s.Out + kTileM - 1) / kTileM), unsigned(s.P));
  with_precision(gemm_precision(), [&](auto p) {
    EVOPLAST_LAUNCH(plasticity_dense_fused_kernel<decltype(p)::value>, grid, kTileThreads, 0, st, s, coeffs, x,
                    error_hebb, mean_x, mean_y, mean_y2, w, sq_avg, acc_delta, omega);
  });
}
void plasticity_bias_update(Stream st, int P, int Out, const PlasticityCoeffs* coeffs, const float* gb,
                            const float* mean_y, float* b, float* sq_avg, float* acc_delta) {
  EVOPLAST_LAUNCH(plasticity_bias_kernel, blocks_for(std::size_t(P) * Out), kThreads, 0, st, P, Out, coeffs, gb, mean_y, b,
                                                                                 sq_avg, acc_delta);
}
void ewc_accumulate_fisher(Stream st, int P, std::size_t per_net, float scale, const float* g, float* fisher) {
  EVOPLAST_LAUNCH(fisher_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, std::size_t(P) * per_net, scale, g,
                                                                             fisher);
}
void ewc_proximal_step(Stream st, int P, std::size_t per_net, const float* strength, const float* fisher,
                       const float* anchor, float* w) {
  EVOPLAST_LAUNCH(proximal_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, P, per_net, strength, fisher, anchor,
                                                                               w);
}
void mask_logits(Stream st, int P, int N, int C, const std::uint8_t* allowed, float* logits) {
  EVOPLAST_LAUNCH(mask_kernel, blocks_for(std::size_t(P) * N * C), kThreads, 0, st, P, N, C, allowed, logits);
}
void flag_nonfinite(Stream st, int P, std::size_t per_net, const float* x, std::uint8_t* flags) {
  if (P == 0) return;
  unsigned threads = 1;  // a power of two (block_sum), no more than there are values
  while (threads < kThreads && threads < per_net) threads *= 2;
  EVOPLAST_LAUNCH(nonfinite_kernel, P, threads, 0, st, per_net, x, flags);
}

}  // namespace evoplast::kernels::cuda
