// Optimisers over a PopulationNet's parameters, with a learning rate per net,
// and the StepLR schedule.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "engine/network.hpp"

namespace evoplast::engine {

struct OptimizerConfig {
  std::string kind = "adadelta";  // "adadelta" or "sgd"
  float rho = 0.9f, eps = 1e-6f;  // Adadelta, torch defaults
};

class Optimizer {
 public:
  Optimizer(Backend& backend, PopulationNet& net, OptimizerConfig config);
  // One step for every net with its own rate: lr is a host array of P rates.
  void step(const std::vector<float>& lr);
  // The net's backward pass (after its forward) and this step: with Adadelta
  // the dense layers' weights are stepped as their gradients are made
  // (PopulationNet::DenseAdadelta), the other parameters after; the same
  // result as backward_async then step.
  void backward_and_step(const std::int32_t* labels, int N, const std::vector<float>& lr);

 private:
  void check_rates(const std::vector<float>& lr) const;
  // step, but for the parameters marked in stepped (per Param; shorter: none).
  void step_except(const std::vector<float>& lr, const std::vector<bool>& stepped);

  Backend& backend_;
  PopulationNet& net_;
  OptimizerConfig config_;
  std::vector<Buffer<float>> sq_avg_, acc_delta_;  // per Param, (P, per_net)
  PopulationNet::DenseAdadelta along_;              // handed to the backward pass (made once: no host work per step)
};

// StepLR with step size 1 epoch: lr · γ^epoch.
inline float step_lr(float lr0, float gamma, int epoch) {
  return lr0 * std::pow(gamma, float(epoch));
}

}  // namespace evoplast::engine
