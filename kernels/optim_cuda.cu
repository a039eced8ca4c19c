#include "kernels/cuda_util.cuh"
#include "kernels/optim_math.hpp"

namespace evoplast::kernels::cuda {
namespace {

__global__ void sgd_kernel(int P, std::size_t per_net, const float* lr, float* w, const float* g) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * per_net) w[i] -= lr[i / per_net] * g[i];
}
__global__ void adadelta_kernel(int P, std::size_t per_net, const float* lr, float rho, float eps, float* w,
                                const float* g, float* v, float* u) {
  EVOPLAST_GRID_STRIDE(i, std::size_t(P) * per_net) {
    float vi = v[i], ui = u[i];
    const float delta = adadelta_delta(g[i], rho, eps, vi, ui);
    v[i] = vi;
    u[i] = ui;
    w[i] -= lr[i / per_net] * delta;
  }
}

}  // namespace

void sgd_step(Stream st, int P, std::size_t per_net, const float* lr, float* w, const float* g) {
  EVOPLAST_LAUNCH(sgd_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, P, per_net, lr, w, g);
}
void adadelta_step(Stream st, int P, std::size_t per_net, const float* lr, float rho, float eps, float* w,
                   const float* g, float* sq_avg, float* acc_delta) {
  EVOPLAST_LAUNCH(adadelta_kernel, blocks_for(std::size_t(P) * per_net), kThreads, 0, st, P, per_net, lr, rho, eps, w, g,
                                                                                sq_avg, acc_delta);
}

}  // namespace evoplast::kernels::cuda
