// The roundings of a GPU's tensor-core operands, as host C++: f32 → tf32
// (cvt.rna.tf32.f32: to nearest, ties away from zero, the low 13 bits
// zero) and f32 → bf16 (cvt.rn.bf16x2.f32's halves: to nearest, ties to
// even). The SIMT simulator's tensor-core conversions (kernels/mma.cuh) and
// the CPU backend's emulation of those precisions (kernels/gemm_cpu.cpp)
// both round through these, so the two round alike. C++20 (std::bit_cast):
// not for nvcc's C++17, which has the PTX instructions themselves.
#pragma once
#include <bit>
#include <cstdint>

namespace evoplast::kernels {

// How a GEMM's operands are rounded before they are multiplied: not at all
// (fp32), or as a tensor core's tf32 or bf16 operands are. The CPU's
// gemm<float> takes it to emulate those precisions (kernels/gemm_cpu.hpp).
enum class OperandRounding { none, tf32, bf16 };

// The tf32 bit pattern of x (an mma operand register: low 13 bits zero).
constexpr std::uint32_t tf32_bits(float x) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  if ((bits & 0x7F800000u) != 0x7F800000u) bits += 0x1000u;  // finite: half an ulp up in magnitude
  return bits & 0xFFFFE000u;
}

// The bf16 bit pattern of x (the high half of its f32 pattern, rounded).
// NaN stays NaN; a finite value past bf16's largest rounds to ∞.
constexpr std::uint16_t bf16_bits(float x) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FFFu;  // NaN
  return std::uint16_t((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// x as the operand a tensor core multiplies: the f32 of its tf32 or bf16 rounding.
constexpr float tf32_rounded(float x) { return std::bit_cast<float>(tf32_bits(x)); }
constexpr float bf16_rounded(float x) { return std::bit_cast<float>(std::uint32_t{bf16_bits(x)} << 16); }

// x as an operand rounded as r says (none: x itself).
constexpr float operand_rounded(OperandRounding r, float x) {
  return r == OperandRounding::tf32 ? tf32_rounded(x) : r == OperandRounding::bf16 ? bf16_rounded(x) : x;
}

}  // namespace evoplast::kernels
