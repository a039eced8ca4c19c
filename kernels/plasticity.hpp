// Plasticity family: the statistics a local rule needs and the fused update
// of docs/design.md, per plastic layer, for P nets each with its own rule.
//
// A plastic layer has Out post-synaptic units and In pre-synaptic inputs
// (dense: In features; conv: In = Cin·K·K patch elements, statistics averaged
// over the S = Ho·Wo positions too). Per minibatch:
//   g = ⟨e ⊗ x⟩ (the error term; = the loss gradient under backprop)
//   h = ⟨ŷ ⊗ x⟩, ŷ = (1 − μ)·y·((1 − bcm) + bcm·(y − θ)) + μ·onehot(label),
//                 θ ← (1 − τ)·θ + τ·⟨y²⟩
//   (μ = label_mix, the readout only: μ = 1 is label-gated associative
//   learning, only the labelled class's synapses from active inputs change)
// Both come from ONE weight-gradient pass over x: the error and ŷ/(N·S) are
// stacked as 2·Out rows (stack_error_and_hebb), and the layer's ordinary
// weight-gradient kernel (dense/conv backward with dx = null) returns [g; h].
// Then one epilogue per synapse (plasticity_update):
//   δ = opt(g)                                         (SGD: g; Adadelta: per-synapse state)
//   ΔW = η·(−α·δ + A·h + B·⟨x⟩ + C·⟨y⟩ + D) − ω·⟨y²⟩·W − λ·W
//   ΔW ← ΔW / (1 + κ·Ω)
//   Ω ← ρ_Ω·Ω + s_g·|g·ΔW| + s_h·|h|
//   W ← clip(W + ΔW, ±w_max)                           (w_max = 0: no clipping)
// then (plasticity_bound_rows) each unit's incoming row is scaled back to
// ‖W_o‖₂ ≤ w_norm (w_norm = 0: no bound), so associative weights stay finite;
// and for the bias: Δb = η·(−α·opt(⟨e⟩)) − γ_h·(⟨y⟩ − ρ*).
#pragma once
#include <cstdint>

#include "kernels/common.hpp"
#include "kernels/optim_math.hpp"

