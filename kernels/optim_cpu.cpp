#include <cmath>

#include "kernels/optim.hpp"
#include "kernels/optim_math.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void sgd_step(int P, std::size_t per_net, const float* lr, T* w, const T* g) {
  for (int p = 0; p < P; ++p) {
    const T rate = lr[p];
    T* wp = w + std::size_t(p) * per_net;
    const T* gp = g + std::size_t(p) * per_net;
#pragma omp parallel for schedule(static) if (per_net > 65536)
    for (std::size_t i = 0; i < per_net; ++i) wp[i] -= rate * gp[i];
  }
}

template <typename T>
void adadelta_step(int P, std::size_t per_net, const float* lr, float rho, float eps, T* w,
                   const T* g, T* sq_avg, T* acc_delta) {
  const T r = rho, e = eps;
  for (int p = 0; p < P; ++p) {
    const T rate = lr[p];
    const std::size_t off = std::size_t(p) * per_net;
#pragma omp parallel for schedule(static) if (per_net > 65536)
    for (std::size_t i = off; i < off + per_net; ++i) {
      const T delta = adadelta_delta(g[i], r, e, sq_avg[i], acc_delta[i]);
      w[i] -= rate * delta;
    }
  }
}

template void sgd_step<float>(int, std::size_t, const float*, float*, const float*);
template void sgd_step<double>(int, std::size_t, const float*, double*, const double*);
template void adadelta_step<float>(int, std::size_t, const float*, float, float, float*,
                                   const float*, float*, float*);
template void adadelta_step<double>(int, std::size_t, const float*, float, float, double*,
                                    const double*, double*, double*);

}  // namespace evoplast::kernels::cpu
