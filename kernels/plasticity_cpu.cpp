#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/conv.hpp"
#include "kernels/gemm_cpu.hpp"
#include "kernels/optim_math.hpp"
#include "kernels/plasticity.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void stack_error_and_hebb(int P, int N, int Out, int S, const PlasticityCoeffs* coeffs,
                          const T* e, const T* y, const std::int32_t* labels, T* theta, T* error_hebb, T* mean_y,
                          T* mean_y2) {
  const T inv = T(1) / (T(N) * T(S));
  for (int p = 0; p < P; ++p) {
    const T bcm = coeffs[p].bcm, mix = labels ? T(coeffs[p].label_mix) : T(0);
    const bool error_read = reads_error_rows(coeffs[p]), hebb_read = reads_hebbian_rows(coeffs[p]);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < Out; ++o) {
      const T th = theta[std::size_t(p) * Out + o];
      T sum = 0, sum2 = 0;
      for (int n = 0; n < N; ++n) {
        const std::size_t src = ((std::size_t(p) * N + n) * Out + o) * S;
        T* error_hebb_n = error_hebb + ((std::size_t(p) * N + n) * 2 * Out + o) * S;
        T* zh = error_hebb_n + std::size_t(Out) * S;
        for (int s = 0; s < S; ++s) {
          const T yv = y[src + s];
          error_hebb_n[s] = error_read ? e[src + s] : T(0);
          const T hebb = hebb_post(yv, th, bcm);
          zh[s] = !hebb_read  ? T(0)
                  : mix == T(0) ? hebb * inv
                                : ((T(1) - mix) * hebb + mix * T(labels[n] == o ? 1 : 0)) * inv;
          sum += yv;
          sum2 += yv * yv;
        }
      }
      mean_y[std::size_t(p) * Out + o] = sum * inv;
      mean_y2[std::size_t(p) * Out + o] = sum2 * inv;
      theta[std::size_t(p) * Out + o] = (T(1) - T(kBcmTau)) * th + T(kBcmTau) * sum2 * inv;
    }
  }
}

template <typename T>
void pre_mean_dense(const DenseShape& s, const T* x, T* mean_x) {
  for (int p = 0; p < s.P; ++p) {
    const T* xp = x + (s.shared_input ? 0 : std::size_t(p) * s.N * s.In);
    T* m = mean_x + std::size_t(p) * s.In;
    for (int i = 0; i < s.In; ++i) m[i] = 0;
    for (int n = 0; n < s.N; ++n)
      for (int i = 0; i < s.In; ++i) m[i] += xp[std::size_t(n) * s.In + i];
    for (int i = 0; i < s.In; ++i) m[i] /= T(s.N);
  }
}

template <typename T>
void pre_mean_conv(const ConvShape& s, const T* x, T* mean_x) {
  // Σ over images first (one pass over x), then each patch element is a
  // Ho×Wo window sum of that plane: O(N·Cin·H·W + Cin·K²·Ho·Wo), not O(N·Cin·K²·Ho·Wo).
  const int Ho = s.Ho(), Wo = s.Wo(), KK = s.Cin * s.K * s.K;
  const T inv = T(1) / (T(s.N) * Ho * Wo);
  const std::size_t plane = std::size_t(s.H) * s.W;
  std::vector<T> sum(std::size_t(s.Cin) * plane);
  for (int p = 0; p < s.P; ++p) {
    const T* xp = x + (s.shared_input ? 0 : std::size_t(p) * s.N * s.Cin * plane);
    std::fill(sum.begin(), sum.end(), T(0));
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < s.Cin; ++ci)
      for (int n = 0; n < s.N; ++n) {
        const T* src = xp + (std::size_t(n) * s.Cin + ci) * plane;
        T* dst = sum.data() + std::size_t(ci) * plane;
        for (std::size_t i = 0; i < plane; ++i) dst[i] += src[i];
      }
#pragma omp parallel for schedule(static)
    for (int j = 0; j < KK; ++j) {
      const int ci = j / (s.K * s.K), ky = (j / s.K) % s.K, kx = j % s.K;
      const T* sp = sum.data() + std::size_t(ci) * plane;
      T acc = 0;
      for (int oy = 0; oy < Ho; ++oy)
        for (int ox = 0; ox < Wo; ++ox) acc += sp[(oy + ky) * s.W + ox + kx];
      mean_x[std::size_t(p) * KK + j] = acc * inv;
    }
  }
}