namespace evoplast::kernels {

// One net's rule at one layer, decoded, with η already scheduled for this step.
struct PlasticityCoeffs {
  float eta = 0;
  float alpha = 0, A = 0, B = 0, C = 0, D = 0, omega = 0, lambda = 0;
  float bcm = 0, kappa = 0, rho_omega = 0, s_g = 0, s_h = 0, gamma_h = 0, rho_star = 0;
  float w_max = 0;
  float label_mix = 0;  // μ: the Hebbian post factor's share of the one-hot label (readout)
  float w_norm = 0;     // bound on each unit's incoming ‖W_o‖₂, 0: none
  int adadelta = 1;  // 1: opt = Adadelta (ρ, ε below), 0: SGD
  float rho = 0.9f, eps = 1e-6f;
  int frozen = 0;    // 1: a diverged net, left untouched
};

constexpr float kBcmTau = 0.1f;  // rate of the BCM threshold's running average

// The Hebbian post factor of activity y under BCM share bcm and threshold θ,
// before the label's share and the 1/(N·S): y·((1 − bcm) + bcm·(y − θ)).
template <typename T>
EVOPLAST_HD T hebb_post(T y, T theta, T bcm) {
  return y * ((T(1) - bcm) + bcm * (y - theta));
}

// One synapse's update under its net's rule: opt(g), the Hebbian, pre, post
// and constant terms, the decays, consolidation, Ω and the clip — written
// once, term by term, for the CPU, the GPU's update kernel and the GEMM
// epilogue that fuses it (all built without FMA contraction), so they round
// alike. g, h: the synapse's error and Hebbian averages; mean_x, mean_y,
// mean_y2: ⟨x_i⟩, ⟨y_o⟩, ⟨y_o²⟩.
template <typename T>
EVOPLAST_HD void update_synapse(const PlasticityCoeffs& c, T g, T h, T mean_x, T mean_y, T mean_y2, T& w,
                                T& sq_avg, T& acc_delta, T& omega) {
  const T delta = rule_opt(c.adadelta != 0, g, T(c.rho), T(c.eps), sq_avg, acc_delta);
  T dw = T(c.eta) * (-T(c.alpha) * delta + T(c.A) * h + T(c.B) * mean_x + T(c.C) * mean_y + T(c.D)) -
         T(c.omega) * mean_y2 * w - T(c.lambda) * w;
  dw = dw / (T(1) + T(c.kappa) * omega);
  omega = T(c.rho_omega) * omega + T(c.s_g) * std::fabs(g * dw) + T(c.s_h) * std::fabs(h);
  T nw = w + dw;
  const T w_max = T(c.w_max);
  if (w_max > 0) nw = nw > w_max ? w_max : (nw < -w_max ? -w_max : nw);  // NaN stays NaN (divergence shows)
  w = nw;
}

// Whether a net's rule can move its weights at a layer: some term of ΔW is
// on, or the clip (which may pull a weight in without one). Where none is,
// ΔW = 0 exactly, and the update of W, its optimiser state and Ω is
// skipped (the fly's fixed hidden layers: 2 000·784 synapses per net);
// that state then stays as it was where the update would have moved it
// (Ω by s_h·|h|, Adadelta's by g), which nothing reads.
EVOPLAST_HD bool moves_weights(const PlasticityCoeffs& c) {
  return !c.frozen && (c.alpha != 0.0f || c.A != 0.0f || c.B != 0.0f || c.C != 0.0f || c.D != 0.0f ||
                       c.omega != 0.0f || c.lambda != 0.0f || c.w_max > 0.0f);
}

// Which half of a net's stacked rows [e | ŷ] its rule reads. g enters the
// update only through α (opt(g)) and s_g (Ω's |g·ΔW|), and its rows' sums
// (the bias's ⟨e⟩) only through α; h only through A and s_h; a net whose
// weights do not move (moves_weights; a frozen net) reads neither. A half
// that is not read is stacked as 0, so its product is 0 and a backend may
// skip it: a rule pays only for the products it uses (backprop-like rules,
// A = s_h = 0, make no h; the fly's fixed hidden layers neither g nor h).
// What changes is only the optimiser state of a net with α = 0, which then
// sees g = 0, and reads nothing.
EVOPLAST_HD bool reads_error_rows(const PlasticityCoeffs& c) {
  return moves_weights(c) && (c.alpha != 0.0f || c.s_g != 0.0f);
}
EVOPLAST_HD bool reads_hebbian_rows(const PlasticityCoeffs& c) {
  return moves_weights(c) && (c.A != 0.0f || c.s_h != 0.0f);
}

// What a net's hidden layer learns from (its rule's feedback): the error that
// came down through W or feedback alignment's B (keep), nothing (none), or
// the direct projection of the output error (dfa).
enum class HiddenError : std::uint8_t { keep = 0, none = 1, dfa = 2 };

// A conv plastic layer's output error e (P, N, Out, Ho, Wo) where a ReLU and
// a 2×2 max-pool follow the conv, described by what it is made from: what
// maxpool2d_relu_backward and then route_hidden_error (relu_after) store.
// A net on keep gets the pool's error at its window's maximum where the ReLU
// passed it (y > 0), else 0; on dfa, the projection dfa_e where act > 0; on
// none, 0. A backend that fuses reads it so, and e is never stored.
struct PooledConvError {
  const float* dy;             // (P, N, Out, Ho/2, Wo/2): the pool's output error
  const float* y;              // (P, N, Out, Ho/2, Wo/2): the pool's output
  const std::int32_t* argmax;  // (P, N, Out, Ho/2, Wo/2): the maximum's index in its Ho×Wo plane
  const HiddenError* mode;     // (P), host in the engine, device in the kernels; null: every net keeps
  const float* dfa_e;          // (P, N, Out, Ho, Wo), or null where no net is on dfa
  const float* act;            // (P, N, Out, Ho, Wo): the ReLU's output
  // The dropout after the pool, in place (dy is then its output's error, y
  // its output: y > 0 where the element was kept and the ReLU passed), its
  // scale applied as the error is read (its own backward never runs); rate 0: none.
  DropoutParams dropout = {};
};

}  // namespace evoplast::kernels

