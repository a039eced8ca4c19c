#include "engine/plasticity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>

#include "engine/errors.hpp"
#include "kernels/common.hpp"

namespace evoplast::engine {
namespace {

// Fixed random feedback weights for P nets of per_net elements each, U(±bound):
// net p's block is drawn from its own stream (seed, layer, first_net + p), so
// it does not depend on P or on how the population is sliced across ranks.
std::vector<float> feedback_weights(int P, std::size_t per_net, float bound, std::uint64_t seed, int layer,
                                    int first_net) {
  std::uniform_real_distribution<float> u(-bound, bound);
  std::vector<float> v(std::size_t(P) * per_net);
  for (int p = 0; p < P; ++p) {
    std::mt19937_64 rng(kernels::mix64(kernels::mix64(seed * 0x2545F4914F6CDD1Dull + 3 + std::uint64_t(layer)) ^
                                       std::uint64_t(first_net + p)));
    for (std::size_t j = 0; j < per_net; ++j) v[std::size_t(p) * per_net + j] = u(rng);
  }
  return v;
}

// Fits a working buffer to n floats: made once, again if n changes (the
// backend stopped fusing the step that does without it: its precision
// switched), released when n is 0 (it started fusing). Returns whether it was
// just made, for the caller to initialise it.
bool fit_working_space(Backend& backend, Buffer<float>& buffer, std::size_t n) {
  if (buffer.size() == n) return false;
  buffer = n ? Buffer<float>(backend, n) : Buffer<float>();
  return n != 0;
}

}  // namespace

Plasticity::Plasticity(Backend& backend, PopulationNet& net, std::vector<Rule> rules,
                       std::uint64_t feedback_seed, float rho, float eps, int train_batch)
    : backend_(backend),
      net_(net),
      rules_(std::move(rules)),
      rho_(rho),
      eps_(eps),
      train_batch_(train_batch > 0 ? std::min(train_batch, net.max_batch()) : net.max_batch()) {
  net_.set_conv_relu_pool_fusion(ConvReluPool::fused_keeping_activation);  // the rules read each conv's activation
  const int P = net_.population();
  if (int(rules_.size()) != P)
    throw EngineError(fmt::format("{} rules for a population of {}", rules_.size(), P));
  for (const Rule& r : rules_) {
    any_fa_ |= r.feedback == Feedback::fa;
    any_dfa_ |= r.feedback == Feedback::dfa;
    hidden_error_.push_back(r.feedback == Feedback::none  ? kernels::HiddenError::none
                            : r.feedback == Feedback::dfa ? kernels::HiddenError::dfa
                                                          : kernels::HiddenError::keep);
    uses_fa_.push_back(r.feedback == Feedback::fa);
  }
  for (int p = 0; p < P; ++p) {
    if (hidden_error_[std::size_t(p)] != kernels::HiddenError::dfa) continue;
    if (!dfa_runs_.empty() && dfa_runs_.back().first + dfa_runs_.back().second == p)
      ++dfa_runs_.back().second;
    else
      dfa_runs_.emplace_back(p, 1);
  }
  all_fa_ = std::all_of(rules_.begin(), rules_.end(), [](const Rule& r) { return r.feedback == Feedback::fa; });
  routes_error_ = std::any_of(hidden_error_.begin(), hidden_error_.end(),
                              [](kernels::HiddenError h) { return h != kernels::HiddenError::keep; });
  passes_error_down_ = std::any_of(hidden_error_.begin(), hidden_error_.end(),
                                   [](kernels::HiddenError h) { return h == kernels::HiddenError::keep; });
  diverged_.assign(std::size_t(P), 0);
  ewc_lambda_.assign(std::size_t(P), 0.0f);
  loss_sum_ = Buffer<float>(backend_, std::size_t(P));
  backend_.fill(loss_sum_.data(), std::size_t(P), 0.0f);
  loss_flags_ = Buffer<std::uint8_t>(backend_, std::size_t(P));
  loss_flags_.upload(std::vector<std::uint8_t>(std::size_t(P), 0));
  const auto& layers = net_.layers();
  const int classes = net_.spec().classes;
  const int max_batch = train_batch_;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& L = layers[i];
    if (L.spec.kind != LayerKind::conv && L.spec.kind != LayerKind::dense) continue;
    LayerState s;
    s.layer = int(i);
    s.out = L.out_c;
    s.positions = L.out_h * L.out_w;
    s.in = L.spec.kind == LayerKind::conv ? L.in_c * L.spec.k * L.spec.k : int(L.in_per_image());
    s.relu_after = i + 1 < layers.size() && layers[i + 1].spec.kind == LayerKind::relu;
    const std::size_t w = std::size_t(P) * s.out * s.in, b = std::size_t(P) * s.out;
    const auto zeros = [&](std::size_t n) {
      Buffer<float> buf(backend_, n);
      backend_.fill(buf.data(), n, 0.0f);
      return buf;
    };
    s.conv = L.spec.kind == LayerKind::conv;
    stacked_rows(s);
    s.grad_hebb = zeros(2 * w);
    s.grad_hebb_bias = zeros(2 * b);
    s.mean_x = zeros(std::size_t(P) * s.in);
    s.mean_y = zeros(b);
    s.mean_y2 = zeros(b);
    s.theta = zeros(b);
    s.sq_grad_w = zeros(w);
    s.sq_delta_w = zeros(w);
    s.omega = zeros(w);
    s.sq_grad_b = zeros(b);
    s.sq_delta_b = zeros(b);
    if (any_fa_) {
      // Fixed random feedback, scaled like the forward weights.
      s.fa_w = Buffer<float>(backend_, w);
      if (backend_.holds_values())  // a net counted, not held: its values would be 4 bytes a weight for nothing
        s.fa_w.upload(feedback_weights(P, std::size_t(s.out) * s.in, 1.0f / std::sqrt(float(s.in)), feedback_seed,
                                       int(i), net_.first_net()));
      if (!all_fa_) picked_feedback(s);  // a mixed population: each net's W or B
    }
    if (any_dfa_) {
      const std::size_t units = std::size_t(s.out) * s.positions;
      s.dfa_w = Buffer<float>(backend_, std::size_t(P) * units * classes);
      if (backend_.holds_values())
        s.dfa_w.upload(feedback_weights(P, units * classes, 1.0f / std::sqrt(float(classes)), feedback_seed,
                                        int(i) + 1000, net_.first_net()));
      s.dfa_b = zeros(std::size_t(P) * units);
      s.dfa_out = zeros(std::size_t(P) * max_batch * units);
    }
    layers_.push_back(std::move(s));
  }
  // Each net's k-winners-take-all on its hidden layers' activity.
  const int hidden = net_.spec().hidden_plastic_layers();
  for (int l = 0; l < hidden; ++l) {
    std::vector<kernels::KwtaParams> per_net;
    for (const Rule& r : rules_) per_net.push_back(r.kwta(l, hidden, net_.hidden_units(l)));
    net_.set_kwta(l, std::move(per_net));
  }
}

