// The CUDA backend, created without any CUDA header in sight.
#pragma once
#include <memory>
#include <string>

#include "engine/backend.hpp"

namespace evoplast::engine {

// Throws EngineError when the build has no CUDA or no device is visible.
// precision: "fp32", "tf32", "tf32x3", or empty (the process's setting); see make_backend.
std::unique_ptr<Backend> make_cuda_backend(int device = 0, const std::string& precision = "");

}  // namespace evoplast::engine
