// The CUDA backend: device memory (checked cudaMalloc, one grow-only scratch
// arena, so no allocation happens in a training step once warm), one stream,
// one cuBLAS handle, and the launchers of kernels/*_cuda.cu. The per-net
// tables the ops take from the host (learning rates, rule coefficients) are
// kept on the device and uploaded when they change (TableCache), and a
// training step is captured and replayed as one CUDA graph (run_step).
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/cuda_backend.hpp"
#include "kernels/cuda_check.hpp"
#include "engine/cuda_device.hpp"
#include "engine/errors.hpp"
#include "engine/precision.hpp"
#include "kernels/cuda.hpp"

namespace evoplast::engine {
namespace {

namespace kc = kernels::cuda;

// Scratch regions that grow and never shrink, so a warm training step
// allocates nothing. Stream-ordered: a grown region's old buffer is freed in
// stream order (cudaFreeAsync), after the kernels queued before that still
// read it, and the new one is allocated in stream order too.
class Arena final : public kc::Scratch {
 public:
  explicit Arena(cudaStream_t stream) : stream_(stream) {}
  ~Arena() override {
    for (auto& s : slots_)
      if (s.ptr) EVOPLAST_CUDA_PRINT(cudaFreeAsync(s.ptr, stream_));
    EVOPLAST_CUDA_PRINT(cudaStreamSynchronize(stream_));
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  // Thrown, before anything changes, when a region must grow while the stream
  // captures a graph (an allocation cannot be captured).
  struct GrowsInCapture {};
  void set_capturing(bool capturing) { capturing_ = capturing; }
  float* floats(int slot, std::size_t n) override { return static_cast<float*>(bytes(slot, n * sizeof(float))); }
  void* bytes(int slot, std::size_t n) {
    if (slot >= int(slots_.size())) {
      if (capturing_) throw GrowsInCapture{};
      slots_.resize(std::size_t(slot) + 1);
    }
    Slot& s = slots_[std::size_t(slot)];
    if (s.size < n) {
      if (capturing_) throw GrowsInCapture{};
      // Forget the old buffer before anything can throw: it is never freed twice.
      void* old = std::exchange(s.ptr, nullptr);
      s.size = 0;
      if (old) EVOPLAST_CUDA(cudaFreeAsync(old, stream_));
      void* p = nullptr;
      const cudaError_t e = cudaMallocAsync(&p, n, stream_);
      if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        std::size_t free = 0, total = 0;
        (void)cudaMemGetInfo(&free, &total);
        throw OutOfDeviceMemory(n, free);
      }
      EVOPLAST_CUDA(e);
      s.ptr = p;
      s.size = n;
    }
    if (kc::poison_scratch() && n) EVOPLAST_CUDA(cudaMemsetAsync(s.ptr, 0xFF, n, stream_));
    return s.ptr;
  }

 private:
  struct Slot {
    void* ptr = nullptr;
    std::size_t size = 0;
  };
  cudaStream_t stream_;
  std::vector<Slot> slots_;
  bool capturing_ = false;
};

// The small per-net tables the ops take as host arrays (learning rates, rule
// coefficients, feedback modes, k-WTA settings), on the device, uploaded only
// when their bytes change: in a run they change once per epoch (the learning
// rate's schedule), so a warm step uploads nothing. Looked up by content, so
// the tables of every layer stay side by side. When the pool is full it is
// reused from its start: one stream runs in order, so every kernel queued
// before an overwrite has read its table by then.
class TableCache {
 public:
  explicit TableCache(std::size_t bytes) : size_(bytes) { EVOPLAST_CUDA(cudaMalloc(&pool_, bytes)); }
  ~TableCache() { EVOPLAST_CUDA_PRINT(cudaFree(pool_)); }
  TableCache(const TableCache&) = delete;
  TableCache& operator=(const TableCache&) = delete;
  // The device copy of host[0, bytes); upload(dst, src, bytes) queues the copy when there is none.
  template <class Upload>
  const void* get(const void* host, std::size_t bytes, const Upload& upload) {
    std::string key(static_cast<const char*>(host), bytes);
    if (const auto it = at_.find(key); it != at_.end()) return static_cast<char*>(pool_) + it->second;
    const std::size_t need = (bytes + 255) / 256 * 256;
    if (need > size_ / 4)
      throw EngineError(fmt::format("a per-net table of {} bytes: more than the {} KiB the CUDA backend keeps for "
                                    "them; use a smaller population",
                                    bytes, size_ / 4 >> 10));
    if (head_ + need > size_) forget();
    void* dst = static_cast<char*>(pool_) + head_;
    upload(dst, host, bytes);
    at_.emplace(std::move(key), head_);
    head_ += need;
    return dst;
  }
  // Drops every entry (the next lookups upload again).
  void forget() {
    at_.clear();
    head_ = 0;
  }

