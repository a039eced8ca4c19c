// Learning by plasticity rules: after a forward pass, the loss and the error
// signal of each net's feedback pathway (backprop, feedback alignment, direct
// feedback alignment, or none), then the fused local update per plastic layer
// (kernels/plasticity.hpp), each net with its own rule. Also holds the
// per-synapse state (optimiser, importance Ω, BCM threshold θ), the fixed
// random feedback weights, EWC's Fisher and anchor, and divergence isolation.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "engine/network.hpp"
#include "engine/rule.hpp"

namespace evoplast::engine {

class Plasticity {
 public:
  // rules: one per net. feedback_seed draws the FA/DFA feedback weights.
  // train_batch: the largest N a step takes (0: the net's max batch); the
  // per-sample buffers are sized by it, not by the (larger) evaluation batch.
  Plasticity(Backend& backend, PopulationNet& net, std::vector<Rule> rules,
             std::uint64_t feedback_seed, float rho = 0.9f, float eps = 1e-6f, int train_batch = 0);

  // One learning step after net.forward(x, N, train = true, …). epoch counts
  // within the current task. step_async leaves everything on the device: the
  // loss is summed (× N) for take_loss_sums() and non-finite losses flagged
  // for check_weights(); step also reads the mean loss of each net back
  // (host, P) and isolates a diverged net at once.
  void step_async(const std::int32_t* labels, int N, float lr, int epoch);
  std::vector<float> step(const std::int32_t* labels, int N, float lr, int epoch);
  // Σ over steps of N · loss per net since the last call (host, P); the sum restarts.
  std::vector<double> take_loss_sums();

  const std::vector<Rule>& rules() const { return rules_; }

  // EWC (online: one Fisher summed over tasks, anchored at the latest task's end).
  void set_ewc_lambda(std::vector<float> lambda);  // (P); 0 disables it for a net
  bool ewc_enabled() const;
  // After net.forward + net.backward on one sample: F_task += scale · grad².
  void accumulate_fisher(float scale);
  // At a task boundary: F += F_task, w* = w.
  void consolidate_ewc();

  // Nets found with a non-finite loss or weight are frozen, their weights
  // zeroed (so they output a finite uniform guess), and reported here.
  const std::vector<std::uint8_t>& diverged() const { return diverged_; }
  // Checks every weight and the losses flagged since the last check (call
  // once in a while, e.g. per epoch: it reads from the device).
  void check_weights();

 private:
  struct LayerState {
    int layer = -1;           // index in net.layers()
    bool conv = false;        // a conv layer (else dense)
    int out = 0, in = 0, positions = 1;
    bool relu_after = false;
    // error_hebb: [e | ŷ/(N·S)] stacked as 2·Out rows (P, N, 2·Out, S); grad_hebb:
    // its weight-gradient pass, [g; h] (P, 2·Out, In); grad_hebb_bias: [⟨e⟩; ⟨ŷ⟩] (P, 2·Out),
    // of which only ⟨e⟩ is read (a backend that fuses a conv layer's step leaves ⟨ŷ⟩ unwritten).
    Buffer<float> error_hebb, grad_hebb, grad_hebb_bias, mean_x, mean_y, mean_y2, theta;
    // Adadelta's running averages of g² and Δ² for weights and biases; importance Ω.
    Buffer<float> sq_grad_w, sq_delta_w, omega, sq_grad_b, sq_delta_b;
    Buffer<float> fa_w, feedback_w;      // FA: random (P, Out, In); a mix of FA and not: the picked weights
                                         // dx uses, where the backend does not fuse (picked_feedback)
    Buffer<float> dfa_w, dfa_b, dfa_out;  // DFA: (P, Out·S, classes), zeros, (P, N, Out·S)
  };

