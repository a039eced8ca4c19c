#include <algorithm>

#include "kernels/pool.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void maxpool2d_forward(const PoolShape& s, const T* x, T* y, std::int32_t* argmax) {
  const int Ho = s.Ho(), Wo = s.Wo();
#pragma omp parallel for schedule(static)
  for (std::int64_t q = 0; q < s.planes; ++q) {
    const T* xq = x + std::size_t(q) * s.H * s.W;
    T* yq = y + std::size_t(q) * Ho * Wo;
    std::int32_t* aq = argmax + std::size_t(q) * Ho * Wo;
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox) {
        int best = oy * s.k * s.W + ox * s.k;
        for (int ky = 0; ky < s.k; ++ky)
          for (int kx = 0; kx < s.k; ++kx) {
            const int i = (oy * s.k + ky) * s.W + ox * s.k + kx;
            if (xq[i] > xq[best]) best = i;
          }
        yq[oy * Wo + ox] = xq[best];
        aq[oy * Wo + ox] = best;
      }
  }
}

template <typename T>
void maxpool2d_backward(const PoolShape& s, const T* dy, const std::int32_t* argmax, T* dx) {
  const int HWo = s.Ho() * s.Wo();
#pragma omp parallel for schedule(static)
  for (std::int64_t q = 0; q < s.planes; ++q) {
    T* dxq = dx + std::size_t(q) * s.H * s.W;
    std::fill(dxq, dxq + std::size_t(s.H) * s.W, T(0));
    const T* dyq = dy + std::size_t(q) * HWo;
    const std::int32_t* aq = argmax + std::size_t(q) * HWo;
    for (int i = 0; i < HWo; ++i) dxq[aq[i]] += dyq[i];
  }
}

template void maxpool2d_forward<float>(const PoolShape&, const float*, float*, std::int32_t*);
template void maxpool2d_forward<double>(const PoolShape&, const double*, double*, std::int32_t*);
template void maxpool2d_backward<float>(const PoolShape&, const float*, const std::int32_t*,
                                        float*);
template void maxpool2d_backward<double>(const PoolShape&, const double*, const std::int32_t*,
                                         double*);

}  // namespace evoplast::kernels::cpu
