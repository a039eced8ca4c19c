// The CPU tests' main. Their OpenMP threads wait between parallel regions as
// evolve's do (kernels/cpu_threads.hpp): under `ctest -j2` the other core is
// busy, and libgomp's default spin made a population test 12 times slower
// there (0.6 s alone, 7.3 s beside one busy process; 0.97 s with short spins).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "kernels/cpu_threads.hpp"

int main(int argc, char** argv) {
  evoplast::kernels::cpu::restart_with_short_spin_waits(argv);
  doctest::Context ctx(argc, argv);
  return ctx.run();
}
