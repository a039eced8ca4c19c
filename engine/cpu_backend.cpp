#include "engine/cpu_backend.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include <sys/resource.h>
#include <unistd.h>

#include "kernels/activation.hpp"
#include "kernels/conv.hpp"
#include "kernels/data.hpp"
#include "kernels/dense.hpp"
#include "kernels/gemm_cpu.hpp"
#include "kernels/loss.hpp"
#include "kernels/optim.hpp"
#include "kernels/plasticity.hpp"
#include "kernels/pool.hpp"

namespace evoplast::engine {

namespace k = kernels::cpu;
using kernels::OperandRounding;

namespace {

OperandRounding rounding_of(const std::string& precision) {
  if (precision == "fp32") return OperandRounding::none;
  if (precision == "tf32") return OperandRounding::tf32;
  if (precision == "bf16") return OperandRounding::bf16;
  throw std::invalid_argument("CpuBackend: precision '" + precision + "' is not fp32, tf32 or bf16");
}

}  // namespace

CpuBackend::CpuBackend(const std::string& precision)
    : rounding_(rounding_of(precision)),
      name_(precision == "fp32" ? "cpu" : "cpu (" + precision + " emulated: GEMM operands rounded as a tensor core's)") {}

void* CpuBackend::allocate(std::size_t bytes) {
  // 64-byte alignment for AVX-512 loads; size rounded up as aligned_alloc requires.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}
void CpuBackend::release(void* ptr) noexcept { std::free(ptr); }
void CpuBackend::to_device(void* dst, const void* src, std::size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void CpuBackend::to_host(void* dst, const void* src, std::size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  std::memcpy(dst, src, bytes);
}

// The GEMM-shaped steps below run their GEMMs with this backend's operand
// rounding (none in fp32); the rest of a step is fp32, as on a card.
void CpuBackend::conv2d_forward(const ConvShape& s, const float* x, const float* w,
                                const float* b, float* y) {
  const k::ScopedOperandRounding rounded(rounding_);
  k::conv2d_forward(s, x, w, b, y);
}
void CpuBackend::conv2d_backward(const ConvShape& s, const float* x, const float* w,
                                 const float* dy, float* dx, float* dw, float* db) {
  const k::ScopedOperandRounding rounded(rounding_);
  k::conv2d_backward(s, x, w, dy, dx, dw, db);
}
void CpuBackend::dense_forward(const DenseShape& s, const float* x, const float* w,
                               const float* b, float* y) {
  const k::ScopedOperandRounding rounded(rounding_);
  k::dense_forward(s, x, w, b, y);
}
void CpuBackend::dense_backward(const DenseShape& s, const float* x, const float* w,
                                const float* dy, float* dx, float* dw, float* db) {
  const k::ScopedOperandRounding rounded(rounding_);
  k::dense_backward(s, x, w, dy, dx, dw, db);
}
void CpuBackend::maxpool2d_forward(const PoolShape& s, const float* x, float* y,
                                   std::int32_t* argmax) {
  k::maxpool2d_forward(s, x, y, argmax);
}
void CpuBackend::maxpool2d_backward(const PoolShape& s, const float* dy,
                                    const std::int32_t* argmax, float* dx) {
  k::maxpool2d_backward(s, dy, argmax, dx);
}
void CpuBackend::relu_forward(std::size_t n, const float* x, float* y) {
  k::relu_forward(n, x, y);
}
void CpuBackend::relu_backward(std::size_t n, const float* y, const float* dy, float* dx) {
  k::relu_backward(n, y, dy, dx);
}
void CpuBackend::dropout_forward(int P, std::size_t per_net, const DropoutParams& d,
                                 const float* x, float* y) {
  k::dropout_forward(P, per_net, d, x, y);
}
void CpuBackend::dropout_backward(int P, std::size_t per_net, const DropoutParams& d,
                                  const float* dy, float* dx) {
  k::dropout_backward(P, per_net, d, dy, dx);
}
void CpuBackend::log_softmax_nll_forward(int P, int N, int C, const float* logits,
                                         const std::int32_t* labels, float* logp, float* loss) {
  k::log_softmax_nll_forward(P, N, C, logits, labels, logp, loss);
}
void CpuBackend::log_softmax_nll_backward(int P, int N, int C, const float* logp,
                                          const std::int32_t* labels, float* dlogits) {
  k::log_softmax_nll_backward(P, N, C, logp, labels, dlogits);
}
void CpuBackend::count_correct(int P, int N, int C, const float* scores,
                               const std::int32_t* labels, std::int64_t* correct) {
  k::count_correct(P, N, C, scores, labels, correct);
}
void CpuBackend::sgd_step(int P, std::size_t per_net, const float* lr, float* w,
                          const float* g) {
  k::sgd_step(P, per_net, lr, w, g);
}
void CpuBackend::adadelta_step(int P, std::size_t per_net, const float* lr, float rho, float eps,
                               float* w, const float* g, float* sq_avg, float* acc_delta) {
  k::adadelta_step(P, per_net, lr, rho, eps, w, g, sq_avg, acc_delta);
}

void CpuBackend::fill(float* x, std::size_t n, float value) { std::fill(x, x + n, value); }
void CpuBackend::stack_error_and_hebb(int P, int N, int Out, int S,
                                      const PlasticityCoeffs* coeffs, const float* e,
                                      const float* y, const std::int32_t* labels, float* theta,
                                      float* error_hebb, float* mean_y, float* mean_y2) {
  k::stack_error_and_hebb(P, N, Out, S, coeffs, e, y, labels, theta, error_hebb, mean_y, mean_y2);
}
void CpuBackend::plasticity_update_dense(const DenseShape& s, const PlasticityCoeffs* coeffs, const float* x,
                                         const float* error_hebb, float* grad_hebb, const float* mean_x,
                                         const float* mean_y, const float* mean_y2, float* w, float* sq_avg,
                                         float* acc_delta, float* omega) {
  {
    const k::ScopedOperandRounding rounded(rounding_);
    k::plasticity_grads_dense(s, coeffs, x, error_hebb, grad_hebb);
  }
  plasticity_update(s.P, s.Out, s.In, coeffs, grad_hebb, mean_x, mean_y, mean_y2, w, sq_avg, acc_delta, omega);
}
void CpuBackend::plasticity_conv_grads(const ConvShape& s, const PlasticityCoeffs* coeffs, const float* x,
                                       const float* e, const float* y, float* theta, float* error_hebb,
                                       float* grad_hebb, float* grad_hebb_bias, float* mean_y, float* mean_y2) {
  k::stack_error_and_hebb(s.P, s.N, s.Cout, s.Ho() * s.Wo(), coeffs, e, y, nullptr, theta, error_hebb, mean_y,
                          mean_y2);
  const k::ScopedOperandRounding rounded(rounding_);
  k::plasticity_grads_conv(s, coeffs, x, error_hebb, grad_hebb, grad_hebb_bias);  // the halves each rule reads
}
void CpuBackend::route_hidden_error(int P, std::size_t per_net, const kernels::HiddenError* mode,
                                    const float* dfa_e, const float* y, bool relu_after, float* e) {
  k::route_hidden_error(P, per_net, mode, dfa_e, y, relu_after, e);
}
void CpuBackend::pick_per_net(int P, std::size_t per_net, const std::uint8_t* use_b, const float* a, const float* b,
                              float* out) {
  k::pick_per_net(P, per_net, use_b, a, b, out);
}
void CpuBackend::plasticity_bound_rows(int P, int Out, int In, const PlasticityCoeffs* coeffs,
                                       float* w) {
  k::plasticity_bound_rows(P, Out, In, coeffs, w);
}
void CpuBackend::kwta_forward(int P, int N, int units, const KwtaParams* params, float* y,
                              float* scale) {
  k::kwta_forward(P, N, units, params, y, scale);
}
void CpuBackend::kwta_backward(int P, int N, int units, const KwtaParams* params, const float* y,
                               const float* scale, const float* dy, float* dx) {
  k::kwta_backward(P, N, units, params, y, scale, dy, dx);
}
void CpuBackend::pre_mean_dense(const DenseShape& s, const float* x, float* mean_x) {
  k::pre_mean_dense(s, x, mean_x);
}
void CpuBackend::pre_mean_conv(const ConvShape& s, const float* x, float* mean_x) {
  k::pre_mean_conv(s, x, mean_x);
}
void CpuBackend::plasticity_update(int P, int Out, int In, const PlasticityCoeffs* coeffs,
                                   const float* grad_hebb, const float* mean_x, const float* mean_y,
                                   const float* mean_y2, float* w, float* sq_avg,
                                   float* acc_delta, float* omega) {
  k::plasticity_update(P, Out, In, coeffs, grad_hebb, mean_x, mean_y, mean_y2, w, sq_avg, acc_delta,
                       omega);
}
void CpuBackend::plasticity_bias_update(int P, int Out, const PlasticityCoeffs* coeffs,
                                        const float* gb, const float* mean_y, float* b,
                                        float* sq_avg, float* acc_delta) {
  k::plasticity_bias_update(P, Out, coeffs, gb, mean_y, b, sq_avg, acc_delta);
}
void CpuBackend::ewc_accumulate_fisher(int P, std::size_t per_net, float scale, const float* g,
                                       float* fisher) {
  k::ewc_accumulate_fisher(P, per_net, scale, g, fisher);
}
void CpuBackend::ewc_proximal_step(int P, std::size_t per_net, const float* strength,
                                   const float* fisher, const float* anchor, float* w) {
  k::ewc_proximal_step(P, per_net, strength, fisher, anchor, w);
}
void CpuBackend::mask_logits(int P, int N, int C, const std::uint8_t* allowed, float* logits) {
  k::mask_logits(P, N, C, allowed, logits);
}
void CpuBackend::flag_nonfinite(int P, std::size_t per_net, const float* x,
                                std::uint8_t* flags) {
  k::flag_nonfinite(P, per_net, x, flags);
}

void CpuBackend::gather_batch(const GatherShape& s, const std::uint8_t* images, const std::uint8_t* labels,
                              const std::int32_t* order, const std::int32_t* index, const std::int32_t* task, const float* mean,
                              const float* stddev, const std::uint16_t* perm, const std::int8_t* label_map,
                              const std::uint8_t* head, float* x, std::int32_t* y, std::uint8_t* allowed) {
  k::gather_batch(s, images, labels, order, index, task, mean, stddev, perm, label_map, head, x, y, allowed);
}
void CpuBackend::add_scaled(std::size_t n, float scale, const float* x, float* acc) { k::add_scaled(n, scale, x, acc); }
void CpuBackend::shuffle_order(std::size_t n, std::uint64_t seed, std::int32_t* order) {
  k::shuffle_order(n, seed, order);
}

}  // namespace evoplast::engine

namespace evoplast::engine {

std::size_t CpuBackend::memory_available() const {
  // The machine's available RAM…
  std::size_t available = SIZE_MAX;  // unknown: admit, and let the allocation speak
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    std::size_t kib = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %zu kB", &kib) == 1) {
        available = kib * 1024;
        break;
      }
    std::fclose(f);
  }
  // …and what an address-space limit (ulimit -v) leaves this process.
  rlimit lim{};
  if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    std::size_t pages = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%zu", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const std::size_t used = pages * std::size_t(sysconf(_SC_PAGESIZE));
    available = std::min(available, lim.rlim_cur > used ? std::size_t(lim.rlim_cur) - used : std::size_t(0));
  }
  return available;
}

}  // namespace evoplast::engine
