#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {
namespace {

__global__ void maxpool_forward_kernel(PoolShape s, const float* __restrict__ x, float* __restrict__ y,
                                       std::int32_t* __restrict__ argmax) {
  const int Ho = s.Ho(), Wo = s.Wo();
  EVOPLAST_GRID_STRIDE(i, s.y_size()) {
    const int ox = int(i % Wo), oy = int(i / Wo % Ho);
    const std::size_t q = i / (std::size_t(Wo) * Ho);
    const float* xq = x + q * s.H * s.W;
    int best = oy * s.k * s.W + ox * s.k;
    for (int ky = 0; ky < s.k; ++ky)
      for (int kx = 0; kx < s.k; ++kx) {
        const int j = (oy * s.k + ky) * s.W + ox * s.k + kx;
        if (xq[j] > xq[best]) best = j;  // first maximum on ties, as on the CPU
      }
    y[i] = xq[best];
    argmax[i] = best;
  }
}

// Windows do not overlap (stride k), so each input element gathers from at most one output.
// relu_sign: null, or the pooled output y whose sign is the ReLU's before the
// pool (the window's maximum passed it iff y > 0).
__global__ void maxpool_backward_kernel(PoolShape s, const float* __restrict__ dy,
                                        const std::int32_t* __restrict__ argmax, const float* __restrict__ relu_sign,
                                        float* __restrict__ dx) {
  const int Ho = s.Ho(), Wo = s.Wo();
  EVOPLAST_GRID_STRIDE(i, s.x_size()) {
    const int xx = int(i % s.W), yy = int(i / s.W % s.H);
    const std::size_t q = i / (std::size_t(s.W) * s.H);
    const int oy = yy / s.k, ox = xx / s.k;
    float v = 0;
    if (oy < Ho && ox < Wo) {
      const std::size_t o = q * Ho * Wo + oy * Wo + ox;
      if (argmax[o] == yy * s.W + xx && (!relu_sign || relu_sign[o] > 0.0f)) v = dy[o];
    }
    dx[i] = v;
  }
}

}  // namespace

void maxpool2d_forward(Stream st, const PoolShape& s, const float* x, float* y, std::int32_t* argmax) {
  EVOPLAST_LAUNCH(maxpool_forward_kernel, blocks_for(s.y_size()), kThreads, 0, st, s, x, y, argmax);
}

void maxpool2d_backward(Stream st, const PoolShape& s, const float* dy, const std::int32_t* argmax, float* dx) {
  EVOPLAST_LAUNCH(maxpool_backward_kernel, blocks_for(s.x_size()), kThreads, 0, st, s, dy, argmax, nullptr, dx);
}
void maxpool2d_relu_backward(Stream st, const PoolShape& s, const float* dy, const std::int32_t* argmax,
                             const float* y, float* dx) {
  EVOPLAST_LAUNCH(maxpool_backward_kernel, blocks_for(s.x_size()), kThreads, 0, st, s, dy, argmax, y, dx);
}

}  // namespace evoplast::kernels::cuda