 private:
  void* pool_ = nullptr;
  std::size_t size_, head_ = 0;
  std::unordered_map<std::string, std::size_t> at_;  // bytes → offset in the pool
};

// Pinned host memory for the small uploads of every step (minibatch indices,
// learning rates, rule coefficients). A cudaMemcpyAsync from pageable memory
// waits for the stream to drain first — a host sync per call — so these go
// through this ring instead; the stream is synchronised only when it wraps.
class PinnedRing {
 public:
  explicit PinnedRing(std::size_t bytes) : size_(bytes) { EVOPLAST_CUDA(cudaMallocHost(&base_, bytes)); }
  ~PinnedRing() { EVOPLAST_CUDA_PRINT(cudaFreeHost(base_)); }
  PinnedRing(const PinnedRing&) = delete;
  PinnedRing& operator=(const PinnedRing&) = delete;
  // A pinned copy of src, valid until the ring wraps (which first waits for the stream).
  const void* put(const void* src, std::size_t bytes, cudaStream_t stream) {
    const std::size_t need = (bytes + 255) / 256 * 256;
    if (head_ + need > size_) {
      EVOPLAST_CUDA(cudaStreamSynchronize(stream));
      head_ = 0;
    }
    char* p = static_cast<char*>(base_) + head_;
    std::memcpy(p, src, bytes);
    head_ += need;
    return p;
  }
  std::size_t capacity() const { return size_; }
  // At least half the ring free without a wrap (waiting for the stream if
  // not), so the uploads of a captured step never wait: a capture may not.
  void make_room(cudaStream_t stream) {
    if (head_ <= size_ / 2) return;
    EVOPLAST_CUDA(cudaStreamSynchronize(stream));
    head_ = 0;
  }

