// The engine's exception: one line naming the value and what to do.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace evoplast::engine {

class EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A device allocation that did not fit: callers that know the population
// turn it into advice on a size that would.
class OutOfDeviceMemory : public EngineError {
 public:
  OutOfDeviceMemory(std::size_t requested, std::size_t free)
      : EngineError("out of device memory: " + std::to_string(requested >> 20) + " MiB requested, " +
                    std::to_string(free >> 20) + " MiB free"),
        requested(requested),
        free(free) {}
  std::size_t requested, free;
};

// A population the memory plan refuses: the facts (the message states them
// without naming any command-line option); each mode phrases the advice in
// its own options.
class PopulationTooLarge : public EngineError {
 public:
  PopulationTooLarge(const std::string& what, int population, long fits)
      : EngineError(what), population(population), fits(fits) {}
  int population;  // nets asked for
  long fits;       // the largest population that fits (0: not even one)
};

}  // namespace evoplast::engine
