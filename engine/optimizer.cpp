#include "engine/optimizer.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "engine/errors.hpp"

namespace evoplast::engine {

Optimizer::Optimizer(Backend& backend, PopulationNet& net, OptimizerConfig config)
    : backend_(backend), net_(net), config_(std::move(config)) {
  if (config_.kind != "adadelta" && config_.kind != "sgd")
    throw EngineError(fmt::format("--optimizer '{}': choose adadelta or sgd", config_.kind));
  if (config_.kind == "adadelta") {
    for (auto& prm : net_.params()) {
      sq_avg_.emplace_back(backend_, prm.value.size());
      acc_delta_.emplace_back(backend_, prm.value.size());
      backend_.fill(sq_avg_.back().data(), prm.value.size(), 0.0f);  // on the device: no host copy
      backend_.fill(acc_delta_.back().data(), prm.value.size(), 0.0f);
      along_.sq_avg.push_back(sq_avg_.back().data());
      along_.acc_delta.push_back(acc_delta_.back().data());
    }
    along_.rho = config_.rho;
    along_.eps = config_.eps;
    along_.stepped.assign(sq_avg_.size(), false);
  }
}

void Optimizer::step(const std::vector<float>& lr) { step_except(lr, {}); }

void Optimizer::backward_and_step(const std::int32_t* labels, int N, const std::vector<float>& lr) {
  if (config_.kind != "adadelta") {
    net_.backward_async(labels, N);
    return step(lr);
  }
  check_rates(lr);
  along_.lr = lr.data();
  std::fill(along_.stepped.begin(), along_.stepped.end(), false);
  net_.backward_async(labels, N, &along_);
  step_except(lr, along_.stepped);
}

void Optimizer::check_rates(const std::vector<float>& lr) const {
  if (int(lr.size()) != net_.population())
    throw EngineError(fmt::format("optimizer: {} learning rates for {} nets", lr.size(), net_.population()));
}

void Optimizer::step_except(const std::vector<float>& lr, const std::vector<bool>& stepped) {
  check_rates(lr);
  const int P = net_.population();
  auto& params = net_.params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i < stepped.size() && stepped[i]) continue;  // stepped by the backward pass already
    Param& prm = params[i];
    if (config_.kind == "sgd")
      backend_.sgd_step(P, prm.per_net, lr.data(), prm.value.data(), prm.grad.data());
    else
      backend_.adadelta_step(P, prm.per_net, lr.data(), config_.rho, config_.eps,
                             prm.value.data(), prm.grad.data(), sq_avg_[i].data(),
                             acc_delta_[i].data());
  }
}

}  // namespace evoplast::engine
