// The Adadelta step of one synapse, shared by the plain optimiser and the
// plasticity epilogue so that α = 1 reproduces the baseline bit for bit.
#pragma once
#include <cmath>

#include "kernels/common.hpp"

namespace evoplast::kernels {

// v ← ρ·v + (1−ρ)·g²;  δ = √(u + ε) / √(v + ε) · g;  u ← ρ·u + (1−ρ)·δ².  Returns δ.
template <typename T>
EVOPLAST_HD T adadelta_delta(T g, T r, T e, T& sq_avg, T& acc_delta) {
  const T v = r * sq_avg + (T(1) - r) * g * g;
  const T delta = std::sqrt(acc_delta + e) / std::sqrt(v + e) * g;
  acc_delta = r * acc_delta + (T(1) - r) * delta * delta;
  sq_avg = v;
  return delta;
}

// opt(g) of a rule: Adadelta with per-synapse state, or plain SGD (δ = g).
template <typename T>
EVOPLAST_HD T rule_opt(bool adadelta, T g, T r, T e, T& sq_avg, T& acc_delta) {
  return adadelta ? adadelta_delta(g, r, e, sq_avg, acc_delta) : g;
}

}  // namespace evoplast::kernels
