#include "kernels/data.hpp"

#include <algorithm>
#include <vector>

namespace evoplast::kernels::cpu {

void gather_batch(const GatherShape& s, const std::uint8_t* images, const std::uint8_t* labels,
                  const std::int32_t* order, const std::int32_t* index, const std::int32_t* task, const float* mean, const float* stddev,
                  const std::uint16_t* perm, const std::int8_t* label_map, const std::uint8_t* head, float* x,
                  std::int32_t* y, std::uint8_t* allowed) {
#pragma omp parallel for schedule(static) if (s.N >= 16)
  for (int n = 0; n < s.N; ++n) {
    const std::size_t m = std::size_t(order ? order[n] : n);
    const std::size_t img = std::size_t(index[m]), t = std::size_t(task[m]);
    // The same expression as normalise_images, so every path rounds alike.
    const float scale = 1.0f / (255.0f * stddev[t]), shift = mean[t] / stddev[t];
    const std::uint8_t* src = images + img * s.pixels;
    const std::uint16_t* p = perm + t * s.pixels;
    float* dst = x + std::size_t(n) * s.pixels;
    for (int i = 0; i < s.pixels; ++i) dst[i] = float(src[p[i]]) * scale - shift;
    y[n] = label_map[t * 10 + labels[img]];
    for (int c = 0; c < s.classes; ++c) allowed[std::size_t(n) * s.classes + c] = head[t * s.classes + c];
  }
}

void add_scaled(std::size_t n, float scale, const float* x, float* acc) {
  for (std::size_t i = 0; i < n; ++i) acc[i] += scale * x[i];
}

void shuffle_order(std::size_t n, std::uint64_t seed, std::int32_t* order) {
  std::vector<std::uint64_t> key(n);
  for (std::size_t i = 0; i < n; ++i) {
    key[i] = mix64(seed ^ mix64(i));
    order[i] = std::int32_t(i);
  }
  std::stable_sort(order, order + n, [&](std::int32_t a, std::int32_t b) { return key[std::size_t(a)] < key[std::size_t(b)]; });
}

}  // namespace evoplast::kernels::cpu
