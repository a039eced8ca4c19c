// The CUDA backend, created without any CUDA header in sight.
#pragma once
#include <memory>

#include "engine/backend.hpp"

namespace evoplast::engine {

// Throws EngineError when the build has no CUDA or no device is visible.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);

}  // namespace evoplast::engine
