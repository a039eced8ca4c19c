// The CPU backend: host memory and the kernels/*_cpu.cpp implementations.
#pragma once
#include <string>

#include "engine/backend.hpp"
#include "kernels/rounding.hpp"

namespace evoplast::engine {

class CpuBackend : public Backend {
 public:
  // precision "fp32" (the reference), or "tf32" or "bf16" emulated: every
  // GEMM operand rounded as a GPU's tensor cores round theirs, the products
  // summed in fp32 (kernels::OperandRounding) — a card's accuracy at
  // that precision, not its speed. Throws std::invalid_argument for any other.
  explicit CpuBackend(const std::string& precision = "fp32");
  std::string name() const override { return name_; }
  void* allocate(std::size_t bytes) override;
  void release(void* ptr) noexcept override;
  void to_device(void* dst, const void* src, std::size_t bytes) override;
  void to_host(void* dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  std::size_t memory_available() const override;  // MemAvailable of /proc/meminfo

  void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                      float* y) override;
  void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override;
  void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b,
                     float* y) override;
  void dense_backward(const DenseShape& s, const float* x, const float* w, const float* dy,
                      float* dx, float* dw, float* db) override;
  void maxpool2d_forward(const PoolShape& s, const float* x, float* y,
                         std::int32_t* argmax) override;
  void maxpool2d_backward(const PoolShape& s, const float* dy, const std::int32_t* argmax,
                          float* dx) override;
  void relu_forward(std::size_t n, const float* x, float* y) override;
  void relu_backward(std::size_t n, const float* y, const float* dy, float* dx) override;
  void dropout_forward(int P, std::size_t per_net, const DropoutParams& d, const float* x,
                       float* y) override;
  void dropout_backward(int P, std::size_t per_net, const DropoutParams& d, const float* dy,
                        float* dx) override;
  void log_softmax_nll_forward(int P, int N, int C, const float* logits,
                               const std::int32_t* labels, float* logp, float* loss) override;
  void log_softmax_nll_backward(int P, int N, int C, const float* logp,
                                const std::int32_t* labels, float* dlogits) override;
  void count_correct(int P, int N, int C, const float* scores, const std::int32_t* labels,
                     std::int64_t* correct) override;
  void sgd_step(int P, std::size_t per_net, const float* lr, float* w, const float* g) override;
  void adadelta_step(int P, std::size_t per_net, const float* lr, float rho, float eps, float* w,
                     const float* g, float* sq_avg, float* acc_delta) override;
  void fill(float* x, std::size_t n, float value) override;
  void stack_error_and_hebb(int P, int N, int Out, int S, const PlasticityCoeffs* coeffs,
                            const float* e, const float* y, const std::int32_t* labels, float* theta,
                            float* error_hebb, float* mean_y, float* mean_y2) override;
  void plasticity_bound_rows(int P, int Out, int In, const PlasticityCoeffs* coeffs, float* w) override;
  void plasticity_update_dense(const DenseShape& s, const PlasticityCoeffs* coeffs, const float* x,
                               const float* error_hebb, float* grad_hebb, const float* mean_x, const float* mean_y,
                               const float* mean_y2, float* w, float* sq_avg, float* acc_delta,
                               float* omega) override;
  void plasticity_conv_grads(const ConvShape& s, const PlasticityCoeffs* coeffs, const float* x, const float* e,
                             const float* y, float* theta, float* error_hebb, float* grad_hebb,
                             float* grad_hebb_bias, float* mean_y, float* mean_y2) override;
  void route_hidden_error(int P, std::size_t per_net, const kernels::HiddenError* mode, const float* dfa_e,
                          const float* y, bool relu_after, float* e) override;
  void pick_per_net(int P, std::size_t per_net, const std::uint8_t* use_b, const float* a, const float* b,
                    float* out) override;
  void kwta_forward(int P, int N, int units, const KwtaParams* params, float* y, float* scale) override;
  void kwta_backward(int P, int N, int units, const KwtaParams* params, const float* y, const float* scale,
                     const float* dy, float* dx) override;
  void pre_mean_dense(const DenseShape& s, const float* x, float* mean_x) override;
  void pre_mean_conv(const ConvShape& s, const float* x, float* mean_x) override;
  void plasticity_update(int P, int Out, int In, const PlasticityCoeffs* coeffs, const float* grad_hebb,
                         const float* mean_x, const float* mean_y, const float* mean_y2,
                         float* w, float* sq_avg, float* acc_delta, float* omega) override;
  void plasticity_bias_update(int P, int Out, const PlasticityCoeffs* coeffs, const float* gb,
                              const float* mean_y, float* b, float* sq_avg,
                              float* acc_delta) override;
  void ewc_accumulate_fisher(int P, std::size_t per_net, float scale, const float* g,
                             float* fisher) override;
  void ewc_proximal_step(int P, std::size_t per_net, const float* strength, const float* fisher,
                         const float* anchor, float* w) override;
  void mask_logits(int P, int N, int C, const std::uint8_t* allowed, float* logits) override;
  void flag_nonfinite(int P, std::size_t per_net, const float* x, std::uint8_t* flags) override;
  void gather_batch(const GatherShape& s, const std::uint8_t* images, const std::uint8_t* labels,
                    const std::int32_t* order, const std::int32_t* index, const std::int32_t* task, const float* mean, const float* stddev,
                    const std::uint16_t* perm, const std::int8_t* label_map, const std::uint8_t* head, float* x,
                    std::int32_t* y, std::uint8_t* allowed) override;
  void add_scaled(std::size_t n, float scale, const float* x, float* acc) override;
  void shuffle_order(std::size_t n, std::uint64_t seed, std::int32_t* order) override;

 private:
  kernels::OperandRounding rounding_;
  std::string name_;
};

}  // namespace evoplast::engine
