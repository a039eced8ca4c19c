#include "kernels/dense.hpp"

#include <stdexcept>

#include "kernels/gemm_cpu.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void dense_forward(const DenseShape& s, const T* x, const T* w, const T* b, T* y) {
  for_each_net(s.P, double(s.N) * s.In * s.Out, [&](int p) {
    const T* xp = x + (s.shared_input ? 0 : std::size_t(p) * s.N * s.In);
    const T* bp = b + std::size_t(p) * s.Out;
    T* yp = y + std::size_t(p) * s.N * s.Out;
    for (int n = 0; n < s.N; ++n)
      for (int o = 0; o < s.Out; ++o) yp[std::size_t(n) * s.Out + o] = bp[o];
    gemm<T>(false, true, s.N, s.Out, s.In, T(1), xp, s.In, w + std::size_t(p) * s.Out * s.In, s.In,
            T(1), yp, s.Out);
  });
}

template <typename T>
void dense_backward(const DenseShape& s, const T* x, const T* w, const T* dy, T* dx, T* dw,
                    T* db) {
  if (s.shared_input && dx)
    throw std::invalid_argument("dense_backward: no input gradient for a shared input");
  for_each_net(s.P, double(s.N) * s.In * s.Out * ((dw ? 1 : 0) + (dx ? 1 : 0)), [&](int p) {
    const T* xp = x + (s.shared_input ? 0 : std::size_t(p) * s.N * s.In);
    const T* wp = w ? w + std::size_t(p) * s.Out * s.In : nullptr;
    const T* dyp = dy + std::size_t(p) * s.N * s.Out;
    // dw (Out, In) = dyᵀ · x
    if (dw)
      gemm<T>(true, false, s.Out, s.In, s.N, T(1), dyp, s.Out, xp, s.In, T(0),
              dw + std::size_t(p) * s.Out * s.In, s.In);
    if (db) {
      T* dbp = db + std::size_t(p) * s.Out;
      for (int o = 0; o < s.Out; ++o) dbp[o] = 0;
      for (int n = 0; n < s.N; ++n)
        for (int o = 0; o < s.Out; ++o) dbp[o] += dyp[std::size_t(n) * s.Out + o];
    }
    // dx (N, In) = dy · w
    if (dx)
      gemm<T>(false, false, s.N, s.In, s.Out, T(1), dyp, s.Out, wp, s.In, T(0),
              dx + std::size_t(p) * s.N * s.In, s.In);
  });
}

template void dense_forward<float>(const DenseShape&, const float*, const float*, const float*,
                                   float*);
template void dense_forward<double>(const DenseShape&, const double*, const double*,
                                    const double*, double*);
template void dense_backward<float>(const DenseShape&, const float*, const float*, const float*,
                                    float*, float*, float*);
template void dense_backward<double>(const DenseShape&, const double*, const double*,
                                     const double*, double*, double*, double*);

}  // namespace evoplast::kernels::cpu
