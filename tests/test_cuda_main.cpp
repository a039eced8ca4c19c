// The CUDA tests' main: without a device every test is reported as skipped
// (exit 77, ctest's SKIP_RETURN_CODE), never as passed. Built twice: against
// the CUDA runtime (a GPU) and against the SIMT simulator (tests/simt).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/cuda_device.hpp"
#include "kernels/cpu_threads.hpp"
#include "kernels/cuda.hpp"

int main(int argc, char** argv) {
  // The CPU reference's threads wait as evolve's do (kernels/cpu_threads.hpp).
  evoplast::kernels::cpu::restart_with_short_spin_waits(argv);
  if (evoplast::engine::cuda_device_count() == 0) {
    std::printf("skipped: no CUDA device visible\n");
    return 77;
  }
  const char* conv = std::getenv("EVOPLAST_CONV");
  if (conv && std::strcmp(conv, "cudnn") == 0 && !evoplast::kernels::cuda::cudnn_built()) {
    std::printf("skipped: EVOPLAST_CONV=cudnn, but this build has no cuDNN (the simulator never has)\n");
    return 77;
  }
  std::printf("device: %s\n", evoplast::engine::cuda_device_name(0).c_str());
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
