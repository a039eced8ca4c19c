// CUDA device discovery, callable from host-only code. Without a CUDA build
// (or without a device, or a driver) it reports zero devices, never aborts.
#pragma once
#include <string>

namespace evoplast::engine {

bool cuda_built();
int cuda_device_count();             // 0 where there is no usable device
std::string cuda_device_name(int);   // e.g. "NVIDIA H100 80GB HBM3"

}  // namespace evoplast::engine
