#include "engine/network.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cmath>
#include <random>

#include "engine/counting_backend.hpp"
#include "engine/errors.hpp"

namespace evoplast::engine {

NetSpec NetSpec::seed_cnn() {
  NetSpec s;
  s.name = "cnn";
  s.layers = {{LayerKind::conv, 32, 3},      {LayerKind::relu},
              {LayerKind::conv, 64, 3},      {LayerKind::relu},
              {LayerKind::maxpool, 0, 2},    {LayerKind::dropout, 0, 0, 0.25f},
              {LayerKind::flatten},          {LayerKind::dense, 128},
              {LayerKind::relu},             {LayerKind::dropout, 0, 0, 0.5f},
              {LayerKind::dense, 10}};
  return s;
}

NetSpec NetSpec::mlp(const std::vector<int>& hidden) {
  NetSpec s;
  s.name = "mlp";
  s.layers.push_back({LayerKind::flatten});
  for (int h : hidden) {
    s.name += fmt::format("-{}", h);
    s.layers.push_back({LayerKind::dense, h});
    s.layers.push_back({LayerKind::relu});
  }
  s.layers.push_back({LayerKind::dense, s.classes});
  return s;
}

NetSpec NetSpec::parse(std::string_view text) {
  const auto bad = [&] {
    return EngineError(fmt::format("--net '{}': expected cnn, or mlp with hidden widths such as "
                                   "mlp400x2, mlp1000x2 or mlp256-128",
                                   text));
  };
  if (text == "cnn") return seed_cnn();
  if (!text.starts_with("mlp")) throw bad();
  std::string_view rest = text.substr(3);
  if (rest.starts_with("-")) rest.remove_prefix(1);
  constexpr int kMaxWidth = 1 << 16, kMaxDepth = 64;
  // A positive count, at most `limit`; `what` names it in the error.
  const auto number = [&](std::string_view& s, std::string_view what, int limit) {
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    int v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + digits, v);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && v > limit))
      throw EngineError(
          fmt::format("--net '{}': {} {} is over the limit of {}", text, what, s.substr(0, digits), limit));
    if (ec == std::errc() && v == 0)
      throw EngineError(fmt::format("--net '{}': {} 0: must be at least 1", text, what));
    if (ec != std::errc() || v < 0) throw bad();
    s.remove_prefix(std::size_t(ptr - s.data()));
    return v;
  };
  std::vector<int> hidden;
  const int first = number(rest, "a layer of width", kMaxWidth);
  if (rest.starts_with("x")) {  // mlp400x2: width × depth
    rest.remove_prefix(1);
    const int depth = number(rest, "a depth of", kMaxDepth);
    if (!rest.empty()) throw bad();
    hidden.assign(std::size_t(depth), first);
  } else {  // mlp256-128: explicit widths
    hidden.push_back(first);
    while (!rest.empty()) {
      if (!rest.starts_with("-")) throw bad();
      rest.remove_prefix(1);
      hidden.push_back(number(rest, "a layer of width", kMaxWidth));
    }
  }
  return mlp(hidden);
}

std::string NetSpec::describe() const {
  std::string out = fmt::format("{}: in {}x{}x{}", name, in_c, in_h, in_w);
  for (const auto& l : layers) switch (l.kind) {
      case LayerKind::conv: out += fmt::format(" → conv{}k{}", l.units, l.k); break;
      case LayerKind::dense: out += fmt::format(" → dense{}", l.units); break;
      case LayerKind::relu: out += " → relu"; break;
      case LayerKind::maxpool: out += fmt::format(" → maxpool{}", l.k); break;
      case LayerKind::dropout: out += fmt::format(" → dropout{:g}", l.rate); break;
      case LayerKind::flatten: out += " → flatten"; break;
    }
  return out;
}

int NetSpec::hidden_plastic_layers() const {
  int n = 0;
  for (const auto& l : layers) n += l.kind == LayerKind::conv || l.kind == LayerKind::dense;
  return n - 1;
}

NetSpec NetSpec::adapted(int h, int w, int c) const {
  NetSpec s = *this;
  s.in_h = h;
  s.in_w = w;
  s.classes = c;
  if (!s.layers.empty() && s.layers.back().kind == LayerKind::dense) s.layers.back().units = c;
  return s;
}

