// Builds without the CUDA backend (no nvcc at configure time): the CUDA entry
// points exist and say why they cannot be used.
#include "engine/cuda_backend.hpp"
#include "engine/cuda_device.hpp"
#include "engine/errors.hpp"

namespace evoplast::engine {

std::unique_ptr<Backend> make_cuda_backend(int, const std::string&) {
  throw EngineError("--backend cuda: this build has no CUDA backend; use --backend cpu");
}
bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(int) { return "none"; }

}  // namespace evoplast::engine
