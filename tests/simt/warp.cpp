// Warp collectives of the SIMT simulator (tensor-core mma, shuffles and
// votes): the lanes of a warp leave their fragments or values in the warp's
// slot, meet once at the warp's barrier, and each takes its own part of the
// result from every lane's (an mma's, made once for the warp by the first
// lane past the meeting).
//
// Each warp has two slots, used in turn: collective k of a block's warp uses
// slot k % 2. A lane that has read collective k's slot may run on to k + 1
// and write the other one while its warp-mates still read k's; it reaches
// k + 2, which writes k's slot again, only after all 32 lanes met at k + 1,
// so after each had read k's. (One slot needed a second meeting, after the
// reads, at every collective: a third of the simulator's time was switching.)
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "device.hpp"
#include "simt.hpp"

namespace simt {
namespace {

constexpr int kWarpSize = 32, kMaxWarps = 1024 / kWarpSize;

struct MmaSlot {
  std::uint32_t a[kWarpSize][4];
  std::uint32_t b[kWarpSize][2];
  float c[kWarpSize][4];
  float d[kWarpSize][4];
  bool done;  // the warp's D is in d: the first lane past the meeting made it for all
};
// A block runs on one host thread, so its warps' slots are that thread's.
thread_local MmaSlot t_mma[2][kMaxWarps];

// Which of its warp's two slots the calling lane's next collective uses.
unsigned slot_turn() { return warp_barriers_passed() % 2; }

unsigned linear_thread() {
  const Registers& r = regs;
  return r.thread_idx.x + r.block_dim.x * (r.thread_idx.y + r.block_dim.y * r.thread_idx.z);
}

// The value of a tf32 operand register: its top 19 bits.
float tf32_value(std::uint32_t bits) { return std::bit_cast<float>(bits & 0xFFFFE000u); }

// The tensor core's d = c + Σ_k a_k·b_k is not an fp32 sum rounded to
// nearest. Modelled on what Fasi, Higham, Mikaitis and Pranesh measured on
// V100, T4 and A100 ("Numerical behavior of NVIDIA tensor cores", PeerJ CS
// 2021): the products are exact, every addend (c too) is aligned to the
// largest one's exponent and cut toward zero to a fixed number of bits
// there, the cut addends are summed, and the sum is cut toward zero to fp32.
// Every cut is toward zero, so errors add up instead of cancelling, and small
// products beside a large accumulator lose most of their bits. An H200 showed
// it (2026-12-04): split TF32 with one accumulator chained through the 7 000
// products of a conv's weight gradient put 16 of its 288 weights more than
// 1.1e-3 off the CPU's (this model with 22 bits, run on such sums, puts 4 in
// 100 that far off; with the paper's 24 it errs a tenth as much, and an fp32
// sum, which this simulator had, puts none there);
// with 22, tf32's largest error in the dense-layer test is the H200's to six
// digits (2.48589e-4; 2.48559e-4 with 24). kTensorCoreBits is in simt.hpp.
float tensor_core_sum(float c, const double* products, int K) {
  double largest = std::fabs(double(c));
  bool finite = std::isfinite(c);
  for (int k = 0; k < K; ++k) {
    largest = std::max(largest, std::fabs(products[k]));
    finite = finite && std::isfinite(products[k]);
  }
  if (!finite || largest == 0) {  // NaN and ∞ go through as in any sum; zeros stay exact
    double sum = c;
    for (int k = 0; k < K; ++k) sum += products[k];
    return float(sum);
  }
  int exponent = 0;
  std::frexp(largest, &exponent);  // largest = f·2^exponent, f in [0.5, 1): its leading bit is 2^(exponent − 1)
  // The last of kTensorCoreBits bits from that leading bit: each cut addend is a multiple of unit below
  // 2^kTensorCoreBits units, so the sum of 17 is exact in a double.
  const double unit = std::ldexp(1.0, exponent - kTensorCoreBits);
  double sum = std::trunc(double(c) / unit) * unit;
  for (int k = 0; k < K; ++k) sum += std::trunc(products[k] / unit) * unit;
  float d = float(sum);
  if (std::fabs(double(d)) > std::fabs(sum)) d = std::nextafter(d, 0.0f);  // toward zero, not to nearest
  return d;
}

// Leaves this lane's fragments in its warp's slot, meets the warp, and
// returns the lane's four outputs. The first lane past the meeting builds the
// warp's A (16×K) and B (K×8) from the slot with `unpack` and makes every
// lane's outputs, each in the order a lane alone would sum them; the others
// read theirs (once a warp, not once a lane: the simulator's hottest loop).
template <int K, class Unpack>
void warp_mma(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
              std::source_location site, const Unpack& unpack) {
  const unsigned tid = linear_thread(), lane = tid % kWarpSize;
  MmaSlot& slot = t_mma[slot_turn()][tid / kWarpSize];
  std::memcpy(slot.a[lane], a, sizeof slot.a[lane]);
  std::memcpy(slot.b[lane], b, sizeof slot.b[lane]);
  std::memcpy(slot.c[lane], c, sizeof slot.c[lane]);
  slot.done = false;
  warp_barrier(site);
  if (!slot.done) {
    float A[16][K], B[K][8];
    for (int l = 0; l < kWarpSize; ++l) unpack(slot.a[l], slot.b[l], l / 4, l % 4, A, B);
    for (int l = 0; l < kWarpSize; ++l) {
      const int g = l / 4, t = l % 4;
      for (int i = 0; i < 4; ++i) {
        const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        double products[K];  // each exact: tf32 or bf16 operands have at most 11 significant bits
        for (int k = 0; k < K; ++k) products[k] = double(A[row][k]) * double(B[k][col]);
        slot.d[l][i] = tensor_core_sum(slot.c[l][i], products, K);
      }
    }
    slot.done = true;
  }
  std::memcpy(d, slot.d[lane], sizeof slot.d[lane]);  // d may alias c: c was copied before the meeting
}

// The value of one bf16 (the top half of a float).
float bf16_value(std::uint32_t half) { return std::bit_cast<float>((half & 0xFFFFu) << 16); }

// Each warp's lanes' shuffle operands or vote predicates, in two slots.
thread_local std::uint64_t t_lane_values[2][kMaxWarps][kWarpSize];

// A mask other than the full warp's fails the launch; the lanes still meet, so
// the block runs to its end.
void require_full_warp(std::uint32_t mask, const char* what, std::source_location site) {
  if (mask == 0xFFFFFFFFu) return;
  const char* kernel = device::running_kernel();
  const uint3 b = regs.block_idx, t = regs.thread_idx;
  device::fail_launch(fmt::format("kernel {}, block ({},{},{}), thread ({},{},{}): {} at {} with mask {:#010x}: only "
                                  "the full warp's (0xffffffff) is simulated",
                                  kernel ? kernel : "?", b.x, b.y, b.z, t.x, t.y, t.z, what,
                                  device::site_name(site), mask));
}

// Leaves this lane's value in its warp's slot, meets the warp, and returns
// every lane's values (valid until this lane's next collective).
const std::uint64_t* leave_and_meet(std::uint64_t value, std::source_location site) {
  const unsigned tid = linear_thread();
  std::uint64_t* slot = t_lane_values[slot_turn()][tid / kWarpSize];
  slot[tid % kWarpSize] = value;
  warp_barrier(site);
  return slot;
}

}  // namespace

unsigned lane_id() { return linear_thread() % kWarpSize; }

std::uint64_t warp_shuffle(std::uint32_t mask, std::uint64_t value, unsigned src, const char* what,
                           std::source_location site) {
  require_full_warp(mask, what, site);
  return leave_and_meet(value, site)[src % kWarpSize];
}

std::uint32_t warp_ballot(std::uint32_t mask, bool predicate, const char* what, std::source_location site) {
  require_full_warp(mask, what, site);
  const std::uint64_t* lanes = leave_and_meet(predicate, site);
  std::uint32_t bits = 0;
  for (int l = 0; l < kWarpSize; ++l) bits |= std::uint32_t(lanes[l] != 0) << l;
  return bits;
}

void mma_m16n8k8_tf32(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
                      std::source_location site) {
  warp_mma<8>(d, a, b, c, site, [](const std::uint32_t* ra, const std::uint32_t* rb, int g, int t, float (&A)[16][8],
                                   float (&B)[8][8]) {
    A[g][t] = tf32_value(ra[0]);
    A[g + 8][t] = tf32_value(ra[1]);
    A[g][t + 4] = tf32_value(ra[2]);
    A[g + 8][t + 4] = tf32_value(ra[3]);
    B[t][g] = tf32_value(rb[0]);
    B[t + 4][g] = tf32_value(rb[1]);
  });
}

void mma_m16n8k16_bf16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
                       std::source_location site) {
  warp_mma<16>(d, a, b, c, site, [](const std::uint32_t* ra, const std::uint32_t* rb, int g, int t,
                                    float (&A)[16][16], float (&B)[16][8]) {
    for (int h = 0; h < 2; ++h) {  // h: which half of the register (column or row 2t + h)
      const int shift = 16 * h;
      A[g][2 * t + h] = bf16_value(ra[0] >> shift);
      A[g + 8][2 * t + h] = bf16_value(ra[1] >> shift);
      A[g][2 * t + 8 + h] = bf16_value(ra[2] >> shift);
      A[g + 8][2 * t + 8 + h] = bf16_value(ra[3] >> shift);
      B[2 * t + h][g] = bf16_value(rb[0] >> shift);
      B[2 * t + 8 + h][g] = bf16_value(rb[1] >> shift);
    }
  });
}

}  // namespace simt
