// The arithmetic of a backend's GEMMs, by the names the config file and the
// command line take; the one list every check and help text reads.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

namespace evoplast::engine {

// fp32: the CPU reference's arithmetic (both backends). On the CUDA
// backend's tensor cores: tf32 (operands rounded to 10 mantissa bits),
// tf32x3 (split TF32, about fp32's accuracy) or bf16 (7 mantissa bits); the
// CPU backend emulates tf32 and bf16 (engine/cpu_backend.hpp).
inline const std::vector<std::string> kPrecisions = {"fp32", "tf32", "tf32x3", "bf16"};

inline bool valid_precision(const std::string& precision) {
  return std::find(kPrecisions.begin(), kPrecisions.end(), precision) != kPrecisions.end();
}

// "fp32, tf32, tf32x3 or bf16", for messages.
inline std::string precision_choices() {
  std::string s;
  for (std::size_t i = 0; i < kPrecisions.size(); ++i)
    s += (i == 0 ? "" : i + 1 == kPrecisions.size() ? " or " : ", ") + kPrecisions[i];
  return s;
}

}  // namespace evoplast::engine
