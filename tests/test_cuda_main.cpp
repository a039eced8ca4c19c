// The CUDA tests' main: without a device every test is reported as skipped
// (exit 77, ctest's SKIP_RETURN_CODE), never as passed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "engine/cuda_device.hpp"

int main(int argc, char** argv) {
  if (evoplast::engine::cuda_device_count() == 0) {
    std::printf("skipped: no CUDA device visible\n");
    return 77;
  }
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
