// The io layer's exception: every message is one line naming the file or
// value, what is wrong, and what to do.
#pragma once
#include <stdexcept>
#include <string>

namespace evoplast::io {

class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace evoplast::io
