// How the CPU kernels' OpenMP threads wait between parallel regions. Threads
// that spin take the cores from any other process; threads that sleep at once
// pay a wake-up for each of a step's many short regions. So they spin
// briefly (GOMP_SPINCOUNT=1000, about 10 µs), then sleep. Seen on this 2-core
// machine with both threads: the smoke preset 51 s sleeping at once, 25 s
// with the short spin (41 s on one thread); bench_population (MLP 2×400,
// P = 1) beside one busy process 32.7 k network-images/s sleeping at once,
// 23–26 k with the short spin, 6–7 k spinning 0.3 ms, 35 k on one thread.
// libgomp reads these when it loads, before main, so a program sets them
// and starts itself again, once; a user's own OMP_WAIT_POLICY (then ours
// are not set) or GOMP_SPINCOUNT is kept.
#pragma once
#include <unistd.h>

#include <cstdlib>

namespace evoplast::kernels::cpu {

inline void restart_with_short_spin_waits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  setenv("GOMP_SPINCOUNT", "1000", 0);  // PASSIVE alone would not spin at all
  execv("/proc/self/exe", argv);  // returns only on failure: go on with libgomp's defaults
}

}  // namespace evoplast::kernels::cpu