void Plasticity::set_ewc_lambda(std::vector<float> lambda) {
  if (int(lambda.size()) != net_.population())
    throw EngineError("set_ewc_lambda: one λ per net");
  ewc_lambda_ = std::move(lambda);
  if (ewc_enabled() && fisher_.empty())
    for (auto& prm : net_.params()) {
      for (auto* list : {&fisher_, &fisher_task_}) {
        list->emplace_back(backend_, prm.value.size());
        backend_.fill(list->back().data(), prm.value.size(), 0.0f);
      }
      anchor_.emplace_back(backend_, prm.value.size());
      backend_.copy(anchor_.back().data(), prm.value.data(), prm.value.size() * sizeof(float));
    }
}

bool Plasticity::ewc_enabled() const {
  for (float l : ewc_lambda_)
    if (l != 0) return true;
  return false;
}

void Plasticity::accumulate_fisher(float scale) {
  auto& params = net_.params();
  for (std::size_t i = 0; i < params.size() && i < fisher_task_.size(); ++i)
    backend_.ewc_accumulate_fisher(net_.population(), params[i].per_net, scale,
                                   params[i].grad.data(), fisher_task_[i].data());
}

void Plasticity::consolidate_ewc() {
  auto& params = net_.params();
  for (std::size_t i = 0; i < params.size() && i < fisher_.size(); ++i) {
    const std::size_t n = params[i].value.size();
    backend_.add_scaled(n, 1.0f, fisher_task_[i].data(), fisher_[i].data());  // F += F_task, in the backend
    backend_.fill(fisher_task_[i].data(), n, 0.0f);
    backend_.copy(anchor_[i].data(), params[i].value.data(), n * sizeof(float));
  }
}

