// Dense layers of the whole population as strided-batched GEMMs.
#include "kernels/cuda_util.cuh"
#include "kernels/optim_math.hpp"
#include "kernels/gemm_tile.cuh"

namespace evoplast::kernels::cuda {
namespace {

__global__ void broadcast_bias_kernel(int P, int N, int Out, const float* __restrict__ b, float* __restrict__ y) {
  const std::size_t total = std::size_t(P) * N * Out;
  EVOPLAST_GRID_STRIDE(i, total) {
    const std::size_t o = i % Out, p = i / (std::size_t(N) * Out);
    y[i] = b[p * Out + o];
  }
}

// db[p, o] = Σ_n dy[p, n, o]: one thread per (p, o), n in order (deterministic).
__global__ void column_sum_kernel(int P, int N, int Out, const float* __restrict__ dy, float* __restrict__ db) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * Out) {
    const std::size_t o = i % Out, p = i / Out;
    float acc = 0;
    for (int n = 0; n < N; ++n) acc += dy[(p * N + n) * Out + o];
    db[i] = acc;
  }
}

// The tile's epilogue: weight (o, i) of one net stepped by Adadelta as its
// gradient leaves the accumulators, as adadelta_step would step it; the
// gradient never reaches memory, W and its state are read and written once.
struct AdadeltaStore {
  float *w, *sq_avg, *acc_delta;  // (Out, In) each, this net's
  float lr, rho, eps;
  int Out, In;
  __device__ void operator()(int o, int i, float g) const {
    if (o >= Out || i >= In) return;
    const std::size_t k = std::size_t(o) * In + i;
    float v = sq_avg[k], u = acc_delta[k];
    const float delta = adadelta_delta(g, rho, eps, v, u);
    sq_avg[k] = v;
    acc_delta[k] = u;
    w[k] -= lr * delta;
  }
  // Weights (o, i) and (o, i + 1): each of the three arrays read and written
  // as one float2 where all three allow it.
  __device__ void operator()(int o, int i, float g0, float g1) const {
    if (o >= Out || i >= In) return;
    const std::size_t k = std::size_t(o) * In + i;
    const bool adjacent = i + 1 < In;
    if (!(as_float2(w + k, adjacent) && as_float2(sq_avg + k, adjacent) && as_float2(acc_delta + k, adjacent))) {
      (*this)(o, i, g0);
      (*this)(o, i + 1, g1);
      return;
    }
    float2 v = load_float2(sq_avg + k), u = load_float2(acc_delta + k);
    float2 wk = load_float2(w + k);
    const float delta0 = adadelta_delta(g0, rho, eps, v.x, u.x), delta1 = adadelta_delta(g1, rho, eps, v.y, u.y);
    wk.x -= lr * delta0;
    wk.y -= lr * delta1;
    store_float2(sq_avg + k, v.x, v.y);
    store_float2(acc_delta + k, u.x, u.y);
    store_float2(w + k, wk.x, wk.y);
  }
};

// dW_p (Out, In) = dy_pᵀ · x_p, the same tiles and loaders as the strided
// GEMM's (so the same sums), each stepped where it is made: block (x, y) a
// 64×64 tile of a net's weights, block z the net.
template <Precision kP>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    dense_weight_adadelta_kernel(DenseShape s, const float* __restrict__ lr, float rho, float eps,
                                 const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ w,
                                 float* __restrict__ sq_avg, float* __restrict__ acc_delta) {
  const std::size_t p = blockIdx.z, per_net = std::size_t(s.Out) * s.In;
  gemm_tile<kP>(int(blockIdx.y) * kTileM, int(blockIdx.x) * kTileN, TileExtent{s.Out, s.In}, 0, s.N,
                StridedA{dy + p * s.N * s.Out, s.Out, s.Out, s.N, true},
                StridedB{x + (s.shared_input ? 0 : p * s.N * s.In), s.In, s.N, s.In, false},
                AdadeltaStore{w + p * per_net, sq_avg + p * per_net, acc_delta + p * per_net, lr[p], rho, eps,
                                s.Out, s.In});
}

