#include "engine/backend.hpp"

#include <fmt/format.h>

#include "engine/cpu_backend.hpp"
#include "engine/cuda_backend.hpp"
#include "engine/cuda_device.hpp"
#include "engine/errors.hpp"

namespace evoplast::engine {

namespace {

// fp32, or tf32 and bf16 emulated (CpuBackend). Split TF32 is fp32's
// accuracy by design: on the CPU, fp32 is what it would emulate.
std::unique_ptr<Backend> cpu_backend(const std::string& precision) {
  if (precision == "tf32x3")
    throw EngineError("precision tf32x3: split TF32 is a GPU's way to fp32's accuracy; on the CPU backend use "
                      "precision fp32 (tf32 and bf16 are emulated there, for their accuracy)");
  return std::make_unique<CpuBackend>(precision.empty() ? "fp32" : precision);
}

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& choice, const std::string& precision) {
  if (!precision.empty() && !valid_precision(precision))
    throw EngineError(fmt::format("precision '{}': choose {}", precision, precision_choices()));
  if (choice == "cpu") return cpu_backend(precision);
  if (choice == "auto") {
    // CUDA when it is built and a device is present, else the CPU.
    if (cuda_built() && cuda_device_count() > 0) return make_cuda_backend(0, precision);
    return cpu_backend(precision);
  }
  if (choice == "cuda") {
    if (!cuda_built())
      throw EngineError("--backend cuda: this build has no CUDA backend (nvcc was not found at "
                        "configure time); use --backend cpu or rebuild with the CUDA toolkit");
    return make_cuda_backend(0, precision);
  }
  throw EngineError(fmt::format("--backend '{}': choose cpu, cuda or auto", choice));
}

}  // namespace evoplast::engine
