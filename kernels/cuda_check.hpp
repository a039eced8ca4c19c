// The one way kernels/ and engine/ call CUDA: checked runtime and cuBLAS
// calls, checked kernel launches. Under nvcc a launch is kernel<<<…>>>; under
// the SIMT simulator (tests/simt, g++ compiling the same .cu files) the same
// line queues the kernel there. EVOPLAST_CUDA_SYNC=1 synchronises after
// every launch, so an execution error names the kernel that caused it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace evoplast::kernels::cuda {

// A failed CUDA or cuBLAS call: "file:line: call: message".
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline std::string where(const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  return std::string(slash ? slash + 1 : file) + ":" + std::to_string(line);
}
inline void check(cudaError_t e, const std::string& what, const char* file, int line) {
  if (e != cudaSuccess) throw CudaError(where(file, line) + ": " + what + ": " + cudaGetErrorString(e));
}
inline void check(cublasStatus_t s, const std::string& what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw CudaError(where(file, line) + ": " + what + ": cuBLAS status " + std::to_string(int(s)));
}
// For destructors, which must not throw: the failure is printed.
inline void check_print(cudaError_t e, const char* what, const char* file, int line) noexcept {
  if (e != cudaSuccess) std::fprintf(stderr, "%s: %s: %s\n", where(file, line).c_str(), what, cudaGetErrorString(e));
}

// $EVOPLAST_CUDA_SYNC=1: synchronise and check after every launch.
inline bool sync_after_launch() {
  static const bool on = [] {
    const char* e = std::getenv("EVOPLAST_CUDA_SYNC");
    return e && std::strcmp(e, "1") == 0;
  }();
  return on;
}

// Launch errors now (configuration, arguments), with the kernel's name;
// execution errors at the next synchronisation, or here with EVOPLAST_CUDA_SYNC=1.
inline void check_launch(const char* kernel, const char* file, int line, cudaStream_t stream) {
  check(cudaGetLastError(), std::string("launch of ") + kernel, file, line);
  if (sync_after_launch()) check(cudaStreamSynchronize(stream), std::string("execution of ") + kernel, file, line);
}

template <typename... Params, typename... Args>
void launch(const char* kernel, const char* file, int line, void (*fn)(Params...), dim3 grid, dim3 block,
            std::size_t smem, cudaStream_t stream, Args&&... args) {
#if defined(__CUDACC__)
  fn<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
#elif defined(EVOPLAST_SIMT)
  ::simt::launch(kernel, fn, grid, block, smem, stream, std::forward<Args>(args)...);
#else
  static_assert(sizeof...(Params) < 0, "kernels are launched from .cu files: nvcc or the SIMT simulator");
#endif
  check_launch(kernel, file, line, stream);
}

}  // namespace evoplast::kernels::cuda

#define EVOPLAST_CUDA(call) ::evoplast::kernels::cuda::check((call), #call, __FILE__, __LINE__)
#define EVOPLAST_CUDA_PRINT(call) ::evoplast::kernels::cuda::check_print((call), #call, __FILE__, __LINE__)
#define EVOPLAST_CUBLAS(call) ::evoplast::kernels::cuda::check((call), #call, __FILE__, __LINE__)
// EVOPLAST_LAUNCH(kernel, grid, block, shared_bytes, stream, args…): kernel<<<grid, block, shared_bytes, stream>>>(args…), checked.
#define EVOPLAST_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::evoplast::kernels::cuda::launch(#kernel, __FILE__, __LINE__, kernel, grid, block, smem, stream, __VA_ARGS__)
