// Dense layers of the whole population as strided-batched GEMMs.
#include "kernels/cuda_util.cuh"

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

}  // namespace

void dense_forward(Stream st, Blas h, const DenseShape& s, const float* x, const float* w, const float* b,
                   float* y) {
  EVOPLAST_LAUNCH(broadcast_bias_kernel, blocks_for(s.y_size()), kThreads, 0, st, s.P, s.N, s.Out, b, y);
  // y_p (N, Out) += x_p (N, In) · w_pᵀ
  gemm(h, false, true, s.N, s.Out, s.In, 1.0f, x, s.In, s.shared_input ? 0 : (long long)s.N * s.In, w, s.In,
       (long long)s.Out * s.In, 1.0f, y, s.Out, (long long)s.N * s.Out, s.P);
}

void dense_backward(Stream st, Blas h, const DenseShape& s, const float* x, const float* w, const float* dy,
                    float* dx, float* dw, float* db) {
  if (s.shared_input && dx) throw std::invalid_argument("dense_backward: no input gradient for a shared input");
  if (dw)  // dw_p (Out, In) = dy_pᵀ · x_p
    gemm(h, true, false, s.Out, s.In, s.N, 1.0f, dy, s.Out, (long long)s.N * s.Out, x, s.In,
         s.shared_input ? 0 : (long long)s.N * s.In, 0.0f, dw, s.In, (long long)s.Out * s.In, s.P);
  if (db) {
    EVOPLAST_LAUNCH(column_sum_kernel, blocks_for(std::size_t(s.P) * s.Out), kThreads, 0, st, s.P, s.N, s.Out, dy, db);
  }
  if (dx)  // dx_p (N, In) = dy_p · w_p
    gemm(h, false, false, s.N, s.In, s.Out, 1.0f, dy, s.Out, (long long)s.N * s.Out, w, s.In,
         (long long)s.Out * s.In, 0.0f, dx, s.In, (long long)s.N * s.In, s.P);
}

}  // namespace evoplast::kernels::cuda