  // The steps of one plastic layer in step_async, in order. e: the layer's
  // error (P, N, Out, S; where pooled is set, working space its error is made
  // in unless the backend fuses), y its output, x its input; pooled: the
  // error of a conv under a ReLU and 2×2 pool, read from the pool's.
  // The error a hidden layer learns from, by each net's feedback mode (into e, or into pooled).
  void route_error(LayerState& s, int N, const float* e_out, const float* y, float* e,
                   std::optional<PooledConvError>& pooled);
  // The error to the layer below, dx (P, N, In…), through W (backprop) or B (FA), before W changes.
  void pass_error_down(const PopulationNet::Layer& L, LayerState& s, int N, const float* x, float* e,
                       bool through_relu, float* dx);
  // The error and Hebbian sums the update reads: [g; h] (conv) or the stacked
  // rows and bias sums (dense, whose [g; h] comes with its update), ⟨y⟩, ⟨y²⟩, θ, ⟨x⟩.
  void conv_hebbian_sums(const PopulationNet::Layer& L, LayerState& s, int N,
                         const std::vector<kernels::PlasticityCoeffs>& coeffs, const float* x, const float* y,
                         float* e);
  // A conv under a ReLU and pool: both steps above from the pool's error
  // (pass_error_down where dx is not null, then conv_hebbian_sums) in one
  // backend call, which makes that error once for both.
  void conv_backward_pooled(const PopulationNet::Layer& L, LayerState& s, int N, const PooledConvError& pooled,
                            const std::vector<kernels::PlasticityCoeffs>& coeffs, const float* x, const float* y,
                            float* e, bool through_relu, float* dx);
  // The weights the error goes down through as it lies (W, or every net's B where all learn by FA).
  const float* weights_down(const PopulationNet::Layer& L, LayerState& s);
  // readout_labels: the batch's labels at the readout (label-gated rules), else null.
  void dense_hebbian_sums(const PopulationNet::Layer& L, LayerState& s, int N,
                          const std::vector<kernels::PlasticityCoeffs>& coeffs, const std::int32_t* readout_labels,
                          const float* x, const float* y, const float* e);
  // The fused update of W (every term, the optimiser state, Ω), the row bound, the bias, EWC's pull.
  void update_layer(const PopulationNet::Layer& L, LayerState& s, int N,
                    const std::vector<kernels::PlasticityCoeffs>& coeffs, const float* x);

  void freeze(int p);
  // error_hebb, allocated where the stacked rows are stored: every dense layer,
  // and a conv layer unless the backend makes them as it reads them
  // (Backend::fuses_conv_steps; then null).
  float* stacked_rows(LayerState& s);
  // feedback_w, allocated in a mixed population unless the backend reads each
  // net's W or B where it lies (Backend::fuses_conv_steps; then null).
  float* picked_feedback(LayerState& s);
  float* params_value(std::size_t i);

  Backend& backend_;
  PopulationNet& net_;
  std::vector<Rule> rules_;
  float rho_, eps_;
  int train_batch_;
  std::vector<LayerState> layers_;
  bool any_fa_ = false, any_dfa_ = false, all_fa_ = false;
  std::vector<kernels::HiddenError> hidden_error_;  // (P) what each net's hidden layers learn from
  bool routes_error_ = false;  // some net's hidden error is not the one passed down (none or DFA)
  // (first net, count) of each run of consecutive nets on DFA: the projection
  // is made for them only (its output is read for no other net).
  std::vector<std::pair<int, int>> dfa_runs_;
  // Some net's hidden error is the one passed down (backprop or FA): else no
  // error goes below the readout, every hidden layer's being routed.
  bool passes_error_down_ = true;
  std::vector<std::uint8_t> uses_fa_;               // (P) 1: the error goes down through B, not W
  std::vector<float> ewc_lambda_;
  std::vector<Buffer<float>> fisher_, fisher_task_, anchor_;  // per Param
  std::vector<std::uint8_t> diverged_;
  Buffer<float> loss_sum_;            // (P)
  Buffer<std::uint8_t> loss_flags_;   // (P) a non-finite loss was seen
};

}  // namespace evoplast::engine
