// The definitions: every op written as the plainest loops, in the layout of
// kernels/*.hpp. Kernels are tested against these, never against each other.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/common.hpp"

namespace naive {

using evoplast::kernels::ConvShape;
using evoplast::kernels::DenseShape;
using evoplast::kernels::PoolShape;

template <typename T>
std::vector<T> conv2d(const ConvShape& s, const std::vector<T>& x, const std::vector<T>& w,
                      const std::vector<T>& b) {
  const int Ho = s.Ho(), Wo = s.Wo();
  std::vector<T> y(s.y_size());
  for (int p = 0; p < s.P; ++p)
    for (int n = 0; n < s.N; ++n)
      for (int co = 0; co < s.Cout; ++co)
        for (int oy = 0; oy < Ho; ++oy)
          for (int ox = 0; ox < Wo; ++ox) {
            T acc = b[p * s.Cout + co];
            for (int ci = 0; ci < s.Cin; ++ci)
              for (int ky = 0; ky < s.K; ++ky)
                for (int kx = 0; kx < s.K; ++kx) {
                  const std::size_t xi =
                      ((std::size_t(s.shared_input ? 0 : p) * s.N + n) * s.Cin + ci) * s.H * s.W +
                      (oy + ky) * s.W + ox + kx;
                  const std::size_t wi = ((std::size_t(p) * s.Cout + co) * s.Cin + ci) * s.K * s.K +
                                         ky * s.K + kx;
                  acc += x[xi] * w[wi];
                }
            y[((std::size_t(p) * s.N + n) * s.Cout + co) * Ho * Wo + oy * Wo + ox] = acc;
          }
  return y;
}

template <typename T>
std::vector<T> dense(const DenseShape& s, const std::vector<T>& x, const std::vector<T>& w,
                     const std::vector<T>& b) {
  std::vector<T> y(s.y_size());
  for (int p = 0; p < s.P; ++p)
    for (int n = 0; n < s.N; ++n)
      for (int o = 0; o < s.Out; ++o) {
        T acc = b[p * s.Out + o];
        for (int i = 0; i < s.In; ++i)
          acc += x[(std::size_t(s.shared_input ? 0 : p) * s.N + n) * s.In + i] *
                 w[(std::size_t(p) * s.Out + o) * s.In + i];
        y[(std::size_t(p) * s.N + n) * s.Out + o] = acc;
      }
  return y;
}

template <typename T>
std::vector<T> maxpool2d(const PoolShape& s, const std::vector<T>& x) {
  std::vector<T> y(s.y_size());
  for (std::int64_t q = 0; q < s.planes; ++q)
    for (int oy = 0; oy < s.Ho(); ++oy)
      for (int ox = 0; ox < s.Wo(); ++ox) {
        T m = -INFINITY;
        for (int ky = 0; ky < s.k; ++ky)
          for (int kx = 0; kx < s.k; ++kx)
            m = std::max(m, x[std::size_t(q) * s.H * s.W + (oy * s.k + ky) * s.W + ox * s.k + kx]);
        y[std::size_t(q) * s.Ho() * s.Wo() + oy * s.Wo() + ox] = m;
      }
  return y;
}

// Where each window's maximum lies in its plane: the first element, in row
// order, above every one before it (ties to the earlier; NaN never wins a
// comparison), the index the kernels' argmax holds.
template <typename T>
std::vector<std::int32_t> maxpool2d_argmax(const PoolShape& s, const std::vector<T>& x) {
  std::vector<std::int32_t> at(s.y_size());
  for (std::int64_t q = 0; q < s.planes; ++q)
    for (int oy = 0; oy < s.Ho(); ++oy)
      for (int ox = 0; ox < s.Wo(); ++ox) {
        const T* plane = x.data() + std::size_t(q) * s.H * s.W;
        int first = oy * s.k * s.W + ox * s.k;
        for (int ky = 0; ky < s.k; ++ky)
          for (int kx = 0; kx < s.k; ++kx)
            if (const int i = (oy * s.k + ky) * s.W + ox * s.k + kx; plane[i] > plane[first]) first = i;
        at[std::size_t(q) * s.Ho() * s.Wo() + oy * s.Wo() + ox] = first;
      }
  return at;
}

template <typename T>
std::vector<T> relu(const std::vector<T>& x) {
  std::vector<T> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0 ? x[i] : 0;
  return y;
}

// logp[p, n, c] = z − log Σ exp z, and loss[p] = −mean_n logp[p, n, label[n]].
template <typename T>
void log_softmax_nll(int P, int N, int C, const std::vector<T>& z,
                     const std::vector<std::int32_t>& labels, std::vector<T>& logp,
                     std::vector<T>& loss) {
  logp.assign(std::size_t(P) * N * C, 0);
  loss.assign(P, 0);
  for (int p = 0; p < P; ++p) {
    for (int n = 0; n < N; ++n) {
      double sum = 0;
      for (int c = 0; c < C; ++c) sum += std::exp(double(z[(std::size_t(p) * N + n) * C + c]));
      for (int c = 0; c < C; ++c)
        logp[(std::size_t(p) * N + n) * C + c] =
            T(double(z[(std::size_t(p) * N + n) * C + c]) - std::log(sum));
      loss[p] -= logp[(std::size_t(p) * N + n) * C + labels[n]];
    }
    loss[p] /= N;
  }
}

}  // namespace naive
