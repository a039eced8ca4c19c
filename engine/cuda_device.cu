#include "engine/cuda_check.hpp"
#include "engine/cuda_device.hpp"

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
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return prop.name;
}

}  // namespace evoplast::engine