// dx_p (N, In) = dy_p (N, Out) · W_p (Out, In), W_p net p's weights or its
// feedback matrix: the strided GEMM's tiles and loaders, so the same sums.
// A net not on keep (mode; null: all keep) gets none: nothing reads it.
template <Precision kP>
__global__ void __launch_bounds__(kTileThreads, kTileBlocksPerSM)
    dense_input_grad_picked_kernel(DenseShape s, const HiddenError* __restrict__ mode, PickedWeights w,
                                   const float* __restrict__ dy, float* __restrict__ dx) {
  const std::size_t p = blockIdx.z;
  if (mode && mode[p] != HiddenError::keep) return;  // the whole block
  gemm_tile<kP>(int(blockIdx.y) * kTileM, int(blockIdx.x) * kTileN, TileExtent{s.N, s.In}, 0, s.Out,
                StridedA{dy + p * s.N * s.Out, s.Out, s.N, s.Out, false}, StridedB{w.of(p), s.In, s.Out, s.In, false},
                RowMajorStore{dx + p * s.N * s.In, s.N, s.In, s.In});
}

}  // namespace

void dense_input_grad_picked(Stream st, const DenseShape& s, const HiddenError* mode, const std::uint8_t* use_fb,
                             const float* w, const float* fb, const float* dy, float* dx) {
  if (s.shared_input) throw std::invalid_argument("dense_input_grad_picked: no input gradient for a shared input");
  const dim3 grid(unsigned((s.In + kTileN - 1) / kTileN), unsigned((s.N + kTileM - 1) / kTileM), unsigned(s.P));
  const PickedWeights picked{w, fb, use_fb, std::size_t(s.Out) * s.In};
  with_precision(gemm_precision(), [&](auto p) {
    EVOPLAST_LAUNCH(dense_input_grad_picked_kernel<decltype(p)::value>, grid, kTileThreads, 0, st, s, mode, picked, dy,
                    dx);
  });
}

void dense_weight_adadelta(Stream st, const DenseShape& s, const float* lr, float rho, float eps, const float* x,
                           const float* dy, float* w, float* sq_avg, float* acc_delta) {
  const dim3 grid(unsigned((s.In + kTileN - 1) / kTileN), unsigned((s.Out + kTileM - 1) / kTileM), unsigned(s.P));
  with_precision(gemm_precision(), [&](auto p) {
    EVOPLAST_LAUNCH(dense_weight_adadelta_kernel<decltype(p)::value>, grid, kTileThreads, 0, st, s, lr, rho, eps, x,
                    dy, w, sq_avg, acc_delta);
  });
}

void dense_forward(Stream st, Blas h, Scratch& ws, const DenseShape& s, const float* x, const float* w,
                   const float* b, float* y) {
  EVOPLAST_LAUNCH(broadcast_bias_kernel, blocks_for(s.y_size()), kThreads, 0, st, s.P, s.N, s.Out, b, y);
  // y_p (N, Out) += x_p (N, In) · w_pᵀ
  gemm(h, false, true, s.N, s.Out, s.In, 1.0f, x, s.In, s.shared_input ? 0 : (long long)s.N * s.In, w, s.In,
       (long long)s.Out * s.In, 1.0f, y, s.Out, (long long)s.N * s.Out, s.P, &ws);
}

void dense_backward(Stream st, Blas h, Scratch& ws, const DenseShape& s, const float* x, const float* w,
                    const float* dy, float* dx, float* dw, float* db) {
  if (s.shared_input && dx) throw std::invalid_argument("dense_backward: no input gradient for a shared input");
  if (dw)  // dw_p (Out, In) = dy_pᵀ · x_p
    gemm(h, true, false, s.Out, s.In, s.N, 1.0f, dy, s.Out, (long long)s.N * s.Out, x, s.In,
         s.shared_input ? 0 : (long long)s.N * s.In, 0.0f, dw, s.In, (long long)s.Out * s.In, s.P, &ws);
  if (db) {
    EVOPLAST_LAUNCH(column_sum_kernel, blocks_for(std::size_t(s.P) * s.Out), kThreads, 0, st, s.P, s.N, s.Out, dy, db);
  }
  if (dx)  // dx_p (N, In) = dy_p · w_p
    gemm(h, false, false, s.N, s.In, s.Out, 1.0f, dy, s.Out, (long long)s.N * s.Out, w, s.In,
         (long long)s.Out * s.In, 0.0f, dx, s.In, (long long)s.N * s.In, s.P, &ws);
}

}  // namespace evoplast::kernels::cuda