template <typename T>
void plasticity_grads_dense(const DenseShape& s, const PlasticityCoeffs* coeffs, const T* x, const T* error_hebb,
                            T* grad_hebb) {
  const std::size_t half = std::size_t(s.Out) * s.In;
  for_each_net(s.P, 2.0 * s.N * s.In * s.Out, [&](int p) {
    const T* xp = x + (s.shared_input ? 0 : std::size_t(p) * s.N * s.In);
    const T* rows = error_hebb + std::size_t(p) * s.N * 2 * s.Out;  // (N, 2·Out)
    T* g = grad_hebb + std::size_t(p) * 2 * half;
    const bool read[2] = {reads_error_rows(coeffs[p]), reads_hebbian_rows(coeffs[p])};
    for (int part = 0; part < 2; ++part) {  // g (Out, In) = e_rowsᵀ · x, then h from the ŷ rows
      T* out = g + std::size_t(part) * half;
      if (read[part])
        gemm<T>(true, false, s.Out, s.In, s.N, T(1), rows + std::size_t(part) * s.Out, 2 * s.Out, xp, s.In, T(0), out,
                s.In);
      else
        std::fill(out, out + half, T(0));
    }
  });
}

template <typename T>
void plasticity_grads_conv(const ConvShape& s, const PlasticityCoeffs* coeffs, const T* x, const T* error_hebb,
                           T* grad_hebb, T* grad_hebb_bias) {
  std::vector<ChannelRange> rows(std::size_t(s.P));  // the stacked rows [0, Out) are g's, [Out, 2·Out) h's
  for (int p = 0; p < s.P; ++p)
    rows[std::size_t(p)] = {reads_error_rows(coeffs[p]) ? 0 : s.Cout,
                            reads_hebbian_rows(coeffs[p]) ? 2 * s.Cout : s.Cout};
  ConvShape stacked = s;
  stacked.Cout = 2 * s.Cout;
  conv2d_weight_grad_rows(stacked, rows.data(), x, error_hebb, grad_hebb, grad_hebb_bias);
}

template <typename T>
void plasticity_update(int P, int Out, int In, const PlasticityCoeffs* coeffs, const T* grad_hebb,
                       const T* mean_x, const T* mean_y, const T* mean_y2, T* w, T* sq_avg,
                       T* acc_delta, T* omega) {
  for (int p = 0; p < P; ++p) {
    if (!moves_weights(coeffs[p])) continue;  // ΔW = 0 (or a frozen net): W and its state left as they are
    const T* mx = mean_x + std::size_t(p) * In;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < Out; ++o) {
      const std::size_t row = (std::size_t(p) * Out + o) * In;
      const T* g = grad_hebb + (std::size_t(p) * 2 * Out + o) * In;
      const T* h = g + std::size_t(Out) * In;
      const T my = mean_y[std::size_t(p) * Out + o], my2 = mean_y2[std::size_t(p) * Out + o];
      T *wr = w + row, *sq = sq_avg + row, *acc = acc_delta + row, *om = omega + row;
      const PlasticityCoeffs c = coeffs[p];  // this thread's copy: no store through wr can change it
#pragma omp simd  // the synapses are independent (GCC cannot prove w, the state and Ω apart)
      for (int i = 0; i < In; ++i) update_synapse(c, g[i], h[i], mx[i], my, my2, wr[i], sq[i], acc[i], om[i]);
    }
  }
}

template <typename T>
void plasticity_bias_update(int P, int Out, const PlasticityCoeffs* coeffs, const T* gb,
                            const T* mean_y, T* b, T* sq_avg, T* acc_delta) {
  for (int p = 0; p < P; ++p) {
    const PlasticityCoeffs& c = coeffs[p];
    if (c.frozen) continue;
    const T eta = c.eta, alpha = c.alpha, gamma_h = c.gamma_h, rho_star = c.rho_star;
    const T r = c.rho, e = c.eps;
    for (int o = 0; o < Out; ++o) {
      const std::size_t k = std::size_t(p) * Out + o;
      const T g = gb[std::size_t(p) * 2 * Out + o];
      const T delta = rule_opt(c.adadelta != 0, g, r, e, sq_avg[k], acc_delta[k]);
      b[k] = b[k] + (eta * (-alpha * delta) - gamma_h * (mean_y[k] - rho_star));
    }
  }
}

template <typename T>
void route_hidden_error(int P, std::size_t per_net, const HiddenError* mode, const T* dfa_e, const T* y,
                        bool relu_after, T* e) {
  for (int p = 0; p < P; ++p) {
    const std::size_t off = std::size_t(p) * per_net;
    if (mode[p] == HiddenError::none)
      for (std::size_t i = 0; i < per_net; ++i) e[off + i] = T(0);
    else if (mode[p] == HiddenError::dfa)
      for (std::size_t i = 0; i < per_net; ++i)
        e[off + i] = !relu_after || y[off + i] > T(0) ? dfa_e[off + i] : T(0);
  }
}

