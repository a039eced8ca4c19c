// Sparsity family: k-winners-take-all over each sample's units, per net.
//
// For each of P nets and N samples, the `units` activities of one layer
// (dense: its features; conv: every channel and position) keep their `keep`
// largest values and the rest become 0. Ties at the keep-th value go to the
// lower unit index, so exactly `keep` units win whatever the data: order is
// by the value's ordered bit pattern (kwta_key), identical on CPU and GPU,
// and total even for −0, ±Inf and NaN (a diverged net must not break the
// selection). keep ≥ units turns the selection off (every unit wins).
//
// With `normalise`, the winners are rescaled so their root-mean-square is 1:
//   y_i = s·r_i on winners, s = √keep / (‖r_winners‖₂ + ε)
// and the backward pass is that map's exact Jacobian (s treated as a
// function of r):  dr_i = s·(dy_i − y_i·⟨y, dy⟩ / keep).
// On a unit with y = 0 (a loser, or a winner on ReLU's kink) dr = 0, as
// relu_backward would give it.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/common.hpp"

namespace evoplast::kernels {

// One net's k-WTA at one layer.
struct KwtaParams {
  int keep = 1 << 30;  // winners per sample; ≥ units: no selection
  int normalise = 0;   // 1: winners rescaled to unit RMS
};

constexpr float kKwtaEps = 1e-6f;

// A float's order as an unsigned key: a > b ⇔ key(a) > key(b) for ordered
// floats, and a total order over every bit pattern.
EVOPLAST_HD std::uint32_t kwta_key(float v) {
  std::uint32_t u;
#if defined(__CUDA_ARCH__)
  u = __float_as_uint(v);
#else
  std::memcpy(&u, &v, sizeof u);
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

}  // namespace evoplast::kernels

namespace evoplast::kernels::cpu {

template <typename T>
void kwta_forward(int P, int N, int units,
                  const KwtaParams* params,  // (P), host
                  T* y,                      // (P, N, units): activities in, winners out
                  T* scale);                 // (P, N): s per sample (1 without normalise)

// dx may alias dy.
template <typename T>
void kwta_backward(int P, int N, int units,
                   const KwtaParams* params,  // (P), host
                   const T* y,                // (P, N, units): kwta_forward's output
                   const T* scale,            // (P, N): kwta_forward's s
                   const T* dy,               // (P, N, units)
                   T* dx);                    // (P, N, units)

}  // namespace evoplast::kernels::cpu
