// One backend interface, one implementation per device (CPU now, CUDA next).
// The network and the training loop are written once against it; every
// pointer an op takes lives in the backend's own memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/precision.hpp"

#include "kernels/activation.hpp"
#include "kernels/common.hpp"
#include "kernels/data.hpp"
#include "kernels/plasticity.hpp"
#include "kernels/sparsity.hpp"

namespace evoplast::engine {

using kernels::ConvShape;
using kernels::DenseShape;
using kernels::DropoutParams;
using kernels::GatherShape;
using kernels::HiddenError;
using kernels::KwtaParams;
using kernels::PlasticityCoeffs;
using kernels::PooledConvError;
using kernels::PoolShape;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void release(void* ptr) noexcept = 0;
  virtual void to_device(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void to_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;  // device to device
  virtual void synchronize() {}
  // Bytes this backend could still allocate (the card's free memory; the
  // machine's available RAM), for admission before anything is allocated.
  virtual std::size_t memory_available() const = 0;
  // Whether ops draw on a grow-only scratch arena (MemoryPlan::scratch).
  virtual bool has_scratch_arena() const { return false; }
  // False where buffers are only counted (CountingBackend): no upload reaches
  // them, so their host-side initial values need not be made at all.
  virtual bool holds_values() const { return true; }

  // One training step on a minibatch of `batch`: step() queues its work on
  // this backend and nothing else (no read to the host, no wait), and may be
  // called a second time when the first call's queued work was dropped
  // unrun, so it must leave no host state behind that a repeat would change.
  // Here it just runs; the CUDA backend captures it as one CUDA graph.
  virtual void run_step(int batch, const std::function<void()>& step) {
    (void)batch;
    step();
  }
  // Whether run_step captures steps (their work then cannot be timed in parts).
  virtual bool captures_steps() const { return false; }

  // Operations (float32); shapes as in kernels/*.hpp.
  virtual void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                              float* y) = 0;
  // conv → ReLU: y as conv2d_forward and relu_forward (in place) leave it
  // (the CUDA backend applies the ReLU as it writes y: one pass fewer).
  virtual void conv2d_relu_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y) {
    conv2d_forward(s, x, w, b, y);
    relu_forward(s.y_size(), y, y);
  }
  virtual void conv2d_backward(const ConvShape& s, const float* x, const float* w,
                               const float* dy, float* dx, float* dw, float* db) = 0;
  virtual void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b,
                             float* y) = 0;
  virtual void dense_backward(const DenseShape& s, const float* x, const float* w,
                              const float* dy, float* dx, float* dw, float* db) = 0;
  // dense_backward with the weights' Adadelta step taken along: dx from w as
  // it was, db, then w, sq_avg and acc_delta (P, Out, In) as adadelta_step
  // with rates lr (host, P) leaves them. dw (P, Out, In) is working space:
  // the composition (here) leaves the gradient there; the CUDA backend
  // (fusing, its default) steps each weight as its gradient leaves the GEMM's
  // accumulators and never touches dw.
  virtual void dense_backward_adadelta(const DenseShape& s, const float* lr, float rho, float eps, const float* x,
                                       float* w, const float* dy, float* dx, float* dw, float* db, float* sq_avg,
                                       float* acc_delta) {
    dense_backward(s, x, w, dy, dx, dw, db);
    adadelta_step(s.P, std::size_t(s.Out) * s.In, lr, rho, eps, w, dw, sq_avg, acc_delta);
  }
  virtual void maxpool2d_forward(const PoolShape& s, const float* x, float* y,
                                 std::int32_t* argmax) = 0;
  // conv → ReLU → 2×2 max-pool (→ dropout, where dropout.rate > 0) as one
  // step: y and argmax (P, N, Cout, Ho/2, Wo/2) as conv2d_forward,
  // relu_forward, maxpool2d_forward (and dropout_forward on y in place)
  // leave them; conv_out (P, N, Cout, Ho, Wo) the ReLU's output, as
  // relu_forward leaves it (the plasticity rules read it). Where the backend
  // fuses_conv_steps(), conv_out may be null: a fused kernel (the CUDA
  // backend's implicit GEMM) then never writes the full-size output.
  virtual void conv2d_relu_pool_forward(const ConvShape& s, const DropoutParams& dropout, const float* x,
                                        const float* w, const float* b, float* conv_out, float* y,
                                        std::int32_t* argmax) {
    conv2d_forward(s, x, w, b, conv_out);
    relu_forward(s.y_size(), conv_out, conv_out);
    maxpool2d_forward(pool_after(s), conv_out, y, argmax);
    if (dropout.rate > 0) dropout_forward(s.P, pool_after(s).y_size() / std::size_t(s.P), dropout, y, y);
  }
  // Its backward from dy (P, N, Cout, Ho/2, Wo/2), the error of y: dx, dw,
  // db as dropout_backward, maxpool2d_backward, relu_backward and
  // conv2d_backward give them, with conv_out as the forward left it and
  // conv_grad (its shape) as working space; the composition runs dropout's
  // backward on dy in place. y's sign stands for the ReLU's and dropout's
  // masks (where y > 0 the element was kept and the ReLU passed it).
  virtual void conv2d_relu_pool_backward(const ConvShape& s, const DropoutParams& dropout, const float* x,
                                         const float* w, const float* conv_out, const float* y,
                                         const std::int32_t* argmax, float* dy, float* conv_grad, float* dx,
                                         float* dw, float* db) {
    (void)y;  // the composition reads the ReLU's sign from conv_out
    if (dropout.rate > 0) dropout_backward(s.P, pool_after(s).y_size() / std::size_t(s.P), dropout, dy, dy);
    maxpool2d_backward(pool_after(s), dy, argmax, conv_grad);
    relu_backward(s.y_size(), conv_out, conv_grad, conv_grad);
    conv2d_backward(s, x, w, conv_grad, dx, dw, db);
  }
  // Whether the fused steps (conv2d_relu_pool_forward/backward,
  // plasticity_conv_grads, the *_input_grad_picked pair) run without their
  // working space (conv_out, conv_grad, error_hebb, picked: then untouched
  // and may be null), so their callers need not allocate it.
  virtual bool fuses_conv_steps() const { return false; }
  // The 2×2 pool over a convolution's output planes.
  static PoolShape pool_after(const ConvShape& s) {
    return PoolShape{std::int64_t(s.P) * s.N * s.Cout, s.Ho(), s.Wo(), 2};
  }
  virtual void maxpool2d_backward(const PoolShape& s, const float* dy,
                                  const std::int32_t* argmax, float* dx) = 0;
  // A max-pool's backward and the ReLU's before it: dx (planes, H, W) as
  // maxpool2d_backward and relu_backward on the ReLU's output relu_y (its
  // shape) give it. y (planes, Ho, Wo) is the pool's output (a positive
  // rescaling, as dropout's, changes nothing): its sign is the ReLU's at the
  // window's maximum, which the CUDA backend reads instead of relu_y (one
  // pass instead of two).
  virtual void maxpool2d_relu_backward(const PoolShape& s, const float* dy, const std::int32_t* argmax,
                                       const float* y, const float* relu_y, float* dx) {
    (void)y;  // the composition reads the ReLU's sign from relu_y
    maxpool2d_backward(s, dy, argmax, dx);
    relu_backward(s.x_size(), relu_y, dx, dx);
  }
  virtual void relu_forward(std::size_t n, const float* x, float* y) = 0;
  virtual void relu_backward(std::size_t n, const float* y, const float* dy, float* dx) = 0;
  // k-winners-take-all (kernels/sparsity.hpp); params is a host array of P.
  virtual void kwta_forward(int P, int N, int units, const KwtaParams* params, float* y,
                            float* scale) = 0;
  virtual void kwta_backward(int P, int N, int units, const KwtaParams* params, const float* y,
                             const float* scale, const float* dy, float* dx) = 0;
  virtual void dropout_forward(int P, std::size_t per_net, const DropoutParams& d, const float* x,
                               float* y) = 0;
  virtual void dropout_backward(int P, std::size_t per_net, const DropoutParams& d,
                                const float* dy, float* dx) = 0;
  virtual void log_softmax_nll_forward(int P, int N, int C, const float* logits,
                                       const std::int32_t* labels, float* logp,
                                       float* loss) = 0;
  virtual void log_softmax_nll_backward(int P, int N, int C, const float* logp,
                                        const std::int32_t* labels, float* dlogits) = 0;
  virtual void count_correct(int P, int N, int C, const float* scores,
                             const std::int32_t* labels, std::int64_t* correct) = 0;
  // lr is a host array of P rates.
  virtual void sgd_step(int P, std::size_t per_net, const float* lr, float* w,
                        const float* g) = 0;
  virtual void adadelta_step(int P, std::size_t per_net, const float* lr, float rho, float eps,
                             float* w, const float* g, float* sq_avg, float* acc_delta) = 0;
  virtual void fill(float* x, std::size_t n, float value) = 0;

  // Plasticity (kernels/plasticity.hpp); coeffs are host arrays of P.
  virtual void stack_error_and_hebb(int P, int N, int Out, int S, const PlasticityCoeffs* coeffs,
                                    const float* e, const float* y, const std::int32_t* labels,
                                    float* theta, float* error_hebb, float* mean_y, float* mean_y2) = 0;
  // A conv plastic layer's [g; h] (P, 2·Out, Cin·K·K) and [Σe; Σŷ/(N·S)]
  // (P, 2·Out) from its error e and activity y (P, N, Out, Ho, Wo), s.Cout =
  // Out, with mean_y, mean_y2 and θ as stack_error_and_hebb leaves them
  // (no labels: a conv is never the readout). Here its stacked rows go
  // through error_hebb (P, N, 2·Out, Ho·Wo, working space) to the weight
  // gradient; a backend that fuses makes them as its GEMM reads them, and
  // need not write the Σŷ half (nothing reads it).
  virtual void plasticity_conv_grads(const ConvShape& s, const PlasticityCoeffs* coeffs, const float* x,
                                     const float* e, const float* y, float* theta, float* error_hebb,
                                     float* grad_hebb, float* grad_hebb_bias, float* mean_y, float* mean_y2) {
    stack_error_and_hebb(s.P, s.N, s.Cout, s.Ho() * s.Wo(), coeffs, e, y, nullptr, theta, error_hebb, mean_y,
                         mean_y2);
    ConvShape stacked = s;
    stacked.Cout = 2 * s.Cout;
    conv2d_backward(stacked, x, nullptr, error_hebb, nullptr, grad_hebb, grad_hebb_bias);
  }
  // A conv plastic layer followed by a ReLU and a 2×2 max-pool, its error
  // made from the pool's (PooledConvError; mode a host array), s.Cout = Out.
  // Here the error is stored into e (P, N, Out, Ho, Wo: working space) by
  // pooled_conv_error and read as a stored one is: conv2d_backward (or
  // conv2d_input_grad_picked where use_fb is not null) for dx, and
  // plasticity_conv_grads. A backend that fuses (fuses_conv_steps) makes
  // the error as its kernels read it: e untouched (may be null), and dx
  // written for the nets on keep only (one on DFA or none routes every
  // hidden layer's error, so nothing reads the error passed down to it).
  // A dropout after the pool (err.dropout) is read only where the backend
  // fuses: its mask is then y's sign, which the composition does not read;
  // compose dropout_backward into dy first.
  void pooled_conv_error(const ConvShape& s, const PooledConvError& err, float* e) {
    if (err.dropout.rate > 0)
      throw std::invalid_argument("pooled_conv_error: a dropout after the pool is read only where the backend "
                                  "fuses; run dropout_backward on dy first");
    maxpool2d_relu_backward(pool_after(s), err.dy, err.argmax, err.y, err.act, e);
    if (err.mode) route_hidden_error(s.P, s.y_size() / std::size_t(s.P), err.mode, err.dfa_e, err.act, true, e);
  }
  virtual void conv2d_input_grad_pooled(const ConvShape& s, const PooledConvError& err, const std::uint8_t* use_fb,
                                        const float* x, const float* w, const float* fb, float* e, float* picked,
                                        float* dx) {
    pooled_conv_error(s, err, e);
    if (use_fb)
      conv2d_input_grad_picked(s, use_fb, x, w, fb, e, picked, dx);
    else
      conv2d_backward(s, x, w, e, dx, nullptr, nullptr);
  }
  virtual void plasticity_conv_grads_pooled(const ConvShape& s, const PooledConvError& err,
                                            const PlasticityCoeffs* coeffs, const float* x, const float* y,
                                            float* theta, float* e, float* error_hebb, float* grad_hebb,
                                            float* grad_hebb_bias, float* mean_y, float* mean_y2) {
    pooled_conv_error(s, err, e);
    plasticity_conv_grads(s, coeffs, x, e, y, theta, error_hebb, grad_hebb, grad_hebb_bias, mean_y, mean_y2);
  }
  // Both of a conv plastic layer's passes above: its input gradient (where
  // dx is not null) and its [g; h] with the sums, in that order; a backend
  // that makes the error from the pool's as it is read makes it once for
  // both.
  virtual void plastic_conv_backward_pooled(const ConvShape& s, const PooledConvError& err,
                                            const std::uint8_t* use_fb, const float* w, const float* fb,
                                            float* picked, float* dx, const PlasticityCoeffs* coeffs, const float* x,
                                            const float* y, float* theta, float* e, float* error_hebb,
                                            float* grad_hebb, float* grad_hebb_bias, float* mean_y, float* mean_y2) {
    if (dx) conv2d_input_grad_pooled(s, err, use_fb, x, w, fb, e, picked, dx);
    plasticity_conv_grads_pooled(s, err, coeffs, x, y, theta, e, error_hebb, grad_hebb, grad_hebb_bias, mean_y,
                                 mean_y2);
  }
  virtual void pre_mean_dense(const DenseShape& s, const float* x, float* mean_x) = 0;
  virtual void pre_mean_conv(const ConvShape& s, const float* x, float* mean_x) = 0;
  virtual void plasticity_update(int P, int Out, int In, const PlasticityCoeffs* coeffs,
                                 const float* grad_hebb, const float* mean_x, const float* mean_y,
                                 const float* mean_y2, float* w, float* sq_avg, float* acc_delta,
                                 float* omega) = 0;
  // A dense layer's [g; h] from one pass over x (the stacked [e | ŷ] as the
  // output error of a layer with 2·Out units) and the rule's update of every
  // synapse: dense_backward into grad_hebb (P, 2·Out, In) then
  // plasticity_update, or, where the backend can, both in one kernel that
  // never writes grad_hebb. s: the layer (Out units).
  virtual void plasticity_update_dense(const DenseShape& s, const PlasticityCoeffs* coeffs, const float* x,
                                       const float* error_hebb, float* grad_hebb, const float* mean_x,
                                       const float* mean_y, const float* mean_y2, float* w, float* sq_avg,
                                       float* acc_delta, float* omega) = 0;
  virtual void route_hidden_error(int P, std::size_t per_net, const kernels::HiddenError* mode, const float* dfa_e,
                                  const float* y, bool relu_after, float* e) = 0;
  virtual void pick_per_net(int P, std::size_t per_net, const std::uint8_t* use_b, const float* a, const float* b,
                            float* out) = 0;
  // Feedback alignment in a mixed population: the error a layer passes down
  // (dx only) through each net's own weights w or, where use_fb[p] (host, P),
  // its fixed feedback matrix fb, both w's shape; as pick_per_net into picked
  // (w's shape) then the layer's backward give it. Where the backend fuses
  // (fuses_conv_steps) each net's matrix is read where it lies and picked is
  // untouched (may be null): no per-step copy of the weights. The dense
  // layer's also takes use_fb null (every net's own w) and each net's
  // feedback mode (host, P; null: every net keeps): where the backend fuses,
  // only the nets on keep get their dx written, as nothing reads what would
  // come down to a net on DFA or none (every hidden layer's error is routed).
  virtual void dense_input_grad_picked(const DenseShape& s, const HiddenError* mode, const std::uint8_t* use_fb,
                                       const float* x, const float* w, const float* fb, const float* dy,
                                       float* picked, float* dx) {
    (void)mode;  // every net's dx, read or not
    if (use_fb) pick_per_net(s.P, std::size_t(s.Out) * s.In, use_fb, w, fb, picked);
    dense_backward(s, x, use_fb ? picked : w, dy, dx, nullptr, nullptr);
  }
  virtual void conv2d_input_grad_picked(const ConvShape& s, const std::uint8_t* use_fb, const float* x,
                                        const float* w, const float* fb, const float* dy, float* picked, float* dx) {
    pick_per_net(s.P, std::size_t(s.Cout) * s.Cin * s.K * s.K, use_fb, w, fb, picked);
    conv2d_backward(s, x, picked, dy, dx, nullptr, nullptr);
  }
  virtual void plasticity_bound_rows(int P, int Out, int In, const PlasticityCoeffs* coeffs,
                                     float* w) = 0;
  virtual void plasticity_bias_update(int P, int Out, const PlasticityCoeffs* coeffs,
                                      const float* gb, const float* mean_y, float* b,
                                      float* sq_avg, float* acc_delta) = 0;
  virtual void ewc_accumulate_fisher(int P, std::size_t per_net, float scale, const float* g,
                                     float* fisher) = 0;
  virtual void ewc_proximal_step(int P, std::size_t per_net, const float* strength,
                                 const float* fisher, const float* anchor, float* w) = 0;
  virtual void mask_logits(int P, int N, int C, const std::uint8_t* allowed, float* logits) = 0;
  virtual void flag_nonfinite(int P, std::size_t per_net, const float* x,
                              std::uint8_t* flags) = 0;

  // Data (kernels/data.hpp): minibatches from data sets in the backend's memory.
  virtual void gather_batch(const GatherShape& s, const std::uint8_t* images, const std::uint8_t* labels,
                            const std::int32_t* order, const std::int32_t* index, const std::int32_t* task, const float* mean,
                            const float* stddev, const std::uint16_t* perm, const std::int8_t* label_map,
                            const std::uint8_t* head, float* x, std::int32_t* y, std::uint8_t* allowed) = 0;
  virtual void add_scaled(std::size_t n, float scale, const float* x, float* acc) = 0;
  virtual void shuffle_order(std::size_t n, std::uint64_t seed, std::int32_t* order) = 0;
};