PopulationNet::PopulationNet(Backend& backend, NetSpec spec, int population, int max_batch,
                             ConvReluPool conv_relu_pool)
    : backend_(backend),
      spec_(std::move(spec)),
      P_(population),
      max_batch_(max_batch),
      conv_relu_pool_(conv_relu_pool) {
  try {
    allocate();
  } catch (const OutOfDeviceMemory& e) {
    // Measure one net's need exactly by building it on a backend that only counts.
    CountingBackend counting;
    { PopulationNet one(counting, spec_, 1, max_batch_); }
    const double per_net = double(counting.bytes);
    // What this net already holds is given back as the exception unwinds.
    std::size_t held = 0;
    for (const auto& b : acts_) held += b.size() * sizeof(float);
    for (const auto& b : grads_) held += b.size() * sizeof(float);
    for (const auto& b : argmax_) held += b.size() * sizeof(std::int32_t);
    for (const auto& p : params_) held += (p.value.size() + p.grad.size()) * sizeof(float);
    const double free_before = double(e.free) + double(held);
    const long fits = long(free_before / per_net);
    throw PopulationTooLarge(fmt::format("out of device memory for {} nets at batch {}: {:.0f} MiB per net, "
                                         "{:.0f} MiB free; {}",
                                         P_, max_batch_, per_net / (1 << 20), free_before / (1 << 20),
                                         fits >= 1 ? fmt::format("{} net{} would fit", fits, fits == 1 ? "" : "s")
                                                   : std::string("not even one net fits at this batch size")),
                             P_, fits);
  }
}

void PopulationNet::allocate() {
  if (P_ < 1) throw EngineError(fmt::format("population {}: must be at least 1", P_));
  if (max_batch_ < 1) throw EngineError(fmt::format("batch {}: must be at least 1", max_batch_));
  if (spec_.layers.empty() || spec_.layers.back().kind != LayerKind::dense ||
      spec_.layers.back().units != spec_.classes)
    throw EngineError(fmt::format("net {}: the last layer must be dense with {} outputs",
                                  spec_.name, spec_.classes));

  int c = spec_.in_c, h = spec_.in_h, w = spec_.in_w;
  int slot = 0;  // activation slot 0 is the shared input
  slot_floats_.push_back(0);
  int conv_count = 0, dense_count = 0;
  const auto new_slot = [&](std::size_t per_image) {  // allocated by fit_slots below, if used
    slot_floats_.push_back(std::size_t(P_) * max_batch_ * per_image);
    return int(slot_floats_.size()) - 1;
  };
  const auto add_param = [&](std::string name, std::size_t per_net, std::size_t fan_in) {
    params_.push_back(Param{std::move(name), per_net, fan_in,
                            Buffer<float>(backend_, per_net * P_),
                            Buffer<float>(backend_, per_net * P_)});
    return int(params_.size()) - 1;
  };

  for (std::size_t i = 0; i < spec_.layers.size(); ++i) {
    const LayerSpec& ls = spec_.layers[i];
    Layer L{ls, c, h, w, c, h, w};
    L.act_in = slot;
    switch (ls.kind) {
      case LayerKind::conv: {
        if (ls.k < 1 || ls.k > h || ls.k > w || ls.units < 1)
          throw EngineError(fmt::format("net {}: conv layer {} (k={}) does not fit a {}x{} input",
                                        spec_.name, i, ls.k, h, w));
        L.out_c = ls.units;
        L.out_h = h - ls.k + 1;
        L.out_w = w - ls.k + 1;
        ++conv_count;
        const std::size_t fan_in = std::size_t(c) * ls.k * ls.k;
        L.w = add_param(fmt::format("conv{}.w", conv_count), std::size_t(ls.units) * fan_in, fan_in);
        L.b = add_param(fmt::format("conv{}.b", conv_count), std::size_t(ls.units), fan_in);
        break;
      }
      case LayerKind::dense: {
        const std::size_t fan_in = std::size_t(c) * h * w;  // implicit flatten
        L.out_c = ls.units;
        L.out_h = L.out_w = 1;
        ++dense_count;
        L.w = add_param(fmt::format("fc{}.w", dense_count), std::size_t(ls.units) * fan_in, fan_in);
        L.b = add_param(fmt::format("fc{}.b", dense_count), std::size_t(ls.units), fan_in);
        break;
      }
      case LayerKind::maxpool:
        if (ls.k < 1 || h / ls.k < 1 || w / ls.k < 1)
          throw EngineError(fmt::format("net {}: maxpool layer {} (k={}) does not fit {}x{}",
                                        spec_.name, i, ls.k, h, w));
        L.out_h = h / ls.k;
        L.out_w = w / ls.k;
        break;
      case LayerKind::flatten:
        L.out_c = c * h * w;
        L.out_h = L.out_w = 1;
        break;
      case LayerKind::relu:
      case LayerKind::dropout:
        if (slot == 0)
          throw EngineError(fmt::format("net {}: layer {} cannot act on the input directly",
                                        spec_.name, i));
        if (ls.kind == LayerKind::dropout && !(ls.rate >= 0 && ls.rate < 1))
          throw EngineError(fmt::format("net {}: dropout rate {} must be in [0, 1)", spec_.name,
                                        ls.rate));
        break;
    }
    const bool parametric = ls.kind == LayerKind::conv || ls.kind == LayerKind::dense;
    L.shared_input = parametric && slot == 0;
    if (parametric || ls.kind == LayerKind::maxpool) {
      if (slot == 0 && !parametric)
        throw EngineError(fmt::format("net {}: layer {} cannot act on the input directly",
                                      spec_.name, i));
      slot = new_slot(L.out_per_image());
    }
    L.act_out = slot;
    argmax_.emplace_back();
    if (ls.kind == LayerKind::maxpool)
      argmax_.back() = Buffer<std::int32_t>(backend_, std::size_t(P_) * max_batch_ *
                                                          L.out_per_image());
    layers_.push_back(L);
    c = L.out_c;
    h = L.out_h;
    w = L.out_w;
  }
  kwta_.resize(layers_.size());
  acts_.resize(slot_floats_.size());
  grads_.resize(slot_floats_.size());
  fit_slots();
  logp_ = Buffer<float>(backend_, std::size_t(P_) * max_batch_ * spec_.classes);
  loss_ = Buffer<float>(backend_, P_);
  correct_ = Buffer<std::int64_t>(backend_, P_);
}

