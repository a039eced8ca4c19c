// How the CPU kernels' OpenMP threads wait. Threads that spin between
// parallel regions take the cores from any other process: on a 2-core
// machine with one busy process beside it, bench_population (MLP 2×400, P = 1)
// fell from 22.6 k to 5.1 k network-images/s spinning, to 14.0 k waiting
// passively (21.1 k passive alone). libgomp reads its wait policy when it
// loads, before main, so a program that wants passive waiting sets it and
// starts itself again, once; a user's own OMP_WAIT_POLICY is kept.
#pragma once
#include <unistd.h>

#include <cstdlib>

namespace evoplast::kernels::cpu {

inline void restart_with_passive_waiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: go on spinning
}

}  // namespace evoplast::kernels::cpu
