#include "kernels/activation.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void relu_forward(std::size_t n, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <typename T>
void relu_backward(std::size_t n, const T* y, const T* dy, T* dx) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::size_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

// Shared by forward and backward: multiply by the mask of net p.
template <typename T>
static void apply_dropout_mask(int P, std::size_t per_net, const DropoutParams& d, const T* in,
                               T* out) {
  const T scale = d.rate < 1.0f ? T(1) / T(1 - d.rate) : T(0);
  for (int p = 0; p < P; ++p) {
    const std::uint64_t key = dropout_key(d.seed, d.layer, d.first_net + p, d.step);
    const T* a = in + std::size_t(p) * per_net;
    T* b = out + std::size_t(p) * per_net;
#pragma omp parallel for schedule(static) if (per_net > 65536)
    for (std::size_t i = 0; i < per_net; ++i)
      b[i] = uniform01(key, i) >= d.rate ? a[i] * scale : T(0);
  }
}

template <typename T>
void dropout_forward(int P, std::size_t per_net, const DropoutParams& d, const T* x, T* y) {
  apply_dropout_mask(P, per_net, d, x, y);
}

template <typename T>
void dropout_backward(int P, std::size_t per_net, const DropoutParams& d, const T* dy, T* dx) {
  apply_dropout_mask(P, per_net, d, dy, dx);
}

template void relu_forward<float>(std::size_t, const float*, float*);
template void relu_forward<double>(std::size_t, const double*, double*);
template void relu_backward<float>(std::size_t, const float*, const float*, float*);
template void relu_backward<double>(std::size_t, const double*, const double*, double*);
template void dropout_forward<float>(int, std::size_t, const DropoutParams&, const float*, float*);
template void dropout_forward<double>(int, std::size_t, const DropoutParams&, const double*,
                                      double*);
template void dropout_backward<float>(int, std::size_t, const DropoutParams&, const float*,
                                      float*);
template void dropout_backward<double>(int, std::size_t, const DropoutParams&, const double*,
                                       double*);

}  // namespace evoplast::kernels::cpu
