// Activation family: ReLU and (inverted) dropout. Both may run in place.
#pragma once
#include <cstdint>

#include "kernels/common.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void relu_forward(std::size_t n, const T* x, T* y);  // x, y: (n); y may alias x

// dx = dy where y > 0, else 0; dx may alias dy.
template <typename T>
void relu_backward(std::size_t n, const T* y, const T* dy, T* dx);

// Inverted dropout for P nets of `per_net` elements each; see DropoutParams.

template <typename T>
void dropout_forward(int P, std::size_t per_net, const DropoutParams& d,
                     const T* x,  // (P, per_net)
                     T* y);       // (P, per_net); may alias x

template <typename T>
void dropout_backward(int P, std::size_t per_net, const DropoutParams& d,
                      const T* dy,  // (P, per_net)
                      T* dx);       // (P, per_net); may alias dy

}  // namespace evoplast::kernels::cpu
