// Shared by the .cu kernel files: checked launches and grid sizing.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kernels/cuda.hpp"

namespace evoplast::kernels::cuda {

// Every launch is followed by this: launch errors now, with the kernel's name.
inline void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": launch of " + kernel +
                             ": " + cudaGetErrorString(e));
}
#define EVOPLAST_LAUNCHED(kernel) ::evoplast::kernels::cuda::check_launch(#kernel, __FILE__, __LINE__)

inline void check_blas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": cuBLAS status " +
                             std::to_string(int(s)));
}
#define EVOPLAST_CUBLAS(call) ::evoplast::kernels::cuda::check_blas((call), #call, __FILE__, __LINE__)

constexpr int kThreads = 256;
inline unsigned blocks_for(std::size_t n) {
  const std::size_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < 65535u * 32u ? (b ? b : 1) : 65535u * 32u);  // grid-stride loops cover the rest
}

// for (i = global thread; i < n; i += grid size)
#define EVOPLAST_GRID_STRIDE(i, n)                                                     \
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += std::size_t(gridDim.x) * blockDim.x)

}  // namespace evoplast::kernels::cuda
