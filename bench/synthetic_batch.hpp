// The benches' input: one minibatch of random images and labels on a
// backend. Their figures (times, memory counts) do not depend on the pixels.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "engine/backend.hpp"
#include "engine/network.hpp"

namespace evoplast::bench {

struct SyntheticBatch {
  engine::Buffer<float> x;         // (batch, in_c, in_h, in_w), uniform in [-0.4, 2.8] (MNIST's normalised range)
  engine::Buffer<std::int32_t> y;  // (batch): sample n has label n % classes
  SyntheticBatch(engine::Backend& backend, const engine::NetSpec& spec, int batch, std::mt19937& rng)
      : x(backend, std::size_t(batch) * spec.in_c * spec.in_h * spec.in_w), y(backend, std::size_t(batch)) {
    std::uniform_real_distribution<float> u(-0.4f, 2.8f);
    std::vector<float> xh(x.size());
    for (auto& v : xh) v = u(rng);
    std::vector<std::int32_t> yh(y.size());
    for (std::size_t n = 0; n < yh.size(); ++n) yh[n] = std::int32_t(n % std::size_t(spec.classes));
    x.upload(xh);
    y.upload(yh);
  }
};

}  // namespace evoplast::bench
