// The vendor yardstick for convolution: cuDNN, the population as one grouped
// convolution (P groups; the shared first layer as one wide convolution over
// P·Cout filters). cuDNN wants (N, P·C, H, W); ours is (P, N, C, H, W), so
// small kernels swap the two leading axes on the way in and out. fp32 FMA
// math only (no TF32), like the rest of the engine.
//
// libcudnn is opened (dlopen) the first time this path is chosen, so evolve
// starts, and runs our own convolution, where cuDNN is not installed. Each
// algorithm cuDNN proposes is checked: its status, its workspace against the
// scratch budget, and deterministic ones are preferred.
#include <cudnn.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/conv_plan.hpp"
#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {
namespace {

// The cuDNN entry points used here, resolved from libcudnn at first use.
#define EVOPLAST_CUDNN_FUNCTIONS(X)                                                                          \
  X(cudnnCreate) X(cudnnDestroy) X(cudnnSetStream) X(cudnnGetErrorString) X(cudnnCreateTensorDescriptor)      \
  X(cudnnCreateFilterDescriptor) X(cudnnCreateConvolutionDescriptor) X(cudnnSetTensor4dDescriptor)            \
  X(cudnnSetFilter4dDescriptor) X(cudnnSetConvolution2dDescriptor) X(cudnnSetConvolutionGroupCount)           \
  X(cudnnSetConvolutionMathType) X(cudnnDestroyTensorDescriptor) X(cudnnDestroyFilterDescriptor)              \
  X(cudnnDestroyConvolutionDescriptor) X(cudnnGetConvolutionForwardAlgorithm_v7)                              \
  X(cudnnGetConvolutionForwardWorkspaceSize) X(cudnnConvolutionForward) X(cudnnConvolutionBackwardBias)       \
  X(cudnnGetConvolutionBackwardFilterAlgorithm_v7) X(cudnnGetConvolutionBackwardFilterWorkspaceSize)          \
  X(cudnnConvolutionBackwardFilter) X(cudnnGetConvolutionBackwardDataAlgorithm_v7)                            \
  X(cudnnGetConvolutionBackwardDataWorkspaceSize) X(cudnnConvolutionBackwardData)

struct Cudnn {
#define EVOPLAST_CUDNN_MEMBER(f) decltype(&::f) f = nullptr;
  EVOPLAST_CUDNN_FUNCTIONS(EVOPLAST_CUDNN_MEMBER)
#undef EVOPLAST_CUDNN_MEMBER
};

const Cudnn& cudnn() {
  static const Cudnn lib = [] {
    void* h = nullptr;
    for (const char* name : {"libcudnn.so.9", "libcudnn.so"})
      if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (!h)
      throw CudaError("EVOPLAST_CONV=cudnn: libcudnn could not be opened (" + std::string(dlerror()) +
                      "); install cuDNN 9 or unset EVOPLAST_CONV to use our convolution");
    Cudnn c;
#define EVOPLAST_CUDNN_RESOLVE(f)                                                                    \
  c.f = reinterpret_cast<decltype(c.f)>(dlsym(h, #f));                                              \
  if (!c.f) throw CudaError("EVOPLAST_CONV=cudnn: libcudnn has no " #f "; install cuDNN 9");
    EVOPLAST_CUDNN_FUNCTIONS(EVOPLAST_CUDNN_RESOLVE)
#undef EVOPLAST_CUDNN_RESOLVE
    return c;
  }();
  return lib;
}

void check(cudnnStatus_t s, const char* what, const char* file, int line) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw CudaError(where(file, line) + ": " + what + ": " + cudnn().cudnnGetErrorString(s));
}
#define EVOPLAST_CUDNN(f, ...) check(cudnn().f(__VA_ARGS__), #f, __FILE__, __LINE__)

// The first algorithm (cuDNN lists the fastest first) that succeeded and fits
// the workspace budget, deterministic ones first.
template <typename Perf>
Perf choose(const Perf* perf, int found, const char* what) {
  const std::size_t budget = conv_scratch_budget();
  for (bool need_deterministic : {true, false})
    for (int i = 0; i < found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= budget &&
          (!need_deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
        return perf[i];
  throw CudaError(std::string("cuDNN offers no ") + what + " algorithm within the " +
                  std::to_string(budget >> 20) + " MiB workspace budget");
}

// out[b][a][i] = in[a][b][i] for in (A, B, inner).
__global__ void swap_leading_kernel(std::size_t A, std::size_t B, std::size_t inner, const float* __restrict__ in,
                                    float* __restrict__ out) {
  EVOPLAST_GRID_STRIDE(k, A * B * inner) {
    const std::size_t i = k % inner, b = k / inner % B, a = k / (inner * B);
    out[(b * A + a) * inner + i] = in[k];
  }
}
void swap_leading(Stream st, std::size_t A, std::size_t B, std::size_t inner, const float* in, float* out) {
  EVOPLAST_LAUNCH(swap_leading_kernel, blocks_for(A * B * inner), kThreads, 0, st, A, B, inner, in, out);
}
// y (P, N, Cout, HW) += b (P, Cout)
__global__ void add_bias_kernel(ConvShape s, const float* __restrict__ b, float* __restrict__ y) {
  const int HW = s.Ho() * s.Wo();
  EVOPLAST_GRID_STRIDE(i, s.y_size()) {
    const std::size_t c = i / HW % s.Cout, p = i / (std::size_t(HW) * s.Cout * s.N);
    y[i] += b[p * s.Cout + c];
  }
}

// The descriptors of one population convolution, destroyed with the object.
struct Descriptors {
  cudnnTensorDescriptor_t x{}, y{}, bias{};
  cudnnFilterDescriptor_t w{};
  cudnnConvolutionDescriptor_t conv{};
  explicit Descriptors(const ConvShape& s) {
    const int groups = s.shared_input ? 1 : s.P, cin = s.shared_input ? s.Cin : s.P * s.Cin;
    EVOPLAST_CUDNN(cudnnCreateTensorDescriptor, &x);
    EVOPLAST_CUDNN(cudnnCreateTensorDescriptor, &y);
    EVOPLAST_CUDNN(cudnnCreateTensorDescriptor, &bias);
    EVOPLAST_CUDNN(cudnnCreateFilterDescriptor, &w);
    EVOPLAST_CUDNN(cudnnCreateConvolutionDescriptor, &conv);
    EVOPLAST_CUDNN(cudnnSetTensor4dDescriptor, x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.N, cin, s.H, s.W);
    EVOPLAST_CUDNN(cudnnSetTensor4dDescriptor, y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.N, s.P * s.Cout, s.Ho(),
                   s.Wo());
    EVOPLAST_CUDNN(cudnnSetTensor4dDescriptor, bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.P * s.Cout, 1, 1);
    EVOPLAST_CUDNN(cudnnSetFilter4dDescriptor, w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.P * s.Cout, s.Cin, s.K,
                   s.K);
    EVOPLAST_CUDNN(cudnnSetConvolution2dDescriptor, conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                   CUDNN_DATA_FLOAT);
    EVOPLAST_CUDNN(cudnnSetConvolutionGroupCount, conv, groups);
    EVOPLAST_CUDNN(cudnnSetConvolutionMathType, conv, CUDNN_FMA_MATH);
  }
  ~Descriptors() {
    const Cudnn& c = cudnn();
    c.cudnnDestroyTensorDescriptor(x);
    c.cudnnDestroyTensorDescriptor(y);
    c.cudnnDestroyTensorDescriptor(bias);
    c.cudnnDestroyFilterDescriptor(w);
    c.cudnnDestroyConvolutionDescriptor(conv);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

}  // namespace

bool cudnn_built() { return true; }

Dnn create_cudnn(Stream st) {
  cudnnHandle_t h = nullptr;
  EVOPLAST_CUDNN(cudnnCreate, &h);
  EVOPLAST_CUDNN(cudnnSetStream, h, st);
  return h;
}
void destroy_cudnn(Dnn dnn) noexcept {
  if (dnn) cudnn().cudnnDestroy(reinterpret_cast<cudnnHandle_t>(dnn));
}

void conv2d_forward_cudnn(Stream st, Dnn dnn, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                          const float* b, float* y) {
  cudnnHandle_t h = reinterpret_cast<cudnnHandle_t>(dnn);
  EVOPLAST_CUDNN(cudnnSetStream, h, st);
  Descriptors d(s);
  const float* xg = x;
  if (!s.shared_input) {
    float* t = ws.floats(4, s.x_size());
    swap_leading(st, s.P, s.N, std::size_t(s.Cin) * s.H * s.W, x, t);
    xg = t;
  }
  float* yg = ws.floats(5, s.y_size());
  int found = 0;
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  EVOPLAST_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7, h, d.x, d.w, d.conv, d.y, 8, &found, perf);
  const auto algo = choose(perf, found, "forward").algo;
  std::size_t bytes = 0;
  EVOPLAST_CUDNN(cudnnGetConvolutionForwardWorkspaceSize, h, d.x, d.w, d.conv, d.y, algo, &bytes);
  void* work = ws.floats(6, bytes / sizeof(float) + 1);
  const float one = 1, zero = 0;
  EVOPLAST_CUDNN(cudnnConvolutionForward, h, &one, d.x, xg, d.w, w, d.conv, algo, work, bytes, &zero, d.y, yg);
  swap_leading(st, s.N, s.P, std::size_t(s.Cout) * s.Ho() * s.Wo(), yg, y);
  EVOPLAST_LAUNCH(add_bias_kernel, blocks_for(s.y_size()), kThreads, 0, st, s, b, y);
}

void conv2d_backward_cudnn(Stream st, Dnn dnn, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                           const float* dy, float* dx, float* dw, float* db) {
  if (s.shared_input && dx) throw std::invalid_argument("conv2d_backward: no input gradient for a shared input");
  cudnnHandle_t h = reinterpret_cast<cudnnHandle_t>(dnn);
  EVOPLAST_CUDNN(cudnnSetStream, h, st);
  Descriptors d(s);
  float* dyg = ws.floats(5, s.y_size());
  swap_leading(st, s.P, s.N, std::size_t(s.Cout) * s.Ho() * s.Wo(), dy, dyg);
  const float one = 1, zero = 0;
  if (db) EVOPLAST_CUDNN(cudnnConvolutionBackwardBias, h, &one, d.y, dyg, &zero, d.bias, db);
  if (dw) {
    const float* xg = x;
    if (!s.shared_input) {
      float* t = ws.floats(4, s.x_size());
      swap_leading(st, s.P, s.N, std::size_t(s.Cin) * s.H * s.W, x, t);
      xg = t;
    }
    int found = 0;
    cudnnConvolutionBwdFilterAlgoPerf_t perf[8];
    EVOPLAST_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7, h, d.x, d.y, d.conv, d.w, 8, &found, perf);
    const auto algo = choose(perf, found, "weight-gradient").algo;
    std::size_t bytes = 0;
    EVOPLAST_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize, h, d.x, d.y, d.conv, d.w, algo, &bytes);
    void* work = ws.floats(6, bytes / sizeof(float) + 1);
    EVOPLAST_CUDNN(cudnnConvolutionBackwardFilter, h, &one, d.x, xg, d.y, dyg, d.conv, algo, work, bytes, &zero, d.w,
                   dw);
  }
  if (dx) {
    int found = 0;
    cudnnConvolutionBwdDataAlgoPerf_t perf[8];
    EVOPLAST_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7, h, d.w, d.y, d.conv, d.x, 8, &found, perf);
    const auto algo = choose(perf, found, "input-gradient").algo;
    std::size_t bytes = 0;
    EVOPLAST_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize, h, d.w, d.y, d.conv, d.x, algo, &bytes);
    void* work = ws.floats(6, bytes / sizeof(float) + 1);
    float* dxg = ws.floats(4, s.x_size());
    EVOPLAST_CUDNN(cudnnConvolutionBackwardData, h, &one, d.w, w, d.y, dyg, d.conv, algo, work, bytes, &zero, d.x,
                   dxg);
    swap_leading(st, s.N, s.P, std::size_t(s.Cin) * s.H * s.W, dxg, dx);
    if (s.input_relu) relu_backward(st, s.x_size(), x, dx, dx);  // cuDNN has no such epilogue: a pass of its own
  }
}

}  // namespace evoplast::kernels::cuda