void PopulationNet::fit_slots() {
  slots_fit_fused_ = backend_.fuses_conv_steps();
  // Whether slot is a fused conv's output: its error is then read from the
  // pool's as it is made, never stored (backprop's and the rules' alike).
  const auto fused_output = [&](std::size_t slot) {
    if (!slots_fit_fused_) return false;
    for (std::size_t i = 0; i < layers_.size(); ++i)
      if (fused_conv_at(i) && std::size_t(layers_[i].act_out) == slot) return true;
    return false;
  };
  // A slot is either absent or whole.
  const auto fit = [&](Buffer<float>& slot, std::size_t need) {
    if (slot.size() != need) slot = Buffer<float>(backend_, need);
  };
  for (std::size_t slot = 0; slot < slot_floats_.size(); ++slot) {
    const bool spared = fused_output(slot);
    // The activation stays where the rules read it (fused_keeping_activation).
    fit(acts_[slot], spared && conv_relu_pool_ == ConvReluPool::fused ? 0 : slot_floats_[slot]);
    fit(grads_[slot], spared ? 0 : slot_floats_[slot]);
  }
}

std::size_t PopulationNet::params_per_net() const {
  std::size_t n = 0;
  for (const auto& p : params_) n += p.per_net;
  return n;
}

void PopulationNet::init_params(std::uint64_t seed, bool same_for_all) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Param& prm = params_[i];
    std::vector<float> host(prm.per_net * P_);
    const float bound = 1.0f / std::sqrt(float(prm.fan_in));
    for (int p = 0; p < P_; ++p) {
      // One stream per (parameter, net): net p's weights never depend on P.
      std::mt19937_64 rng(seed * 1000003ull + i * 7919ull + std::uint64_t(same_for_all ? 0 : first_net_ + p));
      std::uniform_real_distribution<float> u(-bound, bound);
      for (std::size_t j = 0; j < prm.per_net; ++j) host[p * prm.per_net + j] = u(rng);
    }
    prm.value.upload(host);
  }
}

