// Pooling family: k×k max-pooling, stride k.
#pragma once
#include <cstdint>

#include "kernels/common.hpp"

namespace evoplast::kernels::cpu {

// argmax records, per output, the index within its H×W input plane of the
// maximum (the first one on ties), so the backward pass is a scatter.
template <typename T>
void maxpool2d_forward(const PoolShape& s,
                       const T* x,              // (planes, H, W)
                       T* y,                    // (planes, Ho, Wo), overwritten
                       std::int32_t* argmax);   // (planes, Ho, Wo), overwritten

template <typename T>
void maxpool2d_backward(const PoolShape& s,
                        const T* dy,                  // (planes, Ho, Wo)
                        const std::int32_t* argmax,   // (planes, Ho, Wo)
                        T* dx);                       // (planes, H, W), overwritten

}  // namespace evoplast::kernels::cpu
