// CUDA device discovery; the kernel-by-kernel comparisons with the CPU
// backend join this executable with the CUDA kernels.
#include <doctest/doctest.h>

#include "engine/cuda_device.hpp"

TEST_CASE("a visible CUDA device has a name") {
  REQUIRE(evoplast::engine::cuda_device_count() > 0);
  CHECK(!evoplast::engine::cuda_device_name(0).empty());
}
