// Shared by every kernel family: host/device qualifiers, shapes, and the
// counter-based random numbers that let the CPU and CUDA backends draw the
// same dropout masks without storing them.
#pragma once
#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define EVOPLAST_HD __host__ __device__ __forceinline__
#else
#define EVOPLAST_HD inline
#endif

namespace evoplast::kernels {

// A valid (no padding), stride-1 convolution over a population of P networks
// that share one minibatch of N images.
struct ConvShape {
  int P = 1, N = 1;
  int Cin = 1, H = 1, W = 1;
  int Cout = 1, K = 1;
  bool shared_input = false;  // input is (N, Cin, H, W), the same for every net (first layer)
  // Backward only: x is a ReLU's output, and the input gradient is written through that
  // ReLU's backward (0 where x ≤ 0), so the ReLU needs no pass of its own.
  bool input_relu = false;
  EVOPLAST_HD int Ho() const { return H - K + 1; }
  EVOPLAST_HD int Wo() const { return W - K + 1; }
  EVOPLAST_HD std::size_t x_size() const { return std::size_t(shared_input ? 1 : P) * N * Cin * H * W; }
  EVOPLAST_HD std::size_t w_size() const { return std::size_t(P) * Cout * Cin * K * K; }
  EVOPLAST_HD std::size_t b_size() const { return std::size_t(P) * Cout; }
  EVOPLAST_HD std::size_t y_size() const { return std::size_t(P) * N * Cout * Ho() * Wo(); }
};

// A dense layer y = x·Wᵀ + b for each of P networks over a shared minibatch of N rows.
struct DenseShape {
  int P = 1, N = 1, In = 1, Out = 1;
  bool shared_input = false;  // x is (N, In) for every net
  EVOPLAST_HD std::size_t x_size() const { return std::size_t(shared_input ? 1 : P) * N * In; }
  EVOPLAST_HD std::size_t w_size() const { return std::size_t(P) * Out * In; }
  EVOPLAST_HD std::size_t b_size() const { return std::size_t(P) * Out; }
  EVOPLAST_HD std::size_t y_size() const { return std::size_t(P) * N * Out; }
};

// Max-pooling with a k×k window and stride k (floor), over `planes` independent
// H×W planes (planes = P·N·C).
struct PoolShape {
  std::int64_t planes = 1;
  int H = 2, W = 2, k = 2;
  EVOPLAST_HD int Ho() const { return H / k; }
  EVOPLAST_HD int Wo() const { return W / k; }
  EVOPLAST_HD std::size_t x_size() const { return std::size_t(planes) * H * W; }
  EVOPLAST_HD std::size_t y_size() const { return std::size_t(planes) * Ho() * Wo(); }
};

// Inverted dropout for P nets of `per_net` elements each: an element of net p
// is kept with probability 1 − rate and then scaled by 1 / (1 − rate). The mask
// is drawn from the counter-based stream dropout_key(seed, layer, first_net + p,
// step), so the backward pass redraws it instead of storing it. first_net is
// the global index of net 0 when the P nets are a slice of a larger population
// (one MPI rank's share): a net's mask does not depend on how it was sliced.
struct DropoutParams {
  float rate = 0;
  std::uint64_t seed = 0;
  int layer = 0;
  std::uint64_t step = 0;
  int first_net = 0;
};

// SplitMix64 finaliser: a good 64-bit mix, cheap on both CPU and GPU.
EVOPLAST_HD std::uint64_t mix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from (key, counter): element i of a stream named by key.
EVOPLAST_HD float uniform01(std::uint64_t key, std::uint64_t counter) {
  std::uint64_t h = mix64(key ^ mix64(counter));
  return float(h >> 40) * (1.0f / 16777216.0f);
}

// The key of the dropout stream of one net in one layer at one training step:
// every (seed, layer, net, step) gets an independent mask.
EVOPLAST_HD std::uint64_t dropout_key(std::uint64_t seed, int layer, int net, std::uint64_t step) {
  return mix64(mix64(mix64(seed ^ (std::uint64_t(layer) << 48)) ^ std::uint64_t(net)) ^ step);
}

// Whether dropout keeps element i of net p (of this slice) …
EVOPLAST_HD bool dropout_keeps(const DropoutParams& d, int p, std::size_t i) {
  return uniform01(dropout_key(d.seed, d.layer, d.first_net + p, d.step), i) >= d.rate;
}
// … and the factor a kept element is scaled by.
EVOPLAST_HD float dropout_scale(const DropoutParams& d) { return d.rate < 1.0f ? 1.0f / (1.0f - d.rate) : 0.0f; }

}  // namespace evoplast::kernels