 private:
  void* base_ = nullptr;
  std::size_t size_, head_ = 0;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) {
    EVOPLAST_CUDA(cudaSetDevice(device));
    EVOPLAST_CUDA(cudaStreamCreate(&stream_));
    EVOPLAST_CUBLAS(cublasCreate(&blas_));
    EVOPLAST_CUBLAS(cublasSetStream(blas_, stream_));
    // Plain fp32 (no TF32), so the CPU reference and the GPU agree to fp32 rounding.
    EVOPLAST_CUBLAS(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    // cuBLAS's workspace given, not allocated by cuBLAS as it goes: a captured
    // step may not allocate (set after cublasSetStream, which resets it).
    EVOPLAST_CUDA(cudaMalloc(&blas_workspace_, kBlasWorkspace));
    EVOPLAST_CUBLAS(cublasSetWorkspace(blas_, blas_workspace_, kBlasWorkspace));
    arena_ = std::make_unique<Arena>(stream_);
    tables_ = std::make_unique<TableCache>(kTablePool);
    graphs_ = step_graphs_enabled();
    const char* fusion = std::getenv("EVOPLAST_FUSION");  // read once: fuses_conv_steps runs per step
    fusion_allowed_ = !(fusion && std::strcmp(fusion, "0") == 0);
    const std::string gemm = kc::gemm_precision() != kc::Precision::fp32
                                 ? std::string("tensor cores ") + kc::precision_name(kc::gemm_precision())
                             : kc::gemm_impl() == kc::GemmImpl::tiled ? "tiled fp32"
                                                                      : "cuBLAS fp32";
    const std::string conv = kc::conv_impl() == kc::ConvImpl::cudnn    ? "cuDNN"
                             : kc::conv_impl() == kc::ConvImpl::im2col ? "im2col"
                                                                       : "implicit GEMM";
    name_ = "cuda (" + cuda_device_name(device) + "; GEMM " + gemm + ", conv " + conv +
            (kc::tile_buffers() != kc::kDefaultTileBuffers
                 ? "; tile kernels in " + std::to_string(kc::tile_buffers()) + " tile set(s)"
                 : "") +
            (kc::tile_copies_async() ? "" : "; tile slices loaded through registers") +
            (graphs_ ? "; steps as CUDA graphs" : "") + ")";
  }
  ~CudaBackend() override {
    if (step_exec_) EVOPLAST_CUDA_PRINT(cudaGraphExecDestroy(step_exec_));
    kc::destroy_cudnn(dnn_);
    if (blas_) cublasDestroy(blas_);
    if (blas_workspace_) EVOPLAST_CUDA_PRINT(cudaFree(blas_workspace_));
    tables_.reset();
    arena_.reset();
    if (stream_) EVOPLAST_CUDA_PRINT(cudaStreamDestroy(stream_));
  }
  std::string name() const override { return name_; }

  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      std::size_t free = 0, total = 0;
      cudaMemGetInfo(&free, &total);
      throw OutOfDeviceMemory(bytes, free);
    }
    EVOPLAST_CUDA(e);
    return p;
  }
  void release(void* ptr) noexcept override { EVOPLAST_CUDA_PRINT(cudaFree(ptr)); }
  void to_device(void* dst, const void* src, std::size_t bytes) override {
    // Small ones stay asynchronous; in a capture every one goes through the
    // ring (a graph may copy only from pinned memory).
    if (bytes <= kSmallUpload || capturing_) src = ring_.put(src, bytes, stream_);
    EVOPLAST_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void to_host(void* dst, const void* src, std::size_t bytes) override {
    EVOPLAST_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    EVOPLAST_CUDA(cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    EVOPLAST_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void synchronize() override { EVOPLAST_CUDA(cudaStreamSynchronize(stream_)); }
  std::size_t memory_available() const override {
    std::size_t free = 0, total = 0;
    EVOPLAST_CUDA(cudaMemGetInfo(&free, &total));
    return free;
  }
  bool has_scratch_arena() const override { return true; }

  // The step captured (its kernels, copies and cuBLAS calls recorded, not
  // run) and launched as one CUDA graph: the executable graph of the last
  // step is updated with this one's arguments (cudaGraphExecUpdate) or, when
  // the work differs (a table uploaded, another batch size), instantiated
  // anew. The first step of a size runs directly, so the arena grows outside
  // any capture.
  bool captures_steps() const override { return graphs_; }
  void run_step(int batch, const std::function<void()>& step) override {
    if (!graphs_ || batch > warm_batch_) {
      step();
      warm_batch_ = std::max(warm_batch_, batch);
      return;
    }
    ring_.make_room(stream_);
    EVOPLAST_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal));
    set_capturing(true);
    cudaGraph_t graph = nullptr;
    try {
      step();
      set_capturing(false);
      EVOPLAST_CUDA(cudaStreamEndCapture(stream_, &graph));
    } catch (const Arena::GrowsInCapture&) {
      // A region this step needs is larger than its first run made it: the
      // captured work is dropped unrun (its table uploads with it) and the
      // step runs directly, growing the arena.
      abandon_capture();
      step();
      return;
    } catch (const kc::CudaError& e) {
      // A call the capture refused, most likely: the captured work is
      // dropped unrun, this step and every later one run directly (said
      // once). A genuine CUDA error shows again when the step runs.
      abandon_capture();
      stop_graphs(e.what());
      step();
      return;
    } catch (...) {
      abandon_capture();
      throw;
    }
    if (!launch_step_graph(graph)) step();
  }

  void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y) override {
    if (kc::conv_impl() == kc::ConvImpl::cudnn) return kc::conv2d_forward_cudnn(stream_, dnn(), *arena_, s, x, w, b, y);
    kc::conv2d_forward(stream_, blas_, *arena_, s, x, w, b, false, y);
  }
  void conv2d_relu_forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y) override {
    if (kc::conv_impl() == kc::ConvImpl::cudnn) return Backend::conv2d_relu_forward(s, x, w, b, y);
    kc::conv2d_forward(stream_, blas_, *arena_, s, x, w, b, true, y);
  }
  void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db) override {
    if (kc::conv_impl() == kc::ConvImpl::cudnn)
      return kc::conv2d_backward_cudnn(stream_, dnn(), *arena_, s, x, w, dy, dx, dw, db);
    kc::conv2d_backward(stream_, blas_, *arena_, s, x, w, dy, dx, dw, db);
  }
  // conv → ReLU → pool in one kernel, a conv plastic layer's stacked rows
  // made as they are read: with our implicit-GEMM convolution (by im2col and
  // with cuDNN the steps are composed). $EVOPLAST_FUSION=0 composes them
  // too (to see what fusion buys), read when the backend is made.
  bool fuses_conv_steps() const override {
    return fuses_epilogues() && kc::conv_impl() == kc::ConvImpl::implicit_gemm;
  }
  void conv2d_relu_pool_forward(const ConvShape& s, const DropoutParams& dropout, const float* x, const float* w,
                                const float* b, float* conv_out, float* y, std::int32_t* argmax) override {
    const bool odd = s.Ho() % 2 || s.Wo() % 2;  // then the fused kernel leaves a last row or column unwritten
    if (!fuses_conv_steps() || (conv_out && odd))
      return Backend::conv2d_relu_pool_forward(s, dropout, x, w, b, conv_out, y, argmax);
    kc::conv2d_relu_pool_forward(stream_, s, dropout, x, w, b, conv_out, y, argmax);
  }
  void conv2d_relu_pool_backward(const ConvShape& s, const DropoutParams& dropout, const float* x, const float* w,
                                 const float* conv_out, const float* y, const std::int32_t* argmax, float* dy,
                                 float* conv_grad, float* dx, float* dw, float* db) override {
    if (!fuses_conv_steps())
      return Backend::conv2d_relu_pool_backward(s, dropout, x, w, conv_out, y, argmax, dy, conv_grad, dx, dw, db);
    kc::conv2d_relu_pool_backward(stream_, *arena_, s, dropout, x, w, y, argmax, dy, dx, dw, db);
  }
  void dense_input_grad_picked(const DenseShape& s, const HiddenError* mode, const std::uint8_t* use_fb,
                               const float* x, const float* w, const float* fb, const float* dy, float* picked,
                               float* dx) override {
    if (!fuses_conv_steps()) return Backend::dense_input_grad_picked(s, mode, use_fb, x, w, fb, dy, picked, dx);
    kc::dense_input_grad_picked(stream_, s, mode ? table(mode, s.P) : nullptr, use_fb ? table(use_fb, s.P) : nullptr,
                                w, fb, dy, dx);
  }
  void conv2d_input_grad_picked(const ConvShape& s, const std::uint8_t* use_fb, const float* x, const float* w,
                                const float* fb, const float* dy, float* picked, float* dx) override {
    if (!fuses_conv_steps()) return Backend::conv2d_input_grad_picked(s, use_fb, x, w, fb, dy, picked, dx);
    kc::conv2d_input_grad_picked(stream_, *arena_, s, table(use_fb, s.P), x, w, fb, dy, dx);
  }
  void conv2d_input_grad_pooled(const ConvShape& s, const PooledConvError& err, const std::uint8_t* use_fb,
                                const float* x, const float* w, const float* fb, float* e, float* picked,
                                float* dx) override {
    if (!fuses_conv_steps()) return Backend::conv2d_input_grad_pooled(s, err, use_fb, x, w, fb, e, picked, dx);
    kc::conv2d_input_grad_pooled(stream_, *arena_, s, on_device(err, s.P), use_fb ? table(use_fb, s.P) : nullptr, x,
                                 w, fb, dx);
  }
  void dense_forward(const DenseShape& s, const float* x, const float* w, const float* b, float* y) override {
    kc::dense_forward(stream_, blas_, *arena_, s, x, w, b, y);
  }
  void dense_backward(const DenseShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                      float* db) override {
    kc::dense_backward(stream_, blas_, *arena_, s, x, w, dy, dx, dw, db);
  }
  // Our tile kernel's weight-gradient epilogue steps each weight
  // ($EVOPLAST_FUSION=0 composes: the gradient stored, then stepped).
  void dense_backward_adadelta(const DenseShape& s, const float* lr, float rho, float eps, const float* x, float* w,
                               const float* dy, float* dx, float* dw, float* db, float* sq_avg,
                               float* acc_delta) override {
    if (!fuses_epilogues())
      return Backend::dense_backward_adadelta(s, lr, rho, eps, x, w, dy, dx, dw, db, sq_avg, acc_delta);
    kc::dense_backward(stream_, blas_, *arena_, s, x, w, dy, dx, nullptr, db);  // dx from w before it moves
    kc::dense_weight_adadelta(stream_, s, table(lr, s.P), rho, eps, x, dy, w, sq_avg, acc_delta);
  }
  void maxpool2d_forward(const PoolShape& s, const float* x, float* y, std::int32_t* argmax) override {
    kc::maxpool2d_forward(stream_, s, x, y, argmax);
  }
  void maxpool2d_backward(const PoolShape& s, const float* dy, const std::int32_t* argmax, float* dx) override {
    kc::maxpool2d_backward(stream_, s, dy, argmax, dx);
  }
  void maxpool2d_relu_backward(const PoolShape& s, const float* dy, const std::int32_t* argmax, const float* y,
                               const float* relu_y, float* dx) override {
    (void)relu_y;  // the pooled output's sign is the ReLU's
    kc::maxpool2d_relu_backward(stream_, s, dy, argmax, y, dx);
  }
  void relu_forward(std::size_t n, const float* x, float* y) override { kc::relu_forward(stream_, n, x, y); }
  void relu_backward(std::size_t n, const float* y, const float* dy, float* dx) override {
    kc::relu_backward(stream_, n, y, dy, dx);
  }
  void dropout_forward(int P, std::size_t per_net, const DropoutParams& d, const float* x, float* y) override {
    kc::dropout_forward(stream_, P, per_net, d, x, y);
  }
  void dropout_backward(int P, std::size_t per_net, const DropoutParams& d, const float* dy, float* dx) override {
    kc::dropout_backward(stream_, P, per_net, d, dy, dx);
  }
  void log_softmax_nll_forward(int P, int N, int C, const float* logits, const std::int32_t* labels, float* logp,
                               float* loss) override {
    kc::log_softmax_nll_forward(stream_, *arena_, P, N, C, logits, labels, logp, loss);
  }
  void log_softmax_nll_backward(int P, int N, int C, const float* logp, const std::int32_t* labels,
                                float* dlogits) override {
    kc::log_softmax_nll_backward(stream_, P, N, C, logp, labels, dlogits);
  }
  void count_correct(int P, int N, int C, const float* scores, const std::int32_t* labels,
                     std::int64_t* correct) override {
    kc::count_correct(stream_, P, N, C, scores, labels, correct);
  }
  void sgd_step(int P, std::size_t per_net, const float* lr, float* w, const float* g) override {
    kc::sgd_step(stream_, P, per_net, table(lr, P), w, g);
  }
  void adadelta_step(int P, std::size_t per_net, const float* lr, float rho, float eps, float* w, const float* g,
                     float* sq_avg, float* acc_delta) override {
    kc::adadelta_step(stream_, P, per_net, table(lr, P), rho, eps, w, g, sq_avg, acc_delta);
  }
  void fill(float* x, std::size_t n, float value) override { kc::fill(stream_, x, n, value); }
  void stack_error_and_hebb(int P, int N, int Out, int S, const PlasticityCoeffs* coeffs, const float* e,
                            const float* y, const std::int32_t* labels, float* theta, float* error_hebb, float* mean_y,
                            float* mean_y2) override {
    kc::stack_error_and_hebb(stream_, P, N, Out, S, table(coeffs, P), e, y, labels, theta, error_hebb, mean_y,
                             mean_y2);
  }
  void plasticity_conv_grads(const ConvShape& s, const PlasticityCoeffs* coeffs, const float* x, const float* e,
                             const float* y, float* theta, float* error_hebb, float* grad_hebb, float* grad_hebb_bias,
                             float* mean_y, float* mean_y2) override {
    if (!fuses_conv_steps())
      return Backend::plasticity_conv_grads(s, coeffs, x, e, y, theta, error_hebb, grad_hebb, grad_hebb_bias, mean_y,
                                            mean_y2);
    fused_conv_plasticity_grads(s, coeffs, x, e, y, theta, grad_hebb, grad_hebb_bias, mean_y, mean_y2);
  }
  void plasticity_conv_grads_pooled(const ConvShape& s, const PooledConvError& err, const PlasticityCoeffs* coeffs,
                                    const float* x, const float* y, float* theta, float* e, float* error_hebb,
                                    float* grad_hebb, float* grad_hebb_bias, float* mean_y, float* mean_y2) override {
    if (!fuses_conv_steps())
      return Backend::plasticity_conv_grads_pooled(s, err, coeffs, x, y, theta, e, error_hebb, grad_hebb,
                                                   grad_hebb_bias, mean_y, mean_y2);
    fused_conv_plasticity_grads(s, coeffs, x, on_device(err, s.P), y, theta, grad_hebb, grad_hebb_bias, mean_y,
                                mean_y2);
  }
  void plastic_conv_backward_pooled(const ConvShape& s, const PooledConvError& err, const std::uint8_t* use_fb,
                                    const float* w, const float* fb, float* picked, float* dx,
                                    const PlasticityCoeffs* coeffs, const float* x, const float* y, float* theta,
                                    float* e, float* error_hebb, float* grad_hebb, float* grad_hebb_bias,
                                    float* mean_y, float* mean_y2) override {
    if (!fuses_conv_steps())
      return Backend::plastic_conv_backward_pooled(s, err, use_fb, w, fb, picked, dx, coeffs, x, y, theta, e,
                                                   error_hebb, grad_hebb, grad_hebb_bias, mean_y, mean_y2);
    kc::conv2d_plastic_backward_pooled(stream_, *arena_, s, on_device(err, s.P), use_fb ? table(use_fb, s.P) : nullptr,
                                       x, w, fb, dx,
                                       {table(coeffs, s.P), y, theta, grad_hebb, grad_hebb_bias, mean_y, mean_y2});
  }
  void plasticity_update_dense(const DenseShape& s, const PlasticityCoeffs* coeffs, const float* x,
                               const float* error_hebb, float* grad_hebb, const float* mean_x, const float* mean_y,
                               const float* mean_y2, float* w, float* sq_avg, float* acc_delta,
                               float* omega) override {
    if (fuses_epilogues())
      return kc::plasticity_update_dense_fused(stream_, s, table(coeffs, s.P), x, error_hebb, mean_x, mean_y,
                                               mean_y2, w, sq_avg, acc_delta, omega);
    dense_backward(DenseShape{s.P, s.N, s.In, 2 * s.Out, s.shared_input}, x, nullptr, error_hebb, nullptr, grad_hebb,
                   nullptr);
    plasticity_update(s.P, s.Out, s.In, coeffs, grad_hebb, mean_x, mean_y, mean_y2, w, sq_avg, acc_delta, omega);
  }
  void route_hidden_error(int P, std::size_t per_net, const kernels::HiddenError* mode, const float* dfa_e,
                          const float* y, bool relu_after, float* e) override {
    kc::route_hidden_error(stream_, P, per_net, table(mode, P), dfa_e, y, relu_after, e);
  }
  void pick_per_net(int P, std::size_t per_net, const std::uint8_t* use_b, const float* a, const float* b,
                    float* out) override {
    kc::pick_per_net(stream_, P, per_net, table(use_b, P), a, b, out);
  }
  void plasticity_bound_rows(int P, int Out, int In, const PlasticityCoeffs* coeffs, float* w) override {
    kc::plasticity_bound_rows(stream_, P, Out, In, table(coeffs, P), w);
  }
  void kwta_forward(int P, int N, int units, const KwtaParams* params, float* y, float* scale) override {
    kc::kwta_forward(stream_, P, N, units, table(params, P), y, scale);
  }
  void kwta_backward(int P, int N, int units, const KwtaParams* params, const float* y, const float* scale,
                     const float* dy, float* dx) override {
    kc::kwta_backward(stream_, P, N, units, table(params, P), y, scale, dy, dx);
  }
  void pre_mean_dense(const DenseShape& s, const float* x, float* mean_x) override {
    kc::pre_mean_dense(stream_, s, x, mean_x);
  }
  void pre_mean_conv(const ConvShape& s, const float* x, float* mean_x) override {
    kc::pre_mean_conv(stream_, s, x, mean_x);
  }
  void plasticity_update(int P, int Out, int In, const PlasticityCoeffs* coeffs, const float* grad_hebb,
                         const float* mean_x, const float* mean_y, const float* mean_y2, float* w, float* sq_avg,
                         float* acc_delta, float* omega) override {
    kc::plasticity_update(stream_, P, Out, In, table(coeffs, P), grad_hebb, mean_x, mean_y, mean_y2, w, sq_avg,
                          acc_delta, omega);
  }
  void plasticity_bias_update(int P, int Out, const PlasticityCoeffs* coeffs, const float* gb, const float* mean_y,
                              float* b, float* sq_avg, float* acc_delta) override {
    kc::plasticity_bias_update(stream_, P, Out, table(coeffs, P), gb, mean_y, b, sq_avg, acc_delta);
  }
  void ewc_accumulate_fisher(int P, std::size_t per_net, float scale, const float* g, float* fisher) override {
    kc::ewc_accumulate_fisher(stream_, P, per_net, scale, g, fisher);
  }
  void ewc_proximal_step(int P, std::size_t per_net, const float* strength, const float* fisher,
                         const float* anchor, float* w) override {
    kc::ewc_proximal_step(stream_, P, per_net, table(strength, P), fisher, anchor, w);
  }
  void mask_logits(int P, int N, int C, const std::uint8_t* allowed, float* logits) override {
    kc::mask_logits(stream_, P, N, C, allowed, logits);
  }
  void flag_nonfinite(int P, std::size_t per_net, const float* x, std::uint8_t* flags) override {
    kc::flag_nonfinite(stream_, P, per_net, x, flags);
  }
  void gather_batch(const GatherShape& s, const std::uint8_t* images, const std::uint8_t* labels,
                    const std::int32_t* order, const std::int32_t* index, const std::int32_t* task, const float* mean, const float* stddev,
                    const std::uint16_t* perm, const std::int8_t* label_map, const std::uint8_t* head, float* x,
                    std::int32_t* y, std::uint8_t* allowed) override {
    kc::gather_batch(stream_, s, images, labels, order, index, task, mean, stddev, perm, label_map, head, x, y, allowed);
  }
  void add_scaled(std::size_t n, float scale, const float* x, float* acc) override { kc::add_scaled(stream_, n, scale, x, acc); }
  void shuffle_order(std::size_t n, std::uint64_t seed, std::int32_t* order) override {
    kc::shuffle_order(stream_, *arena_, n, seed, order);
  }

 private:
  // A per-net host table (n entries) on the device (uploaded when it changed).
  template <typename T>
  const T* table(const T* host, int n) {
    return static_cast<const T*>(tables_->get(host, std::size_t(n) * sizeof(T),
                                              [&](void* dst, const void* src, std::size_t bytes) {
                                                to_device(dst, src, bytes);
                                              }));
  }
  // A conv plastic layer's [g; h] with its stacked rows made as the GEMM
  // reads them from the error e (stored: a device pointer; or made from the
  // pool's: PooledConvError), then the bias sums with θ, ⟨y⟩ and ⟨y²⟩ (θ
  // read by the rows first).
  template <class Error>
  void fused_conv_plasticity_grads(const ConvShape& s, const PlasticityCoeffs* coeffs, const float* x, const Error& e,
                                   const float* y, float* theta, float* grad_hebb, float* grad_hebb_bias,
                                   float* mean_y, float* mean_y2) {
    kc::conv2d_plasticity_grads(stream_, *arena_, s, table(coeffs, s.P), x, e, y, theta, grad_hebb, grad_hebb_bias,
                                mean_y, mean_y2);
  }
  // A pooled conv error with its per-net modes as a device table.
  PooledConvError on_device(PooledConvError e, int P) {
    if (e.mode) e.mode = table(e.mode, P);
    return e;
  }

  // $EVOPLAST_CUDA_GRAPHS=0 launches every step directly; so do the modes a
  // capture cannot hold: a synchronisation after every launch
  // (EVOPLAST_CUDA_SYNC=1) and cuDNN (its algorithm search runs on first use).
  static bool step_graphs_enabled() {
    const char* e = std::getenv("EVOPLAST_CUDA_GRAPHS");
    if (e && std::strcmp(e, "0") == 0) return false;
    return !kc::sync_after_launch() && kc::conv_impl() != kc::ConvImpl::cudnn;
  }
  void set_capturing(bool capturing) {
    capturing_ = capturing;
    arena_->set_capturing(capturing);
  }
  // Ends a capture whose work must not run; the tables it uploaded never arrived.
  void abandon_capture() noexcept {
    set_capturing(false);
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(stream_, &graph);
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    tables_->forget();
  }
  void stop_graphs(const std::string& why) {
    graphs_ = false;
    fmt::print(stderr, "evoplast: a training step could not run as a CUDA graph ({}); steps are launched "
                       "directly from now on\n",
               why);
  }
  // Launches a captured step: the last step's executable graph updated with
  // its arguments, or a new one where the work differs. False (graphs
  // stopped, nothing launched) when no executable graph could be made.
  bool launch_step_graph(cudaGraph_t graph) {
    if (step_exec_) {
      cudaGraphExecUpdateResultInfo info{};
      if (cudaGraphExecUpdate(step_exec_, graph, &info) != cudaSuccess) {
        (void)cudaGetLastError();  // not sticky: the topology changed
        EVOPLAST_CUDA_PRINT(cudaGraphExecDestroy(step_exec_));  // an in-flight launch finishes first
        step_exec_ = nullptr;
      }
    }
    const cudaError_t made = step_exec_ ? cudaSuccess : cudaGraphInstantiate(&step_exec_, graph, 0);
    EVOPLAST_CUDA_PRINT(cudaGraphDestroy(graph));
    if (made != cudaSuccess) {
      (void)cudaGetLastError();
      step_exec_ = nullptr;
      tables_->forget();  // the graph's table uploads never ran
      stop_graphs(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(made));
      return false;
    }
    EVOPLAST_CUDA(cudaGraphLaunch(step_exec_, stream_));
    return true;
  }

  // cuDNN, created on first use (only the vendor convolution needs it).
  kc::Dnn dnn() {
    if (!dnn_) dnn_ = kc::create_cudnn(stream_);
    return dnn_;
  }

  static constexpr std::size_t kSmallUpload = 64 << 10;
  static constexpr std::size_t kBlasWorkspace = std::size_t(32) << 20;  // cuBLAS's advice for Hopper
  static constexpr std::size_t kTablePool = std::size_t(4) << 20;       // per-net tables
  void* blas_workspace_ = nullptr;
  std::unique_ptr<TableCache> tables_;
  bool graphs_ = false, capturing_ = false;
  bool fusion_allowed_ = true;  // $EVOPLAST_FUSION is not 0
  // Our tile kernels (at every precision) take a step into their loads or
  // epilogue, where cuBLAS could not; a conv step also needs our
  // implicit-GEMM convolution (fuses_conv_steps).
  bool fuses_epilogues() const { return fusion_allowed_; }
  int warm_batch_ = 0;  // the largest batch a step has run directly with
  cudaGraphExec_t step_exec_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  PinnedRing ring_{std::size_t(8) << 20};
  kc::Dnn dnn_ = nullptr;
  std::unique_ptr<Arena> arena_;  // created once the stream exists, destroyed before it
  std::string name_;
};

