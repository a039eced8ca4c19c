#include "kernels/cuda_check.hpp"
#include "engine/cuda_device.hpp"
#include "engine/errors.hpp"

namespace evoplast::engine {

bool cuda_built() { return true; }

int cuda_device_count() {
  int count = 0;
  // No driver or no device is not an error here: it means "no GPU".
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return count;
}

std::string cuda_device_name(int device) {
  cudaDeviceProp prop{};
  EVOPLAST_CUDA(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

}  // namespace evoplast::engine
