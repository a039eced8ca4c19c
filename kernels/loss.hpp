// Loss family: log-softmax + negative log-likelihood, and accuracy counts.
#pragma once
#include <cstdint>

#include "kernels/common.hpp"

namespace evoplast::kernels::cpu {

// loss[p] = −(1/N) Σ_n logp[p, n, label[n]]; logp is kept for the backward pass.
template <typename T>
void log_softmax_nll_forward(int P, int N, int C,
                             const T* logits,               // (P, N, C)
                             const std::int32_t* labels,    // (N), in [0, C)
                             T* logp,                       // (P, N, C), overwritten
                             T* loss);                      // (P), overwritten

// dlogits = (softmax − onehot(label)) / N: the gradient of the mean loss.
template <typename T>
void log_softmax_nll_backward(int P, int N, int C,
                              const T* logp,                // (P, N, C)
                              const std::int32_t* labels,   // (N)
                              T* dlogits);                  // (P, N, C), overwritten

// correct[p] = #{n : argmax_c scores[p, n, c] == label[n]} (first maximum on ties).
template <typename T>
void count_correct(int P, int N, int C,
                   const T* scores,               // (P, N, C)
                   const std::int32_t* labels,    // (N)
                   std::int64_t* correct);        // (P), overwritten

}  // namespace evoplast::kernels::cpu
