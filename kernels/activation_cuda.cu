#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {
namespace {

__global__ void relu_forward_kernel(std::size_t n, const float* x, float* y) {
  EVOPLAST_GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ void relu_backward_kernel(std::size_t n, const float* y, const float* dy, float* dx) {
  EVOPLAST_GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
// The same counter-based mask as the CPU (kernels/common.hpp), redrawn in backward.
__global__ void dropout_kernel(int P, std::size_t per_net, DropoutParams d, const float* in, float* out) {
  const float scale = dropout_scale(d);
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * per_net) {
    out[i] = dropout_keeps(d, int(i / per_net), i % per_net) ? in[i] * scale : 0.0f;
  }
}
__global__ void fill_kernel(float* x, std::size_t n, float v) {
  EVOPLAST_GRID_STRIDE(i, n) x[i] = v;
}

}  // namespace

void relu_forward(Stream st, std::size_t n, const float* x, float* y) {
  EVOPLAST_LAUNCH(relu_forward_kernel, blocks_for(n), kThreads, 0, st, n, x, y);
}
void relu_backward(Stream st, std::size_t n, const float* y, const float* dy, float* dx) {
  EVOPLAST_LAUNCH(relu_backward_kernel, blocks_for(n), kThreads, 0, st, n, y, dy, dx);
}
void dropout_forward(Stream st, int P, std::size_t per_net, const DropoutParams& d, const float* x, float* y) {
  EVOPLAST_LAUNCH(dropout_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, P, per_net, d, x, y);
}
void dropout_backward(Stream st, int P, std::size_t per_net, const DropoutParams& d, const float* dy, float* dx) {
  EVOPLAST_LAUNCH(dropout_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, P, per_net, d, dy, dx);
}
void fill(Stream st, float* x, std::size_t n, float value) {
  if (n == 0) return;
  EVOPLAST_LAUNCH(fill_kernel, blocks_for(n), kThreads, 0, st, x, n, value);
}

}  // namespace evoplast::kernels::cuda
