// The engine's exception: one line naming the value and what to do.
#pragma once
#include <stdexcept>

namespace evoplast::engine {

class EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace evoplast::engine
