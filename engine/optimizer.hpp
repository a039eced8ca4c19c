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

 private:
  Backend& backend_;
  PopulationNet& net_;
  OptimizerConfig config_;
  std::vector<Buffer<float>> sq_avg_, acc_delta_;  // per Param, (P, per_net)
};

// StepLR with step size 1 epoch: lr · γ^epoch.
inline float step_lr(float lr0, float gamma, int epoch) {
  return lr0 * std::pow(gamma, float(epoch));
}

}  // namespace evoplast::engine
