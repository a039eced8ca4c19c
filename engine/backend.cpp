#include "engine/backend.hpp"

#include <fmt/format.h>

#include "engine/cpu_backend.hpp"
#include "engine/cuda_device.hpp"
#include "engine/errors.hpp"

namespace evoplast::engine {

#ifndef EVOPLAST_HAVE_CUDA
bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(int) { return "none"; }
#endif

std::unique_ptr<Backend> make_backend(const std::string& choice) {
  if (choice == "cpu" || choice == "auto") {
    // The CUDA kernels are not part of the engine yet, so auto means the CPU.
    return std::make_unique<CpuBackend>();
  }
  if (choice == "cuda") {
    if (!cuda_built())
      throw EngineError("--backend cuda: this build has no CUDA backend (nvcc was not found at "
                        "configure time); use --backend cpu or rebuild with the CUDA toolkit");
    if (cuda_device_count() == 0)
      throw EngineError("--backend cuda: no CUDA device is visible; use --backend cpu");
    throw EngineError("--backend cuda: the CUDA kernels are not in this build yet; use "
                      "--backend cpu");
  }
  throw EngineError(fmt::format("--backend '{}': choose cpu, cuda or auto", choice));
}

}  // namespace evoplast::engine