// "cpu", "cuda" or "auto" (CUDA when built and a device is present), with
// the arithmetic of its GEMMs: precision "fp32", or on the CUDA backend's
// tensor cores "tf32", "tf32x3" (split TF32, about fp32's accuracy) or
// "bf16"; empty: the CUDA backend's process setting ($EVOPLAST_PRECISION,
// else fp32), the CPU's fp32. The CPU emulates tf32 and bf16 (CpuBackend)
// and refuses tf32x3. Throws EngineError naming the choice and what to do
// when it cannot be honoured.
std::unique_ptr<Backend> make_backend(const std::string& choice, const std::string& precision = "");

// An owning, move-only array of T in a backend's memory.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, std::size_t count)
      : backend_(&backend),
        data_(count ? static_cast<T*>(backend.allocate(count * sizeof(T))) : nullptr),
        size_(count) {}
  ~Buffer() {
    if (backend_ && data_) backend_->release(data_);
  }
  Buffer(Buffer&& o) noexcept
      : backend_(std::exchange(o.backend_, nullptr)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      if (backend_ && data_) backend_->release(data_);
      backend_ = std::exchange(o.backend_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }

  void upload(std::span<const T> host, std::size_t offset = 0) {
    backend_->to_device(data_ + offset, host.data(), host.size() * sizeof(T));
  }
  std::vector<T> download() const {
    std::vector<T> host(size_);
    if (size_) backend_->to_host(host.data(), data_, size_ * sizeof(T));
    return host;
  }

 private:
  Backend* backend_ = nullptr;
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace evoplast::engine