const float* PopulationNet::forward(const float* x, int N, bool train, std::uint64_t dropout_seed,
                                    std::uint64_t step) {
  if (N < 1 || N > max_batch_)
    throw EngineError(fmt::format("forward: batch {} outside [1, {}]", N, max_batch_));
  if (backend_.fuses_conv_steps() != slots_fit_fused_) fit_slots();  // its convolution switched
  input_ = x;
  last_N_ = N;
  last_train_ = train;
  last_seed_ = dropout_seed;
  last_step_ = step;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& L = layers_[i];
    const float* in = act(L.act_in);
    float* out = L.act_out == 0 ? nullptr : acts_[L.act_out].data();
    if (fused_conv_at(i)) {  // this conv, the ReLU and the pool after it (and a dropout after that) in one step
      const Layer& pool = layers_[i + 2];
      const bool dropout = fused_dropout_at(i + 3);
      // The conv's activation where the rules read it or the backend composes (null: its slot is absent).
      const bool keep = (conv_relu_pool_ == ConvReluPool::fused_keeping_activation && train) ||
                        !backend_.fuses_conv_steps();
      backend_.conv2d_relu_pool_forward(
          ConvShape{P_, N, L.in_c, L.in_h, L.in_w, L.out_c, L.spec.k, L.shared_input},
          dropout ? dropout_params(i + 3) : DropoutParams{}, in, params_[L.w].value.data(),
          params_[L.b].value.data(), keep ? out : nullptr, acts_[pool.act_out].data(), argmax_[i + 2].data());
      i += dropout ? 3 : 2;
      continue;
    }
    switch (L.spec.kind) {
      case LayerKind::conv: {
        const ConvShape cs{P_, N, L.in_c, L.in_h, L.in_w, L.out_c, L.spec.k, L.shared_input};
        const float* w = params_[L.w].value.data();
        const float* b = params_[L.b].value.data();
        if (i + 1 < layers_.size() && layers_[i + 1].spec.kind == LayerKind::relu) {
          backend_.conv2d_relu_forward(cs, in, w, b, out);  // the ReLU as y is written (in place: one slot)
          kwta_forward(++i, N);
        } else {
          backend_.conv2d_forward(cs, in, w, b, out);
        }
        break;
      }
      case LayerKind::dense:
        backend_.dense_forward(
            DenseShape{P_, N, int(L.in_per_image()), L.out_c, L.shared_input}, in,
            params_[L.w].value.data(), params_[L.b].value.data(), out);
        break;
      case LayerKind::relu:
        backend_.relu_forward(std::size_t(P_) * N * L.out_per_image(), in, out);
        kwta_forward(i, N);
        break;
      case LayerKind::maxpool:
        backend_.maxpool2d_forward(PoolShape{std::int64_t(P_) * N * L.in_c, L.in_h, L.in_w,
                                             L.spec.k},
                                   in, out, argmax_[i].data());
        break;
      case LayerKind::dropout:
        if (train && L.spec.rate > 0)
          backend_.dropout_forward(P_, std::size_t(N) * L.out_per_image(), dropout_params(i), in, out);
        break;
      case LayerKind::flatten: break;
    }
  }
  if (head_mask_)
    backend_.mask_logits(P_, N, spec_.classes, head_mask_, acts_[layers_.back().act_out].data());
  return act(layers_.back().act_out);
}

std::vector<float> PopulationNet::backward(const std::int32_t* labels, int N) {
  backward_async(labels, N);
  return loss_.download();
}

