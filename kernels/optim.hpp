// Optimiser family: per-net learning rates, population-major parameters.
#pragma once
#include <cstddef>

namespace evoplast::kernels::cpu {

// w −= lr[p] · g for the per_net parameters of each net p.
template <typename T>
void sgd_step(int P, std::size_t per_net,
              const float* lr,   // (P), host
              T* w,              // (P, per_net)
              const T* g);       // (P, per_net)

// Adadelta exactly as torch.optim.Adadelta (no weight decay):
//   v ← ρ·v + (1−ρ)·g²;  δ = √(u + ε) / √(v + ε) · g;  u ← ρ·u + (1−ρ)·δ²;  w ← w − lr·δ
template <typename T>
void adadelta_step(int P, std::size_t per_net,
                   const float* lr,   // (P), host
                   float rho, float eps,
                   T* w,              // (P, per_net)
                   const T* g,        // (P, per_net)
                   T* sq_avg,         // v: (P, per_net)
                   T* acc_delta);     // u: (P, per_net)

}  // namespace evoplast::kernels::cpu