float* Plasticity::params_value(std::size_t i) { return net_.params()[i].value.data(); }

float* Plasticity::stacked_rows(LayerState& s) {
  const bool stored = !(s.conv && backend_.fuses_conv_steps());
  const std::size_t n = std::size_t(net_.population()) * train_batch_ * 2 * s.out * s.positions;
  if (fit_working_space(backend_, s.error_hebb, stored ? n : 0)) backend_.fill(s.error_hebb.data(), n, 0.0f);
  return s.error_hebb.data();
}

float* Plasticity::picked_feedback(LayerState& s) {
  const bool stored = !backend_.fuses_conv_steps();
  fit_working_space(backend_, s.feedback_w, stored ? std::size_t(net_.population()) * s.out * s.in : 0);
  return s.feedback_w.data();
}

void Plasticity::freeze(int p) {
  if (diverged_[std::size_t(p)]) return;
  diverged_[std::size_t(p)] = 1;
  for (auto& prm : net_.params())
    backend_.fill(prm.value.data() + std::size_t(p) * prm.per_net, prm.per_net, 0.0f);
}

void Plasticity::check_weights() {
  const int P = net_.population();
  for (auto& prm : net_.params())
    backend_.flag_nonfinite(P, prm.per_net, prm.value.data(), loss_flags_.data());
  const auto flags = loss_flags_.download();
  for (int p = 0; p < P; ++p)
    if (flags[std::size_t(p)]) freeze(p);
  loss_flags_.upload(std::vector<std::uint8_t>(std::size_t(P), 0));
}

std::vector<double> Plasticity::take_loss_sums() {
  const auto sums = loss_sum_.download();
  backend_.fill(loss_sum_.data(), sums.size(), 0.0f);
  return {sums.begin(), sums.end()};
}

std::vector<float> Plasticity::step(const std::int32_t* labels, int N, float lr, int epoch) {
  step_async(labels, N, lr, epoch);
  const int P = net_.population(), C = net_.spec().classes;
  std::vector<float> loss(static_cast<std::size_t>(P));
  backend_.to_host(loss.data(), net_.loss_buffer(), loss.size() * sizeof(float));
  for (int p = 0; p < P; ++p) {
    if (!std::isfinite(loss[std::size_t(p)])) freeze(p);
    if (diverged_[std::size_t(p)]) loss[std::size_t(p)] = std::log(float(C));
  }
  return loss;
}