void PopulationNet::backward_async(const std::int32_t* labels, int N, DenseAdadelta* adadelta) {
  if (N != last_N_ || !input_)
    throw EngineError("backward: call forward with the same batch first");
  const int C = spec_.classes;
  const Layer& last = layers_.back();
  backend_.log_softmax_nll_forward(P_, N, C, act(last.act_out), labels, logp_.data(),
                                   loss_.data());
  backend_.log_softmax_nll_backward(P_, N, C, logp_.data(), labels, grads_[last.act_out].data());
  for (std::size_t i = layers_.size(); i-- > 0;) {
    const Layer& L = layers_[i];
    const float* dy = grads_[L.act_out].data();
    float* dx = L.act_in == 0 ? nullptr : grads_[L.act_in].data();
    if (fused_dropout_at(i)) continue;  // run with the conv, ReLU and pool below it
    if (i >= 2 && fused_conv_at(i - 2)) {  // the pool of a fused triple: all three below, at its conv
      const Layer& conv = layers_[i - 2];
      const bool through_relu = input_relu_at(i - 2);
      // The error of the step's output: the pool's, or the fused dropout's (the same slot: in place).
      backend_.conv2d_relu_pool_backward(
          ConvShape{P_, N, conv.in_c, conv.in_h, conv.in_w, conv.out_c, conv.spec.k, conv.shared_input,
                    through_relu},
          fused_dropout_at(i + 1) ? dropout_params(i + 1) : DropoutParams{}, act(conv.act_in),
          params_[conv.w].value.data(), acts_[conv.act_out].data(), acts_[L.act_out].data(), argmax_[i].data(),
          grads_[L.act_out].data(), grads_[conv.act_out].data(),
          conv.act_in == 0 ? nullptr : grads_[conv.act_in].data(), params_[conv.w].grad.data(),
          params_[conv.b].grad.data());
      i -= through_relu ? 3 : 2;  // the ReLU below the conv is done too
      continue;
    }
    switch (L.spec.kind) {
      case LayerKind::conv: {
        const bool through_relu = input_relu_at(i);
        backend_.conv2d_backward(
            ConvShape{P_, N, L.in_c, L.in_h, L.in_w, L.out_c, L.spec.k, L.shared_input, through_relu},
            act(L.act_in), params_[L.w].value.data(), dy, dx, params_[L.w].grad.data(),
            params_[L.b].grad.data());
        if (through_relu) --i;  // the ReLU below is done
        break;
      }
      case LayerKind::dense: {
        const DenseShape s{P_, N, int(L.in_per_image()), L.out_c, L.shared_input};
        if (adadelta) {
          backend_.dense_backward_adadelta(s, adadelta->lr, adadelta->rho, adadelta->eps, act(L.act_in),
                                           params_[L.w].value.data(), dy, dx, params_[L.w].grad.data(),
                                           params_[L.b].grad.data(), adadelta->sq_avg[std::size_t(L.w)],
                                           adadelta->acc_delta[std::size_t(L.w)]);
          adadelta->stepped[std::size_t(L.w)] = true;
        } else {
          backend_.dense_backward(s, act(L.act_in), params_[L.w].value.data(), dy, dx, params_[L.w].grad.data(),
                                  params_[L.b].grad.data());
        }
        break;
      }
      default: i = std::size_t(backward_nonparametric(int(i), dy, dx)); break;
    }
  }
}

bool PopulationNet::input_relu_at(std::size_t i) const {
  return i >= 1 && i < layers_.size() && layers_[i].spec.kind == LayerKind::conv && layers_[i].act_in != 0 &&
         layers_[i - 1].spec.kind == LayerKind::relu && kwta_[i - 1].per_net.empty();
}

bool PopulationNet::fused_conv_at(std::size_t i) const {
  return conv_relu_pool_ != ConvReluPool::layered && i + 2 < layers_.size() &&
         layers_[i].spec.kind == LayerKind::conv && layers_[i + 1].spec.kind == LayerKind::relu &&
         kwta_[i + 1].per_net.empty() && layers_[i + 2].spec.kind == LayerKind::maxpool && layers_[i + 2].spec.k == 2;
}

void PopulationNet::kwta_forward(std::size_t relu, int N) {
  const Layer& L = layers_[relu];
  if (!kwta_[relu].per_net.empty())
    backend_.kwta_forward(P_, N, int(L.out_per_image()), kwta_[relu].per_net.data(), acts_[L.act_out].data(),
                          kwta_[relu].scale.data());
}

bool PopulationNet::fused_dropout_at(std::size_t i) const {
  return i >= 3 && i < layers_.size() && fused_conv_at(i - 3) && layers_[i].spec.kind == LayerKind::dropout;
}

DropoutParams PopulationNet::dropout_params(std::size_t i) const {
  // Off outside training (rate 0: nothing drawn, nothing scaled).
  const float rate = last_train_ ? layers_[i].spec.rate : 0.0f;
  return DropoutParams{rate, last_seed_, int(i), last_step_, first_net_};
}

