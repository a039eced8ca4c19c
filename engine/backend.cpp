#include "engine/backend.hpp"

#include <fmt/format.h>

#include "engine/cpu_backend.hpp"
#include "engine/cuda_backend.hpp"
#include "engine/cuda_device.hpp"
#include "engine/errors.hpp"

namespace evoplast::engine {

std::unique_ptr<Backend> make_backend(const std::string& choice) {
  if (choice == "cpu") return std::make_unique<CpuBackend>();
  if (choice == "auto") {
    // CUDA when it is built and a device is present, else the CPU.
    if (cuda_built() && cuda_device_count() > 0) return make_cuda_backend();
    return std::make_unique<CpuBackend>();
  }
  if (choice == "cuda") {
    if (!cuda_built())
      throw EngineError("--backend cuda: this build has no CUDA backend (nvcc was not found at "
                        "configure time); use --backend cpu or rebuild with the CUDA toolkit");
    return make_cuda_backend();
  }
  throw EngineError(fmt::format("--backend '{}': choose cpu, cuda or auto", choice));
}

}  // namespace evoplast::engine
