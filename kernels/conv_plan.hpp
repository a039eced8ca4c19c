// How the CUDA convolution splits a population so its scratch (im2col
// columns, GEMM outputs, column gradients) stays within a budget: it runs
// `nets_per_chunk` nets at a time. Host-only arithmetic, shared by the kernels
// (kernels/conv_cuda.cu) and the engine's memory plan (engine/memory_plan.hpp).
#pragma once
#include <algorithm>
#include <cstddef>

#include "kernels/common.hpp"

namespace evoplast::kernels {

// Bytes of scratch one convolution may use (1 GiB unless set: tests lower it).
inline std::size_t& conv_scratch_budget_ref() {
  static std::size_t budget = std::size_t(1) << 30;
  return budget;
}
inline std::size_t conv_scratch_budget() { return conv_scratch_budget_ref(); }
inline void set_conv_scratch_budget(std::size_t bytes) { conv_scratch_budget_ref() = bytes; }

// Floats each scratch region of one chunk needs (0 where unused).
struct ConvScratch {
  int nets_per_chunk = 1;
  std::size_t cols = 0;   // slot 0: (chunk or 1 when shared, Cin·K·K, N·Ho·Wo)
  std::size_t out = 0;    // slot 1: (chunk, Cout, N·Ho·Wo): forward output / gathered dy
  std::size_t dcols = 0;  // slot 2: (chunk, Cin·K·K, N·Ho·Wo): column gradients
  std::size_t bytes() const { return (cols + out + dcols) * sizeof(float); }
};

// forward: y from x; otherwise the backward pass (with dw and/or dx).
inline ConvScratch conv_scratch(const ConvShape& s, bool forward, bool want_dw, bool want_dx) {
  const std::size_t KK = std::size_t(s.Cin) * s.K * s.K, ld = std::size_t(s.N) * s.Ho() * s.Wo();
  const bool cols = forward || want_dw;
  const std::size_t shared = cols && s.shared_input ? KK * ld : 0;
  const std::size_t per_net = std::size_t(s.Cout) * ld + (cols && !s.shared_input ? KK * ld : 0) +
                              (!forward && want_dx ? KK * ld : 0);
  const std::size_t budget = conv_scratch_budget() / sizeof(float);
  const std::size_t room = budget > shared ? budget - shared : 0;
  ConvScratch c;
  c.nets_per_chunk = int(std::clamp<std::size_t>(room / std::max<std::size_t>(per_net, 1), 1, std::size_t(s.P)));
  const std::size_t n = std::size_t(c.nets_per_chunk);
  c.cols = cols ? (s.shared_input ? KK * ld : n * KK * ld) : 0;
  c.out = n * std::size_t(s.Cout) * ld;
  c.dcols = !forward && want_dx ? n * KK * ld : 0;
  return c;
}

}  // namespace evoplast::kernels