int PopulationNet::backward_nonparametric(int i, const float* dy, float* dx) {
  const Layer& L = layers_[std::size_t(i)];
  const int N = last_N_;
  switch (L.spec.kind) {
    case LayerKind::relu:
      if (!kwta_[std::size_t(i)].per_net.empty()) {  // k-WTA came after the ReLU: its backward first
        backend_.kwta_backward(P_, N, int(L.out_per_image()), kwta_[std::size_t(i)].per_net.data(),
                               act(L.act_out), kwta_[std::size_t(i)].scale.data(), dy, dx);
        dy = dx;
      }
      backend_.relu_backward(std::size_t(P_) * N * L.out_per_image(), act(L.act_out), dy, dx);
      break;
    case LayerKind::maxpool: {
      if (!dx) break;
      const PoolShape ps{std::int64_t(P_) * N * L.in_c, L.in_h, L.in_w, L.spec.k};
      const std::size_t below = std::size_t(i) - 1;
      // A ReLU right below (in place: its output is this pool's input, its error dx) runs along.
      if (i >= 1 && layers_[below].spec.kind == LayerKind::relu && kwta_[below].per_net.empty()) {
        backend_.maxpool2d_relu_backward(ps, dy, argmax_[std::size_t(i)].data(), act(L.act_out), act(L.act_in), dx);
        return i - 1;
      }
      backend_.maxpool2d_backward(ps, dy, argmax_[std::size_t(i)].data(), dx);
      break;
    }
    case LayerKind::dropout:
      if (last_train_ && L.spec.rate > 0)
        backend_.dropout_backward(P_, std::size_t(N) * L.out_per_image(),
                                  dropout_params(std::size_t(i)), dy, dx);
      break;
    case LayerKind::flatten: break;
    case LayerKind::conv:
    case LayerKind::dense:
      throw EngineError("backward_nonparametric: layer has parameters");
  }
  return i;
}

int PopulationNet::relu_after_hidden(int hidden) const {
  int seen = 0;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const LayerKind k = layers_[i].spec.kind;
    if (k != LayerKind::conv && k != LayerKind::dense) continue;
    if (seen++ != hidden) continue;
    if (i + 1 < layers_.size() && layers_[i + 1].spec.kind == LayerKind::relu) return int(i + 1);
    return -1;
  }
  return -1;
}

int PopulationNet::hidden_units(int hidden) const {
  if (hidden < 0 || hidden >= spec_.hidden_plastic_layers())
    throw EngineError(fmt::format("net {}: no hidden plastic layer {}", spec_.name, hidden));
  int seen = 0;
  for (const auto& L : layers_)
    if ((L.spec.kind == LayerKind::conv || L.spec.kind == LayerKind::dense) && seen++ == hidden)
      return int(L.out_per_image());
  return 0;
}

void PopulationNet::set_kwta(int hidden, std::vector<kernels::KwtaParams> per_net) {
  const int units = hidden_units(hidden);  // throws for a bad index
  if (int(per_net.size()) != P_)
    throw EngineError(fmt::format("set_kwta: {} settings for a population of {}", per_net.size(), P_));
  bool active = false;
  for (auto& k : per_net) {
    k.keep = std::clamp(k.keep, 1, units);
    active |= k.keep < units || k.normalise;
  }
  const int relu = relu_after_hidden(hidden);
  if (active && relu < 0)
    throw EngineError(fmt::format("net {}: k-winners-take-all needs a ReLU after hidden layer {}",
                                  spec_.name, hidden));
  if (relu < 0) return;
  Kwta& k = kwta_[std::size_t(relu)];
  if (!active) {
    k = Kwta{};
  } else {
    k.per_net = std::move(per_net);
    if (k.scale.size() == 0) k.scale = Buffer<float>(backend_, std::size_t(P_) * max_batch_);
  }
  fit_slots();  // a conv before k-WTA is not fused
}

void PopulationNet::score(const std::int32_t* labels, int N, std::vector<double>& loss_sum,
                          std::vector<std::int64_t>& correct) {
  const int C = spec_.classes;
  const float* logits = act(layers_.back().act_out);
  backend_.log_softmax_nll_forward(P_, N, C, logits, labels, logp_.data(), loss_.data());
  backend_.count_correct(P_, N, C, logits, labels, correct_.data());
  const auto loss = loss_.download();
  const auto hits = correct_.download();
  loss_sum.resize(P_, 0.0);
  correct.resize(P_, 0);
  for (int p = 0; p < P_; ++p) {
    loss_sum[p] += double(loss[p]) * N;
    correct[p] += hits[p];
  }
}

}  // namespace evoplast::engine
