// What a population needs in device memory, before anything is allocated:
// bytes per net (parameters, optimiser and plasticity state, activations and
// gradients at the largest batch), bytes that do not grow with P, and the
// CUDA backend's scratch arena (the convolutions' chunked columns, the loss
// rows, staging). The facts come from building one and two nets on a
// backend that only counts (engine/counting_backend.hpp), so the plan follows
// the network code as it changes and costs no memory, whatever the net.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "engine/network.hpp"

namespace evoplast::engine {

class MemoryPlan {
 public:
  // max_batch: the largest batch (evaluation's); train_batch: the largest a
  // learning step takes. plastic: nets learn through Plasticity (rules, FA/DFA
  // feedback weights); otherwise through the Optimizer (evolve train), with
  // each conv → ReLU → pool fused. fuses_conv_steps: whether the backend's
  // fused conv steps do without their working space (Backend::fuses_conv_steps).
  MemoryPlan(const NetSpec& spec, int max_batch, int train_batch, bool plastic, bool fuses_conv_steps = false);

  std::size_t per_net() const { return per_net_; }
  std::size_t fixed() const { return fixed_; }
  // The scratch arena's peak for P nets (the CUDA backend's; 0 elsewhere).
  std::size_t scratch(int P) const;
  // Everything P nets need; with_scratch for a backend with an arena.
  std::size_t bytes(int P, bool with_scratch) const;
  // The largest population that fits in `available` bytes (0: not even one).
  long largest_population(std::size_t available, bool with_scratch) const;

 private:
  int max_batch_;
  std::vector<kernels::ConvShape> convs_;  // the net's convolutions at P = 1, max_batch
  std::vector<kernels::DenseShape> denses_;  // its dense layers at P = 1, max_batch
  std::size_t per_net_ = 0, fixed_ = 0;
};

// Refuses (EngineError, one line) a population that does not fit in what the
// backend reports free, naming the need, the limit and the largest that fits.
void admit_population(Backend& backend, const MemoryPlan& plan, int P, int max_batch);

}  // namespace evoplast::engine
