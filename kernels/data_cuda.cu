#include <thrust/sort.h>

#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {
namespace {

__global__ void gather_kernel(GatherShape s, const std::uint8_t* __restrict__ images,
                              const std::uint8_t* __restrict__ labels, const std::int32_t* __restrict__ order,
                              const std::int32_t* __restrict__ index,
                              const std::int32_t* __restrict__ task, const float* __restrict__ mean,
                              const float* __restrict__ stddev, const std::uint16_t* __restrict__ perm,
                              const std::int8_t* __restrict__ label_map, const std::uint8_t* __restrict__ head,
                              float* __restrict__ x, std::int32_t* __restrict__ y, std::uint8_t* __restrict__ allowed) {
  EVOPLAST_GRID_STRIDE(k, std::size_t(s.N) * s.pixels) {
    const std::size_t n = k / s.pixels, i = k % s.pixels;
    const std::size_t m = std::size_t(order ? order[n] : std::int32_t(n));
    const std::size_t img = std::size_t(index[m]), t = std::size_t(task[m]);
    const float scale = 1.0f / (255.0f * stddev[t]), shift = mean[t] / stddev[t];
    x[k] = float(images[img * s.pixels + perm[t * s.pixels + i]]) * scale - shift;
    if (i == 0) y[n] = label_map[t * 10 + labels[img]];
    for (std::size_t c = i; c < std::size_t(s.classes); c += s.pixels) allowed[n * s.classes + c] = head[t * s.classes + c];
  }
}
__global__ void shuffle_keys_kernel(std::size_t n, std::uint64_t seed, std::uint64_t* key, std::int32_t* order) {
  EVOPLAST_GRID_STRIDE(i, n) {
    key[i] = mix64(seed ^ mix64(i));
    order[i] = std::int32_t(i);
  }
}

__global__ void add_scaled_kernel(std::size_t n, float scale, const float* x, float* acc) {
  EVOPLAST_GRID_STRIDE(i, n) acc[i] += scale * x[i];
}

}  // namespace

void gather_batch(Stream st, const GatherShape& s, const std::uint8_t* images, const std::uint8_t* labels,
                  const std::int32_t* order, const std::int32_t* index, const std::int32_t* task, const float* mean, const float* stddev,
                  const std::uint16_t* perm, const std::int8_t* label_map, const std::uint8_t* head, float* x,
                  std::int32_t* y, std::uint8_t* allowed) {
  EVOPLAST_LAUNCH(gather_kernel, blocks_for(std::size_t(s.N) * s.pixels), kThreads, 0, st, s, images, labels, order, index, task, mean,
                                                                                stddev, perm, label_map, head, x, y,
                                                                                allowed);
}
void shuffle_order(Stream st, Scratch& ws, std::size_t n, std::uint64_t seed, std::int32_t* order) {
  auto* key = reinterpret_cast<std::uint64_t*>(ws.floats(7, 2 * n));
  EVOPLAST_LAUNCH(shuffle_keys_kernel, blocks_for(n), kThreads, 0, st, n, seed, key, order);
  // Stable, like the CPU's std::stable_sort, so both draw the same order.
  thrust::stable_sort_by_key(thrust_on(st), key, key + n, order);
}

void add_scaled(Stream st, std::size_t n, float scale, const float* x, float* acc) {
  EVOPLAST_LAUNCH(add_scaled_kernel, blocks_for(n), kThreads, 0, st, n, scale, x, acc);
}

}  // namespace evoplast::kernels::cuda