// The CUDA backend's switches (README, "Debugging aids"), read by the
// kernels as the process starts, where a value they do not know runs the
// default unannounced: such a value is refused here, in one line naming it.
// An empty value counts as unset.
void check_switches() {
  struct Switch {
    const char* name;
    std::vector<std::string> values;
  };
  const Switch switches[] = {{"EVOPLAST_PRECISION", kPrecisions},
                             {"EVOPLAST_CONV", {"implicit", "im2col", "cudnn"}},
                             {"EVOPLAST_GEMM", {"cublas", "tiled"}},
                             {"EVOPLAST_FUSION", {"0", "1"}},
                             {"EVOPLAST_POOLED_ERROR", {"staged", "gathered"}},
                             {"EVOPLAST_CUDA_GRAPHS", {"0", "1"}},
                             {"EVOPLAST_CUDA_SYNC", {"0", "1"}},
                             {"EVOPLAST_POISON_SCRATCH", {"0", "1"}}};
  for (const Switch& s : switches) {
    const char* v = std::getenv(s.name);
    if (!v || !*v) continue;
    if (std::find(s.values.begin(), s.values.end(), v) == s.values.end())
      throw EngineError(fmt::format("{}={}: choose {} (or unset it)", s.name, v, fmt::join(s.values, ", ")));
  }
  const char* conv = std::getenv("EVOPLAST_CONV");
  if (conv && std::strcmp(conv, "cudnn") == 0 && !kc::cudnn_built())
    throw EngineError("EVOPLAST_CONV=cudnn: this build has no cuDNN; unset it to use our convolution");
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, const std::string& precision) {
  if (cuda_device_count() == 0) throw EngineError("--backend cuda: no CUDA device is visible; use --backend cpu");
  check_switches();
  if (!precision.empty()) {
    const auto p = kc::parse_precision(precision.c_str());
    if (!p) throw EngineError(fmt::format("precision '{}': choose {}", precision, precision_choices()));
    kc::set_gemm_precision(*p);
  }
  return std::make_unique<CudaBackend>(device);
}

}  // namespace evoplast::engine
