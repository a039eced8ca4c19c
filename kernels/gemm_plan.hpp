// How our tiled GEMM (kernels/gemm_cuda.cu) splits a long sum over blocks
// where a matrix has few output tiles: host-only arithmetic, shared by the
// kernel's launch and the engine's memory plan (engine/memory_plan.hpp).
#pragma once
#include <algorithm>
#include <cstddef>

#include "kernels/conv_plan.hpp"  // conv_scratch_budget: the same budget

namespace evoplast::kernels {

// Splits of the K-long sum of each (M, N) product: about 1 024 terms a
// split (at most 16) where a product has fewer than 16 output tiles of 64×64
// and K ≥ 2 048; else 1. fc1's forward in the seed CNN (batch 64, 128
// outputs, 9 216 inputs) was 2 tiles a net: 128 blocks at P = 64 for an
// H200's 132 SMs, each 576 slices long (2.3 ms in TF32, cuBLAS's fp32 0.4).
// By (M, N, K) alone, never the batch, so a slice of the population keeps
// the whole's bits.
inline int gemm_k_splits(int M, int N, int K) {
  const long tiles = long((M + 63) / 64) * ((N + 63) / 64);
  if (tiles >= 16 || K < 2048) return 1;
  return std::clamp((K + 1023) / 1024, 1, 16);
}

// Products of a batch one split launch takes: splits × M × N partial floats
// and splits blocks of z each (items_per_launch).
inline int gemm_split_batch(int M, int N, int K, int batch) {
  const int splits = gemm_k_splits(M, N, K);
  return items_per_launch(std::size_t(splits) * std::size_t(M) * std::size_t(N), batch, splits);
}

// Floats of scratch the partial sums of one launch take (0: no split).
inline std::size_t gemm_partial_floats(int M, int N, int K, int batch) {
  const int splits = gemm_k_splits(M, N, K);
  if (splits == 1) return 0;
  return std::size_t(gemm_split_batch(M, N, K, batch)) * splits * std::size_t(M) * std::size_t(N);
}

}  // namespace evoplast::kernels