namespace evoplast::kernels::cpu {

// error_hebb = [e | ŷ/(N·S)] along the unit axis; mean_y = ⟨y⟩, mean_y2 = ⟨y²⟩ over
// (n, s); θ moves toward ⟨y²⟩ after ŷ used its old value. labels: null, or
// (with S = 1 and Out = classes, the readout) the minibatch's labels, mixed
// into ŷ by each net's label_mix. A half a net's rule does not read
// (reads_error_rows, reads_hebbian_rows) is written as 0.
template <typename T>
void stack_error_and_hebb(int P, int N, int Out, int S,
                          const PlasticityCoeffs* coeffs,  // (P), host
                          const T* e,        // (P, N, Out, S)
                          const T* y,        // (P, N, Out, S) post-synaptic activity
                          const std::int32_t* labels,  // (N) or null
                          T* theta,          // (P, Out) BCM threshold, updated
                          T* error_hebb,     // (P, N, 2·Out, S), overwritten
                          T* mean_y,         // (P, Out), overwritten
                          T* mean_y2);       // (P, Out), overwritten

// ⟨x⟩ over the minibatch (dense).
template <typename T>
void pre_mean_dense(const DenseShape& s,
                    const T* x,        // shared_input ? (N, In) : (P, N, In)
                    T* mean_x);        // (P, In), overwritten

// ⟨x_patch⟩ over the minibatch and the positions (conv): (P, Cin·K·K).
template <typename T>
void pre_mean_conv(const ConvShape& s, const T* x, T* mean_x);

// A dense layer's [g; h] = stacked rowsᵀ · x per net, each half only where
// the net's rule reads it (the other written as 0, what the product of its
// zero rows gives for a finite x): a backprop-like rule pays for g alone.
template <typename T>
void plasticity_grads_dense(const DenseShape& s,             // the layer: Out units, In inputs
                            const PlasticityCoeffs* coeffs,  // (P), host
                            const T* x,                      // shared_input ? (N, In) : (P, N, In)
                            const T* error_hebb,             // (P, N, 2·Out) from stack_error_and_hebb
                            T* grad_hebb);                   // (P, 2·Out, In), overwritten

// A conv layer's [g; h] and [Σe; Σŷ] from its stacked rows, each half only
// where the net's rule reads it (the other written as 0, as for a dense layer).
template <typename T>
void plasticity_grads_conv(const ConvShape& s,             // the layer: Cout = Out
                           const PlasticityCoeffs* coeffs,  // (P), host
                           const T* x,                      // as conv2d_forward reads it
                           const T* error_hebb,             // (P, N, 2·Out, Ho·Wo) from stack_error_and_hebb
                           T* grad_hebb,                    // (P, 2·Out, Cin·K·K), overwritten
                           T* grad_hebb_bias);              // (P, 2·Out), overwritten

// The fused epilogue over every synapse of every net.
template <typename T>
void plasticity_update(int P, int Out, int In,
                       const PlasticityCoeffs* coeffs,  // (P), host
                       const T* grad_hebb,  // (P, 2·Out, In): g rows then h rows
                       const T* mean_x,   // (P, In)
                       const T* mean_y,   // (P, Out)
                       const T* mean_y2,  // (P, Out)
                       T* w,              // (P, Out, In)
                       T* sq_avg,         // (P, Out, In) Adadelta v (unused under SGD)
                       T* acc_delta,      // (P, Out, In) Adadelta u
                       T* omega);         // (P, Out, In) importance Ω

// A hidden layer's error, in place, by each net's HiddenError: kept, zeroed,
// or replaced by the DFA projection (through the layer's ReLU derivative,
// y > 0, when relu_after). One pass for the whole population.
template <typename T>
void route_hidden_error(int P, std::size_t per_net,  // per_net = N·Out·S
                        const HiddenError* mode,     // (P), host
                        const T* dfa_e,              // (P, per_net), or null when no net's mode is dfa
                        const T* y,                  // (P, per_net) the layer's output
                        bool relu_after,
                        T* e);                       // (P, per_net), updated

// out_p = use_b[p] ? b_p : a_p for each net p: the weights each net's error
// goes down through (W, or feedback alignment's fixed B), in one pass.
template <typename T>
void pick_per_net(int P, std::size_t per_net,
                  const std::uint8_t* use_b,  // (P), host
                  const T* a, const T* b,     // (P, per_net)
                  T* out);                    // (P, per_net), overwritten

// W_o ← W_o · min(1, w_norm / ‖W_o‖₂) for each unit o of each net with w_norm > 0.
template <typename T>
void plasticity_bound_rows(int P, int Out, int In,
                           const PlasticityCoeffs* coeffs,  // (P), host
                           T* w);                           // (P, Out, In)

template <typename T>
void plasticity_bias_update(int P, int Out,
                            const PlasticityCoeffs* coeffs,  // (P), host
                            const T* gb,       // (P, 2·Out): ⟨e⟩ rows first (the bias gradient)
                            const T* mean_y,   // (P, Out)
                            T* b,              // (P, Out)
                            T* sq_avg,         // (P, Out)
                            T* acc_delta);     // (P, Out)

// EWC: F += scale·g² (one sample's gradient); and the penalty ½λ·F·(w − w*)²
// applied as a proximal (implicit) step after the rule's update:
//   w ← (w + c·F·w*) / (1 + c·F),  c = η·λ
// which is stable for any λ whatever the optimiser (an explicit gradient
// through Adadelta turns a stiff penalty into sign-like oscillation, seen
// forgetting *more* as λ grew), and freezes w at w* as λ → ∞.
template <typename T>
void ewc_accumulate_fisher(int P, std::size_t per_net, T scale, const T* g, T* fisher);
template <typename T>
void ewc_proximal_step(int P, std::size_t per_net,
                       const float* strength,  // c = η·λ per net: (P), host
                       const T* fisher,        // (P, per_net)
                       const T* anchor,        // (P, per_net)
                       T* w);                  // (P, per_net)

// Logits of classes outside each row's allowed set (task-incremental heads)
// become −1e9, so they take no probability mass and receive no gradient.
template <typename T>
void mask_logits(int P, int N, int C, const std::uint8_t* allowed /* (N, C) */,
                 T* logits /* (P, N, C) */);

// flags[p] = 1 where net p's block holds a NaN or ±Inf (flags are OR-ed in).
template <typename T>
void flag_nonfinite(int P, std::size_t per_net, const T* x, std::uint8_t* flags /* (P) */);

}  // namespace evoplast::kernels::cpu
