// How the CUDA convolution splits its work so its scratch stays within a
// budget: the im2col path (columns, GEMM outputs, column gradients) runs
// `nets_per_chunk` nets at a time; the implicit GEMM's weight gradient takes
// its splits of the sum a few at a time. Host-only arithmetic, shared by the
// kernels (kernels/conv_cuda.cu) and the engine's memory plan
// (engine/memory_plan.hpp).
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

// The implicit-GEMM weight gradient's sum over N·Ho·Wo (kernels/conv_cuda.cu)
// is split so that a small population still gives every SM blocks: about
// 1 024 terms per split, at most 64. (At 4 096, conv2's dW of one net at
// batch 64 was 45 blocks for an H200's 132 SMs, each 256 slices long; at
// P = 1 our step took 2.4× im2col's. The partial sums cost one write and
// read of splits × P × Cout·Cin·K² floats: 170 MB for conv2 at P = 64.)
// The split depends on the net's shape
// alone, never on P, so a net's dW has the same bits in any population around
// it (a slice of it on an MPI rank); the scratch budget and the grid's z limit
// bound how many splits one launch takes. This is the most splits (rounding
// each to the tile's depth may leave fewer).
inline int weight_grad_splits(const ConvShape& s) {
  return std::clamp((s.N * s.Ho() * s.Wo() + 1023) / 1024, 1, 64);
}

// Of `items` whose partial sums take item_floats each and z_per_item blocks
// of a grid's z, how many one launch takes: their partial sums within the
// scratch budget, grid z within 65 535, at least one. (A conv's dW splits
// here; our tiled GEMM's split products, kernels/gemm_plan.hpp.)
inline int items_per_launch(std::size_t item_floats, int items, int z_per_item) {
  const std::size_t room = conv_scratch_budget() / std::max<std::size_t>(item_floats * sizeof(float), 1);
  return std::max(1, std::min({items, int(std::min<std::size_t>(room, 65535)), 65535 / std::max(z_per_item, 1)}));
}

// Splits one launch takes (of `splits`): one split of every net's dW, P blocks of z, each.
inline int weight_grad_splits_per_launch(const ConvShape& s, int splits) {
  return items_per_launch(std::size_t(s.P) * s.Cout * s.Cin * s.K * s.K, splits, s.P);
}

// Floats of scratch (slot 0) the partial sums of one launch take, at most.
inline std::size_t weight_grad_partial_floats(const ConvShape& s) {
  const int splits = weight_grad_splits(s);
  if (splits == 1) return 0;
  return std::size_t(weight_grad_splits_per_launch(s, splits)) * s.P * s.Cout * s.Cin * s.K * s.K;
}

// The implicit-GEMM input gradient's Wᵀ (kernels/conv_cuda.cu), (P, Cin,
// ld): its rows Cout·K·K long, zero-padded to a multiple of 16 (the tile
// kernels' slice depth, kTileK: a slice never leaves a row, and each row
// starts on 64 bytes); its scratch slot, and the floats it takes there.
constexpr int kTransposedWeightsSlot = 9;
EVOPLAST_HD int transposed_weights_ld(const ConvShape& s) { return (s.Cout * s.K * s.K + 15) / 16 * 16; }
inline std::size_t transposed_weights_floats(const ConvShape& s) {
  return std::size_t(s.P) * s.Cin * transposed_weights_ld(s);
}

// The implicit GEMM's loaders find a patch row's place in a table in shared
// memory (kernels/conv_cuda.cu), kPatchTableRows entries. The rows a sum
// runs over (the forward's patch rows, the input gradient's window rows)
// take it in periods of L whole channels, L·K² rows: a period and one slice
// (16 rows) past it fit the table, and their places, at most L + 2 planes
// from a corner, 25 bits (an entry packs one with the row's ky·K + kx). The
// rows of a period; 0 where no L fits (K > 31, or planes of a million
// pixels and more): the implicit GEMM does not take the shape.
constexpr int kPatchTableRows = 1024;
EVOPLAST_HD int patch_table_period(int K, int plane) {
  const int KK = K * K, by_table = (kPatchTableRows - 16) / KK, by_place = (1 << 25) / plane - 2;
  const int L = by_table < by_place ? by_table : by_place;
  return L >= 1 && L * KK >= 16 ? L * KK : 0;
}
// The input gradient's loader keeps which of a window's K² elements lie in
// the error image as the bits of a 64-bit word: K ≤ 8.
constexpr int kMaxWindowK = 8;

// The fused backward's error staged for a chunk of nets (kernels/conv_cuda.cu,
// scratch slot 1): nets per chunk so that one chunk's (chunk, N, Cout, Ho,
// Wo) stays within the budget, at least one; and the floats a chunk takes.
inline int staged_error_nets(const ConvShape& s) {
  const std::size_t per_net = std::max<std::size_t>(std::size_t(s.N) * s.Cout * s.Ho() * s.Wo(), 1);
  const std::size_t nets = conv_scratch_budget() / sizeof(float) / per_net;
  return int(std::clamp<std::size_t>(nets, 1, std::size_t(std::max(s.P, 1))));
}
inline std::size_t staged_error_floats(const ConvShape& s) {
  return std::size_t(staged_error_nets(s)) * s.N * s.Cout * s.Ho() * s.Wo();
}

}  // namespace evoplast::kernels
