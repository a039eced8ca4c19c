// Convolution family: valid, stride-1 2-D convolution over a population.
// Population-major: every tensor's leading dimension is the net p ∈ [0, P),
// except a shared input (the first layer), which all nets read.
#pragma once
#include "kernels/common.hpp"

namespace evoplast::kernels::cpu {

// y = conv(x, w) + b.
template <typename T>
void conv2d_forward(const ConvShape& s,
                    const T* x,  // shared_input ? (N, Cin, H, W) : (P, N, Cin, H, W)
                    const T* w,  // (P, Cout, Cin, K, K)
                    const T* b,  // (P, Cout)
                    T* y);       // (P, N, Cout, Ho, Wo), overwritten

// Gradients of a loss L given dy = ∂L/∂y. dw and db are overwritten (not
// accumulated). dx may be null (no gradient to the input: the first layer);
// it must be null when the input is shared. dw and db may be null (only dx
// wanted); w is read only for dx, so it may be null when dx is.
template <typename T>
void conv2d_backward(const ConvShape& s,
                     const T* x,   // as in forward
                     const T* w,   // (P, Cout, Cin, K, K)
                     const T* dy,  // (P, N, Cout, Ho, Wo)
                     T* dx,        // (P, N, Cin, H, W) or null, overwritten
                     T* dw,        // (P, Cout, Cin, K, K), overwritten
                     T* db);       // (P, Cout), overwritten

// Output channels [first, last) of one net.
struct ChannelRange {
  int first, last;
};

// conv2d_backward's dw and db for the channels each net reads: net p's
// outside rows[p] are written as 0 and not computed (a plastic layer's
// stacked [e; ŷ] whose rule reads one half, or neither).
template <typename T>
void conv2d_weight_grad_rows(const ConvShape& s,
                             const ChannelRange* rows,  // (P), host
                             const T* x,                // as in forward
                             const T* dy,               // (P, N, Cout, Ho, Wo)
                             T* dw,                     // (P, Cout, Cin, K, K), overwritten
                             T* db);                    // (P, Cout) or null, overwritten

}  // namespace evoplast::kernels::cpu
