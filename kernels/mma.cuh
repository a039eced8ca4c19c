// Tensor cores behind one wrapper: the warp-wide mma.sync m16n8k8 with TF32
// operands and m16n8k16 with bf16 operands, both with fp32 accumulators, and
// the conversions into TF32 and bf16. Under nvcc they are the PTX
// instructions; in the SIMT simulator (EVOPLAST_SIMT) the same fragments go
// through simt::mma_m16n8k8_tf32 and simt::mma_m16n8k16_bf16, which follow the
// PTX ISA's fragment layouts, so kernels built on them are checked there
// against the CPU.
//
// TF32 fragments (g = lane / 4, t = lane % 4; A is 16×8 row-major, B is 8×8, C/D 16×8):
//   a[0..3] = A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4]
//   b[0..1] = B[t][g], B[t+4][g]
//   c, d[0..3] = C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]
// bf16 fragments (A is 16×16, B 16×8; two values per register, the lower
// index in the low half):
//   a[0..3] = A[g][2t..2t+1], A[g+8][2t..2t+1], A[g][2t+8..2t+9], A[g+8][2t+8..2t+9]
//   b[0..1] = B[2t..2t+1][g], B[2t+8..2t+9][g]
//   c, d as for TF32.
// Every lane of the warp must call them together (they are warp collectives).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda.hpp"

#if defined(EVOPLAST_SIMT)
#include <bit>
#include <source_location>

#include "kernels/rounding.hpp"
#endif

namespace evoplast::kernels::cuda {

// f32 → tf32, rounded to nearest with ties away from zero (cvt.rna.tf32.f32):
// the bit pattern an mma operand register holds (low 13 bits zero).
__device__ __forceinline__ std::uint32_t to_tf32(float x) {
#if defined(EVOPLAST_SIMT)
  return tf32_bits(x);
#else
  std::uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#endif
}

// The value a tf32 bit pattern stands for.
__device__ __forceinline__ float tf32_value(std::uint32_t bits) {
#if defined(EVOPLAST_SIMT)
  return std::bit_cast<float>(bits);
#else
  return __uint_as_float(bits);
#endif
}

// Two f32 → one register of two bf16, rounded to nearest even
// (cvt.rn.bf16x2.f32); lo in the low half. NaN stays NaN.
__device__ __forceinline__ std::uint32_t to_bf16x2(float lo, float hi) {
#if defined(EVOPLAST_SIMT)
  return std::uint32_t{bf16_bits(lo)} | std::uint32_t{bf16_bits(hi)} << 16;
#else
  std::uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));  // the first source goes high
  return r;
#endif
}

// d = A·B + c over the warp (d may be c), A·B at bf16 (k = 16).
#if defined(EVOPLAST_SIMT)
inline void mma_bf16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
                     std::source_location site = std::source_location::current()) {
  ::simt::mma_m16n8k16_bf16(d, a, b, c, site);
}
#else
__device__ __forceinline__ void mma_bf16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2],
                                         const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}
#endif

// d = A·B + c over the warp (d may be c), A·B at TF32 (k = 8).
#if defined(EVOPLAST_SIMT)
inline void mma_tf32(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
                     std::source_location site = std::source_location::current()) {
  ::simt::mma_m16n8k8_tf32(d, a, b, c, site);
}
#else
__device__ __forceinline__ void mma_tf32(float d[4], const std::uint32_t a[4], const std::uint32_t b[2],
                                         const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
}
#endif

// A lane's TF32 fragment of n fp32 values: big, each rounded to TF32, and
// in split TF32 (kSplit) small, what the rounding left, rounded again (x =
// big + small; the remainder is below 2^-21 of |x|). Made once per fragment
// for every mma that reads it: made per mma (an A fragment is read by 4,
// a B by 2), the conversions were a fifth of tf32's loop, 96 a slice.
template <bool kSplit, int n>
struct Tf32Fragment {
  std::uint32_t big[n], small[kSplit ? n : 1];
  __device__ explicit Tf32Fragment(const float (&x)[n]) {
#pragma unroll
    for (int q = 0; q < n; ++q) {
      big[q] = to_tf32(x[q]);
      if constexpr (kSplit) small[q] = to_tf32(x[q] - tf32_value(big[q]));
    }
  }
};

// acc += A·B at TF32 (one mma), or at about fp32 accuracy with three (split
// TF32: A·B ≈ As·Bb + Ab·Bs + Ab·Bb, the small products first; the dropped
// As·Bs and the splits' remainders are below 2^-21 of |A||B|).
// Split TF32 sums its three mmas into a fresh fragment and adds that to acc
// by an fp32 add (rounded to nearest): the tensor core aligns every addend to
// the largest and cuts toward zero, so with acc chained through the mmas the
// small products lost their bits beside a large acc and the cuts added up (an
// H200, 2026-12-04: 7 000 products of a conv's weight gradient 1.3e-3 off the
// CPU, above the fp32-level promise).
template <bool kSplit>
__device__ __forceinline__ void mma_tf32_fragments(float acc[4], const Tf32Fragment<kSplit, 4>& a,
                                                   const Tf32Fragment<kSplit, 2>& b) {
  if constexpr (kSplit) {
    float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma_tf32(part, a.small, b.big, part);
    mma_tf32(part, a.big, b.small, part);
    mma_tf32(part, a.big, b.big, part);
#pragma unroll
    for (int q = 0; q < 4; ++q) acc[q] += part[q];
  } else {
    mma_tf32(acc, a.big, b.big, acc);
  }
}

}  // namespace evoplast::kernels::cuda