template <typename T>
void pick_per_net(int P, std::size_t per_net, const std::uint8_t* use_b, const T* a, const T* b, T* out) {
  for (int p = 0; p < P; ++p) {
    const T* from = (use_b[p] ? b : a) + std::size_t(p) * per_net;
    std::copy(from, from + per_net, out + std::size_t(p) * per_net);
  }
}

template <typename T>
void plasticity_bound_rows(int P, int Out, int In, const PlasticityCoeffs* coeffs, T* w) {
  for (int p = 0; p < P; ++p) {
    const PlasticityCoeffs& c = coeffs[p];
    if (c.frozen || !(c.w_norm > 0)) continue;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < Out; ++o) {
      T* row = w + (std::size_t(p) * Out + o) * In;
      T sq = 0;
      for (int i = 0; i < In; ++i) sq += row[i] * row[i];
      const T norm = std::sqrt(sq);
      if (norm > T(c.w_norm)) {
        const T f = T(c.w_norm) / norm;
        for (int i = 0; i < In; ++i) row[i] *= f;
      }
    }
  }
}

template <typename T>
void ewc_accumulate_fisher(int P, std::size_t per_net, T scale, const T* g, T* fisher) {
  const std::size_t n = std::size_t(P) * per_net;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::size_t i = 0; i < n; ++i) fisher[i] += scale * g[i] * g[i];
}

template <typename T>
void ewc_proximal_step(int P, std::size_t per_net, const float* strength, const T* fisher,
                       const T* anchor, T* w) {
  for (int p = 0; p < P; ++p) {
    if (strength[p] == 0.0f) continue;
    const T c = strength[p];
    const std::size_t off = std::size_t(p) * per_net;
#pragma omp parallel for schedule(static) if (per_net > 65536)
    for (std::size_t i = off; i < off + per_net; ++i) {
      const T cf = c * fisher[i];
      w[i] = (w[i] + cf * anchor[i]) / (T(1) + cf);
    }
  }
}

template <typename T>
void mask_logits(int P, int N, int C, const std::uint8_t* allowed, T* logits) {
  for (int p = 0; p < P; ++p)
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c)
        if (!allowed[std::size_t(n) * C + c]) logits[(std::size_t(p) * N + n) * C + c] = T(-1e9);
}

template <typename T>
void flag_nonfinite(int P, std::size_t per_net, const T* x, std::uint8_t* flags) {
  for (int p = 0; p < P; ++p) {
    const T* xp = x + std::size_t(p) * per_net;
    bool bad = false;
#pragma omp parallel for schedule(static) reduction(|| : bad) if (per_net > 65536)
    for (std::size_t i = 0; i < per_net; ++i) bad = bad || !std::isfinite(xp[i]);
    if (bad) flags[p] = 1;
  }
}

#define EVOPLAST_INSTANTIATE(T)                                                                \
  template void stack_error_and_hebb<T>(int, int, int, int, const PlasticityCoeffs*, const T*, \
                                        const T*, const std::int32_t*, T*, T*, T*, T*);        \
  template void plasticity_bound_rows<T>(int, int, int, const PlasticityCoeffs*, T*);          \
  template void route_hidden_error<T>(int, std::size_t, const HiddenError*, const T*, const T*, bool, T*); \
  template void pick_per_net<T>(int, std::size_t, const std::uint8_t*, const T*, const T*, T*); \
  template void pre_mean_dense<T>(const DenseShape&, const T*, T*);                            \
  template void plasticity_grads_dense<T>(const DenseShape&, const PlasticityCoeffs*, const T*, const T*, T*); \
  template void pre_mean_conv<T>(const ConvShape&, const T*, T*);                              \
  template void plasticity_grads_conv<T>(const ConvShape&, const PlasticityCoeffs*, const T*, const T*, T*, T*); \
  template void plasticity_update<T>(int, int, int, const PlasticityCoeffs*, const T*,         \
                                     const T*, const T*, const T*, T*, T*, T*, T*);            \
  template void plasticity_bias_update<T>(int, int, const PlasticityCoeffs*, const T*,         \
                                          const T*, T*, T*, T*);                               \
  template void ewc_accumulate_fisher<T>(int, std::size_t, T, const T*, T*);                   \
  template void ewc_proximal_step<T>(int, std::size_t, const float*, const T*, const T*, T*); \
  template void mask_logits<T>(int, int, int, const std::uint8_t*, T*);                        \
  template void flag_nonfinite<T>(int, std::size_t, const T*, std::uint8_t*);
EVOPLAST_INSTANTIATE(float)
EVOPLAST_INSTANTIATE(double)

}  // namespace evoplast::kernels::cpu
