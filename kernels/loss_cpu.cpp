#include <cmath>

#include "kernels/loss.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void log_softmax_nll_forward(int P, int N, int C, const T* logits, const std::int32_t* labels,
                             T* logp, T* loss) {
  for (int p = 0; p < P; ++p) {
    double total = 0;
    for (int n = 0; n < N; ++n) {
      const T* z = logits + (std::size_t(p) * N + n) * C;
      T* out = logp + (std::size_t(p) * N + n) * C;
      T zmax = z[0];
      for (int c = 1; c < C; ++c) zmax = z[c] > zmax ? z[c] : zmax;
      T sum = 0;
      for (int c = 0; c < C; ++c) sum += std::exp(z[c] - zmax);
      const T lse = zmax + std::log(sum);
      for (int c = 0; c < C; ++c) out[c] = z[c] - lse;
      total -= out[labels[n]];
    }
    loss[p] = T(total / N);
  }
}

template <typename T>
void log_softmax_nll_backward(int P, int N, int C, const T* logp, const std::int32_t* labels,
                              T* dlogits) {
  const T inv_n = T(1) / T(N);
  for (int p = 0; p < P; ++p)
    for (int n = 0; n < N; ++n) {
      const T* lp = logp + (std::size_t(p) * N + n) * C;
      T* d = dlogits + (std::size_t(p) * N + n) * C;
      for (int c = 0; c < C; ++c) d[c] = (std::exp(lp[c]) - (c == labels[n] ? T(1) : T(0))) * inv_n;
    }
}

template <typename T>
void count_correct(int P, int N, int C, const T* scores, const std::int32_t* labels,
                   std::int64_t* correct) {
  for (int p = 0; p < P; ++p) {
    std::int64_t hits = 0;
    for (int n = 0; n < N; ++n) {
      const T* z = scores + (std::size_t(p) * N + n) * C;
      int best = 0;
      for (int c = 1; c < C; ++c)
        if (z[c] > z[best]) best = c;
      hits += best == labels[n];
    }
    correct[p] = hits;
  }
}

template void log_softmax_nll_forward<float>(int, int, int, const float*, const std::int32_t*,
                                             float*, float*);
template void log_softmax_nll_forward<double>(int, int, int, const double*, const std::int32_t*,
                                              double*, double*);
template void log_softmax_nll_backward<float>(int, int, int, const float*, const std::int32_t*,
                                              float*);
template void log_softmax_nll_backward<double>(int, int, int, const double*, const std::int32_t*,
                                               double*);
template void count_correct<float>(int, int, int, const float*, const std::int32_t*,
                                   std::int64_t*);
template void count_correct<double>(int, int, int, const double*, const std::int32_t*,
                                    std::int64_t*);

}  // namespace evoplast::kernels::cpu
