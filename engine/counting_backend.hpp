// A backend that only counts what it is asked to allocate: every allocation
// returns a placeholder never dereferenced, every operation does nothing. The
// memory plan builds networks on it to learn their size without holding them.
#pragma once
#include <cstdint>

#include "engine/backend.hpp"

namespace evoplast::engine {

class CountingBackend final : public Backend {
 public:
  std::size_t bytes = 0;
  // Counts for a backend that runs conv → ReLU → pool without its working space.
  bool fused_conv_steps = false;

  std::string name() const override { return "counting"; }
  void* allocate(std::size_t n) override {
    bytes += n;
    return reinterpret_cast<void*>(std::uintptr_t(256));  // never dereferenced: no operation runs
  }
  void release(void*) noexcept override {}
  void to_device(void*, const void*, std::size_t) override {}
  void to_host(void*, const void*, std::size_t) override {}
  void copy(void*, const void*, std::size_t) override {}
  std::size_t memory_available() const override { return SIZE_MAX; }
  bool holds_values() const override { return false; }
  bool fuses_conv_steps() const override { return fused_conv_steps; }

  void conv2d_forward(const ConvShape&, const float*, const float*, const float*, float*) override {}
  void conv2d_backward(const ConvShape&, const float*, const float*, const float*, float*, float*, float*) override {}
  void dense_forward(const DenseShape&, const float*, const float*, const float*, float*) override {}
  void dense_backward(const DenseShape&, const float*, const float*, const float*, float*, float*, float*) override {}
  void maxpool2d_forward(const PoolShape&, const float*, float*, std::int32_t*) override {}
  void maxpool2d_backward(const PoolShape&, const float*, const std::int32_t*, float*) override {}
  void relu_forward(std::size_t, const float*, float*) override {}
  void relu_backward(std::size_t, const float*, const float*, float*) override {}
  void dropout_forward(int, std::size_t, const DropoutParams&, const float*, float*) override {}
  void dropout_backward(int, std::size_t, const DropoutParams&, const float*, float*) override {}
  void log_softmax_nll_forward(int, int, int, const float*, const std::int32_t*, float*, float*) override {}
  void log_softmax_nll_backward(int, int, int, const float*, const std::int32_t*, float*) override {}
  void count_correct(int, int, int, const float*, const std::int32_t*, std::int64_t*) override {}
  void sgd_step(int, std::size_t, const float*, float*, const float*) override {}
  void adadelta_step(int, std::size_t, const float*, float, float, float*, const float*, float*, float*) override {}
  void fill(float*, std::size_t, float) override {}
  void stack_error_and_hebb(int, int, int, int, const PlasticityCoeffs*, const float*, const float*,
                            const std::int32_t*, float*, float*, float*, float*) override {}
  void plasticity_bound_rows(int, int, int, const PlasticityCoeffs*, float*) override {}
  void route_hidden_error(int, std::size_t, const kernels::HiddenError*, const float*, const float*, bool,
                          float*) override {}
  void plasticity_update_dense(const DenseShape&, const PlasticityCoeffs*, const float*, const float*, float*,
                               const float*, const float*, const float*, float*, float*, float*, float*) override {}
  void pick_per_net(int, std::size_t, const std::uint8_t*, const float*, const float*, float*) override {}
  void kwta_forward(int, int, int, const KwtaParams*, float*, float*) override {}
  void kwta_backward(int, int, int, const KwtaParams*, const float*, const float*, const float*, float*) override {}
  void pre_mean_dense(const DenseShape&, const float*, float*) override {}
  void pre_mean_conv(const ConvShape&, const float*, float*) override {}
  void plasticity_update(int, int, int, const PlasticityCoeffs*, const float*, const float*, const float*,
                         const float*, float*, float*, float*, float*) override {}
  void plasticity_bias_update(int, int, const PlasticityCoeffs*, const float*, const float*, float*, float*,
                              float*) override {}
  void ewc_accumulate_fisher(int, std::size_t, float, const float*, float*) override {}
  void ewc_proximal_step(int, std::size_t, const float*, const float*, const float*, float*) override {}
  void mask_logits(int, int, int, const std::uint8_t*, float*) override {}
  void flag_nonfinite(int, std::size_t, const float*, std::uint8_t*) override {}
  void gather_batch(const GatherShape&, const std::uint8_t*, const std::uint8_t*, const std::int32_t*,
                    const std::int32_t*, const std::int32_t*, const float*, const float*, const std::uint16_t*,
                    const std::int8_t*, const std::uint8_t*, float*, std::int32_t*, std::uint8_t*) override {}
  void add_scaled(std::size_t, float, const float*, float*) override {}
  void shuffle_order(std::size_t, std::uint64_t, std::int32_t*) override {}
};

}  // namespace evoplast::engine