void Plasticity::step_async(const std::int32_t* labels, int N, float lr, int epoch) {
  const int P = net_.population(), C = net_.spec().classes;
  if (N != net_.last_batch() || !net_.last_train())
    throw EngineError("Plasticity::step: call net.forward(…, train = true) with this batch first");
  if (N > train_batch_)
    throw EngineError(fmt::format("Plasticity::step: batch {} is larger than the training batch {} it was made for",
                                  N, train_batch_));
  const auto& layers = net_.layers();
  const int last_slot = layers.back().act_out;

  // Loss and the output error e_out = ∂L/∂logits (the delta rule at the readout).
  float* e_out = net_.gradient(last_slot);
  backend_.log_softmax_nll_forward(P, N, C, net_.activation(last_slot), labels, net_.logp(),
                                   net_.loss_buffer());
  backend_.log_softmax_nll_backward(P, N, C, net_.logp(), labels, e_out);
  backend_.flag_nonfinite(P, 1, net_.loss_buffer(), loss_flags_.data());
  backend_.add_scaled(P, float(N), net_.loss_buffer(), loss_sum_.data());

  int k = int(layers_.size());  // plastic index, counted down
  const int plastic_count = int(layers_.size());
  std::vector<kernels::PlasticityCoeffs> coeffs(static_cast<std::size_t>(P));
  // Where the backend fuses, a conv under a ReLU and 2×2 pool reads its error
  // from the pool's as it is made (never stored): set at the pool, used by
  // the conv next down.
  std::optional<PooledConvError> pooled;
  for (std::size_t i = layers.size(); i-- > 0;) {
    const auto& L = layers[i];
    const float* dy = net_.gradient(L.act_out);
    // Where every net routes its hidden layers' error (DFA, none), none goes below the readout.
    float* dx = L.act_in == 0 || !passes_error_down_ ? nullptr : net_.gradient(L.act_in);
    if (L.spec.kind != LayerKind::conv && L.spec.kind != LayerKind::dense) {
      const bool fuses = backend_.fuses_conv_steps();
      if (fuses && net_.fused_dropout_at(i)) continue;  // in place after the pool: read with it, below
      if (fuses && i >= 2 && net_.fused_conv_at(i - 2)) {
        const DropoutParams dropout = net_.fused_dropout_at(i + 1) ? net_.dropout_params(i + 1) : DropoutParams{};
        pooled = PooledConvError{dy, net_.activation(L.act_out), net_.pool_argmax(i), nullptr, nullptr, nullptr,
                                 dropout};
        --i;  // the ReLU's backward is the conv's too
        continue;
      }
      if (passes_error_down_) i = std::size_t(net_.backward_nonparametric(int(i), dy, dx));
      continue;
    }
    LayerState& s = layers_[std::size_t(--k)];
    const bool is_output = k == plastic_count - 1;
    float* e = net_.gradient(L.act_out);  // (P, N, Out, S)
    const float* y = net_.activation(L.act_out);
    const float* x = net_.activation(L.act_in);
    // A population that only passes errors down leaves each hidden layer's e as it is.
    if (!is_output && routes_error_) route_error(s, N, e_out, y, e, pooled);
    if (pooled) pooled->act = y;
    const bool through_relu = dx && net_.input_relu_at(i);  // the ReLU below then needs no pass
    for (int p = 0; p < P; ++p) {
      coeffs[std::size_t(p)] = rules_[std::size_t(p)].coeffs(k, plastic_count, lr, epoch, rho_, eps_);
      coeffs[std::size_t(p)].frozen = diverged_[std::size_t(p)];
    }
    if (pooled) {
      conv_backward_pooled(L, s, N, *pooled, coeffs, x, y, e, through_relu, dx);
    } else {
      if (dx) pass_error_down(L, s, N, x, e, through_relu, dx);  // before W changes
      if (s.conv)
        conv_hebbian_sums(L, s, N, coeffs, x, y, e);
      else
        dense_hebbian_sums(L, s, N, coeffs, is_output ? labels : nullptr, x, y, e);
    }
    update_layer(L, s, N, coeffs, x);
    if (through_relu) --i;  // the ReLU below this conv: its backward was the conv's
    pooled.reset();
  }
}

// One pass for all nets, each by its own feedback mode (hidden_error_).
void Plasticity::route_error(LayerState& s, int N, const float* e_out, const float* y, float* e,
                             std::optional<PooledConvError>& pooled) {
  const int P = net_.population(), C = net_.spec().classes;
  const std::size_t units = std::size_t(s.out) * s.positions;
  // Each DFA net's e_out through its fixed random matrix: (P, N, Out·S), the other nets' slices untouched.
  for (const auto& [first, count] : dfa_runs_)
    backend_.dense_forward(DenseShape{count, N, C, int(units), false}, e_out + std::size_t(first) * N * C,
                           s.dfa_w.data() + std::size_t(first) * units * C, s.dfa_b.data() + std::size_t(first) * units,
                           s.dfa_out.data() + std::size_t(first) * N * units);
  if (pooled) {  // routed as the error is read
    pooled->mode = hidden_error_.data();
    pooled->dfa_e = any_dfa_ ? s.dfa_out.data() : nullptr;
  } else {
    backend_.route_hidden_error(P, std::size_t(N) * units, hidden_error_.data(), any_dfa_ ? s.dfa_out.data() : nullptr,
                                y, s.relu_after, e);
  }
}

