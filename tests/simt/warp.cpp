// Warp collectives of the SIMT simulator: the lanes of a warp leave their
// fragments in the warp's slot, meet at the warp's barrier, each computes its
// own part of the result from every lane's fragments, and meet again before
// the slot is reused.
#include <bit>
#include <cstring>

#include "simt.hpp"

namespace simt {
namespace {

constexpr int kWarpSize = 32, kMaxWarps = 1024 / kWarpSize;

struct MmaSlot {
  std::uint32_t a[kWarpSize][4];
  std::uint32_t b[kWarpSize][2];
};
// A block runs on one host thread, so its warps' slots are that thread's.
thread_local MmaSlot t_mma[kMaxWarps];

unsigned linear_thread() {
  const Registers& r = regs;
  return r.thread_idx.x + r.block_dim.x * (r.thread_idx.y + r.block_dim.y * r.thread_idx.z);
}

// The value of a tf32 operand register: its top 19 bits.
float tf32_value(std::uint32_t bits) { return std::bit_cast<float>(bits & 0xFFFFE000u); }

}  // namespace

void mma_m16n8k8_tf32(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
                      std::source_location site) {
  const unsigned tid = linear_thread(), lane = tid % kWarpSize;
  MmaSlot& slot = t_mma[tid / kWarpSize];
  std::memcpy(slot.a[lane], a, sizeof slot.a[lane]);
  std::memcpy(slot.b[lane], b, sizeof slot.b[lane]);
  const float c_in[4] = {c[0], c[1], c[2], c[3]};  // d may alias c
  warp_barrier(site, 1);
  // The warp's A (16×8) and B (8×8) from every lane's fragments.
  float A[16][8], B[8][8];
  for (int l = 0; l < kWarpSize; ++l) {
    const int g = l / 4, t = l % 4;
    A[g][t] = tf32_value(slot.a[l][0]);
    A[g + 8][t] = tf32_value(slot.a[l][1]);
    A[g][t + 4] = tf32_value(slot.a[l][2]);
    A[g + 8][t + 4] = tf32_value(slot.a[l][3]);
    B[t][g] = tf32_value(slot.b[l][0]);
    B[t + 4][g] = tf32_value(slot.b[l][1]);
  }
  const int g = int(lane) / 4, t = int(lane) % 4;
  for (int i = 0; i < 4; ++i) {
    const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
    float sum = c_in[i];
    for (int k = 0; k < 8; ++k) sum += A[row][k] * B[k][col];
    d[i] = sum;
  }
  warp_barrier(site, 2);  // every lane has read the slot before any writes it again
}

}  // namespace simt
