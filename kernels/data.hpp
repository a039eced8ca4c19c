// Data family: minibatch assembly from data sets resident in the backend's
// memory. Images of every data set and split are one uint8 array; a sample
// names its image and its task, and the task's tables say how to see it
// (normalisation, pixel permutation, label map, allowed outputs).
#pragma once
#include <cstdint>

#include "kernels/common.hpp"

namespace evoplast::kernels {

struct GatherShape {
  int N = 1;        // samples in the batch
  int pixels = 1;   // per image
  int classes = 10; // outputs of the network
};

}  // namespace evoplast::kernels

namespace evoplast::kernels::cpu {

// With m = order ? order[n] : n, t = task[m], img = index[m]:
// x[n] = (images[img] / 255 − mean[t]) / std[t], permuted by perm[t]
// (out pixel i = in pixel perm[t][i]); y[n] = label_map[t][labels[img]];
// allowed[n] = head[t].
void gather_batch(const GatherShape& s,
                  const std::uint8_t* images,     // (images, pixels)
                  const std::uint8_t* labels,     // (images)
                  const std::int32_t* order,      // (N) into index/task, or null: identity
                  const std::int32_t* index,      // (M) global image index of each sample
                  const std::int32_t* task,       // (M)
                  const float* mean,              // (T)
                  const float* stddev,            // (T)
                  const std::uint16_t* perm,      // (T, pixels)
                  const std::int8_t* label_map,   // (T, 10)
                  const std::uint8_t* head,       // (T, classes)
                  float* x,                       // (N, pixels), overwritten
                  std::int32_t* y,                // (N), overwritten
                  std::uint8_t* allowed);         // (N, classes), overwritten

// acc[i] += scale · x[i], i < n
void add_scaled(std::size_t n, float scale, const float* x, float* acc);

// order (n) = the permutation of [0, n) that sorts mix64(seed ^ mix64(i))
// (stable): a shuffle that the CPU and the GPU draw identically.
void shuffle_order(std::size_t n, std::uint64_t seed, std::int32_t* order);

}  // namespace evoplast::kernels::cpu