// The weights the error goes down through: every net by FA, its fixed B as
// it is; otherwise W (a mix reads each net's W or B where it lies where the
// backend fuses, picked by uses_fa_).
const float* Plasticity::weights_down(const PopulationNet::Layer& L, LayerState& s) {
  return all_fa_ ? s.fa_w.data() : net_.params()[std::size_t(L.w)].value.data();
}

void Plasticity::pass_error_down(const PopulationNet::Layer& L, LayerState& s, int N, const float* x, float* e,
                                 bool through_relu, float* dx) {
  const int P = net_.population();
  const float* w = net_.params()[std::size_t(L.w)].value.data();
  const float* wfb = weights_down(L, s);
  const bool mixed = any_fa_ && !all_fa_;
  if (L.spec.kind == LayerKind::conv) {
    const ConvShape cs{P, N, L.in_c, L.in_h, L.in_w, L.out_c, L.spec.k, L.shared_input, through_relu};
    if (mixed)
      backend_.conv2d_input_grad_picked(cs, uses_fa_.data(), x, w, s.fa_w.data(), e, picked_feedback(s), dx);
    else
      backend_.conv2d_backward(cs, x, wfb, e, dx, nullptr, nullptr);
    return;
  }
  const DenseShape ds{P, N, s.in, s.out, L.shared_input};
  // Where the backend fuses, every population's dx comes from one kernel (a net's sums, and so its
  // records, do not depend on its neighbours' feedback: what MPI ranks' slices rely on), and the nets
  // on DFA or none get none (nothing reads it).
  const bool fuses = backend_.fuses_conv_steps(), skips = routes_error_ && fuses;
  if (mixed || fuses)
    backend_.dense_input_grad_picked(ds, skips ? hidden_error_.data() : nullptr, mixed ? uses_fa_.data() : nullptr,
                                     x, wfb, s.fa_w.data(), e, mixed ? picked_feedback(s) : nullptr, dx);
  else
    backend_.dense_backward(ds, x, wfb, e, dx, nullptr, nullptr);
}

namespace {
// Some net's coefficient `term` is not 0: the step it enables is taken for the population.
bool any_net_has(const std::vector<kernels::PlasticityCoeffs>& coeffs, float kernels::PlasticityCoeffs::*term) {
  return std::any_of(coeffs.begin(), coeffs.end(), [term](const kernels::PlasticityCoeffs& c) { return c.*term != 0; });
}
// ⟨x⟩ enters only as B·⟨x⟩: where every net's B is 0 it is not taken (stays 0).
bool reads_pre_mean(const std::vector<kernels::PlasticityCoeffs>& coeffs) {
  return any_net_has(coeffs, &kernels::PlasticityCoeffs::B);
}
}  // namespace

void Plasticity::conv_hebbian_sums(const PopulationNet::Layer& L, LayerState& s, int N,
                                   const std::vector<kernels::PlasticityCoeffs>& coeffs, const float* x, const float* y,
                                   float* e) {
  // The stacked rows made as they are read where the backend fuses.
  const ConvShape cs{net_.population(), N, L.in_c, L.in_h, L.in_w, L.out_c, L.spec.k, L.shared_input};
  backend_.plasticity_conv_grads(cs, coeffs.data(), x, e, y, s.theta.data(), stacked_rows(s), s.grad_hebb.data(),
                                 s.grad_hebb_bias.data(), s.mean_y.data(), s.mean_y2.data());
  if (reads_pre_mean(coeffs)) backend_.pre_mean_conv(cs, x, s.mean_x.data());
}

void Plasticity::conv_backward_pooled(const PopulationNet::Layer& L, LayerState& s, int N,
                                      const PooledConvError& pooled,
                                      const std::vector<kernels::PlasticityCoeffs>& coeffs, const float* x,
                                      const float* y, float* e, bool through_relu, float* dx) {
  const bool mixed = any_fa_ && !all_fa_;
  const ConvShape cs{net_.population(), N, L.in_c, L.in_h, L.in_w, L.out_c, L.spec.k, L.shared_input, through_relu};
  backend_.plastic_conv_backward_pooled(cs, pooled, mixed ? uses_fa_.data() : nullptr, weights_down(L, s),
                                        s.fa_w.data(), mixed ? picked_feedback(s) : nullptr, dx, coeffs.data(), x, y,
                                        s.theta.data(), e, stacked_rows(s), s.grad_hebb.data(),
                                        s.grad_hebb_bias.data(), s.mean_y.data(), s.mean_y2.data());
  if (reads_pre_mean(coeffs)) backend_.pre_mean_conv(cs, x, s.mean_x.data());
}

