// Dense family: y = x·Wᵀ + b for each net of the population.
#pragma once
#include "kernels/common.hpp"

namespace evoplast::kernels::cpu {

template <typename T>
void dense_forward(const DenseShape& s,
                   const T* x,  // shared_input ? (N, In) : (P, N, In)
                   const T* w,  // (P, Out, In)
                   const T* b,  // (P, Out)
                   T* y);       // (P, N, Out), overwritten

// dw, db overwritten; dx may be null (and must be when the input is shared);
// dw and db may be null (only dx wanted); w is read only for dx.
template <typename T>
void dense_backward(const DenseShape& s,
                    const T* x,   // as in forward
                    const T* w,   // (P, Out, In)
                    const T* dy,  // (P, N, Out)
                    T* dx,        // (P, N, In) or null, overwritten
                    T* dw,        // (P, Out, In), overwritten
                    T* db);       // (P, Out), overwritten

}  // namespace evoplast::kernels::cpu