void Plasticity::dense_hebbian_sums(const PopulationNet::Layer& L, LayerState& s, int N,
                                    const std::vector<kernels::PlasticityCoeffs>& coeffs,
                                    const std::int32_t* readout_labels, const float* x, const float* y,
                                    const float* e) {
  // The bias rows only here: the weights' [g; h] comes with their update (update_layer).
  const int P = net_.population();
  const bool label_gated = any_net_has(coeffs, &kernels::PlasticityCoeffs::label_mix);
  // The label enters the Hebbian post factor at the readout only (its units are the classes).
  backend_.stack_error_and_hebb(P, N, s.out, s.positions, coeffs.data(), e, y, label_gated ? readout_labels : nullptr,
                                s.theta.data(), s.error_hebb.data(), s.mean_y.data(), s.mean_y2.data());
  const DenseShape ds{P, N, s.in, 2 * s.out, L.shared_input};
  backend_.dense_backward(ds, x, nullptr, s.error_hebb.data(), nullptr, nullptr, s.grad_hebb_bias.data());
  if (reads_pre_mean(coeffs))
    backend_.pre_mean_dense(DenseShape{P, N, s.in, s.out, L.shared_input}, x, s.mean_x.data());
}

void Plasticity::update_layer(const PopulationNet::Layer& L, LayerState& s, int N,
                              const std::vector<kernels::PlasticityCoeffs>& coeffs, const float* x) {
  // The fused epilogue: every term, the optimiser state, Ω, the clip, once per synapse.
  const int P = net_.population();
  Param& pw = net_.params()[std::size_t(L.w)];
  Param& pb = net_.params()[std::size_t(L.b)];
  if (L.spec.kind == LayerKind::conv)
    backend_.plasticity_update(P, s.out, s.in, coeffs.data(), s.grad_hebb.data(), s.mean_x.data(), s.mean_y.data(),
                               s.mean_y2.data(), pw.value.data(), s.sq_grad_w.data(), s.sq_delta_w.data(),
                               s.omega.data());
  else  // [g; h] and the update together (one kernel on the GPU)
    backend_.plasticity_update_dense(DenseShape{P, N, s.in, s.out, L.shared_input}, coeffs.data(), x,
                                     s.error_hebb.data(), s.grad_hebb.data(), s.mean_x.data(), s.mean_y.data(),
                                     s.mean_y2.data(), pw.value.data(), s.sq_grad_w.data(), s.sq_delta_w.data(),
                                     s.omega.data());
  if (any_net_has(coeffs, &kernels::PlasticityCoeffs::w_norm))
    backend_.plasticity_bound_rows(P, s.out, s.in, coeffs.data(), pw.value.data());
  backend_.plasticity_bias_update(P, s.out, coeffs.data(), s.grad_hebb_bias.data(), s.mean_y.data(), pb.value.data(),
                                  s.sq_grad_b.data(), s.sq_delta_b.data());
  if (!ewc_enabled()) return;
  // EWC pulls the nets that use it back toward the last task's weights.
  std::vector<float> strength(static_cast<std::size_t>(P));
  for (int p = 0; p < P; ++p)
    strength[std::size_t(p)] =
        diverged_[std::size_t(p)] ? 0.0f : coeffs[std::size_t(p)].eta * ewc_lambda_[std::size_t(p)];
  for (const Param* prm : {&pw, &pb}) {
    const std::size_t i = std::size_t(prm == &pw ? L.w : L.b);
    backend_.ewc_proximal_step(P, prm->per_net, strength.data(), fisher_[i].data(), anchor_[i].data(),
                               params_value(i));
  }
}

}  // namespace evoplast::engine
