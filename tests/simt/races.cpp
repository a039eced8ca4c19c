// The race checker of the SIMT simulator's second program, test_simt_races.
// There g++ instruments every load and store of the CUDA sources as it does
// for ThreadSanitizer (-fsanitize=thread), and the calls come here instead of
// to libtsan (whose fiber contexts cost about 8 ms each: docs/design.md). In the
// first program (test_simt, under ASan) nothing calls them.
//
// Why: between barriers a fiber runs uninterrupted, so where two threads do
// `x += v` to one word both additions land here, and on a GPU one may be lost;
// and the blocks of a launch, which a GPU runs at once, run one after another.
// Changing the order of threads and blocks shows a race whose result depends
// on the order; these do not.
//
// How: each 4-byte word of device memory and of shared memory has a shadow
// that says which threads (block, thread, barrier phase) last wrote which of
// its bytes, and which last read them, in which launch (for shared memory:
// which run of a block). A read of a byte another thread wrote in the same
// launch, or a write of one another thread read or wrote, is a race unless a
// __syncthreads lies between them: never for threads of two blocks, whenever
// the phase has changed for threads of one block. So the order the threads
// ran in does not matter. (Blocks that hand data on within a launch, by a
// __threadfence and a counter whose last block reads the others' partial
// sums, are reported too: no kernel here does; one that does needs the
// checker taught the fence.)
// Two writers and two readers are kept per word, the last two threads: so a
// write by a word's last reader still meets the reader before it (every
// thread reads a flag, then one overwrites it with no barrier: in reverse
// order the writer reads last), and a read of byte 0 still meets its writer
// after another thread wrote byte 1. Reads never race with reads, nor atomics
// with atomics, so a block's threads can push every other block's accesses
// out of those two; one more reader and one more writer are kept for that:
// the latest access pushed out of them by a block other than the one that
// made it. Blocks run one at a time, so when a block writes a word that the
// blocks before it read, one of their reads is still kept (every thread of
// every block reads a word, then the last block's thread 0 overwrites it
// after a barrier: that block's own reads, ordered before the write, came
// after the others'). Within a block two suffice: its threads pass each
// barrier together, so what the two latest accesses pushed out was of the
// same phase as they, or earlier.
// The first race of a launch fails it (the simulator's error for a broken
// rule), in one line naming both threads and the word.
//
// An atomic (atomics.cpp) is kept as a write marked atomic: it races with
// another thread's plain read or write, and not with its atomics.
//
// And, before any of that, an access's alignment: a float2 or a float4 at an
// address not 8 or 16 bytes aligned fails the launch on a GPU (x86 loads it
// gladly), so it fails the simulator's launch too, named as a race is.
//
// Not checked: pinned host memory (no kernel reads it); a race on one byte of
// a word with a thread whose access other threads' accesses to the word's
// other bytes pushed out of the shadow.
#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "device.hpp"

namespace simt::device {
namespace {

// A thread's access to a word.
struct Access {
  std::uint32_t epoch = 0;  // the launch (device memory) or block run (shared memory); 0: none
  std::uint32_t block = 0;
  std::uint32_t phase = 0;
  std::uint16_t thread = 0;
  std::uint8_t bytes = 0;  // which of the word's bytes (bit k: byte k)
  bool atomic = false;     // an atomic read-modify-write (kept among the writes)
};
// A word's writes (atomics among them) and reads: [0] and [1] the last two, by two threads ([0] the latest);
// [2] the latest pushed out of those two by a block other than the one that made it.
struct Shadow {
  Access write[3], read[3];
};

// The shadow of each device allocation a kernel has touched: a word each.
std::unordered_map<const char*, std::vector<Shadow>>& device_shadows() {
  static auto* shadows = new std::unordered_map<const char*, std::vector<Shadow>>;
  return *shadows;
}

// The memory an access lands in: its first byte, its size and its shadow.
struct Region {
  const char* base = nullptr;
  std::size_t bytes = 0;
  Shadow* shadow = nullptr;
};

// The allocations touched last (a kernel reads and writes a few, over and over).
constexpr int kRecent = 4;
Region recent[kRecent];
unsigned next_recent = 0;

bool inside(const char* p, const char* base, std::size_t bytes) {
  return std::uintptr_t(p) - std::uintptr_t(base) < bytes;
}

// The region of device memory holding p (null shadow if none).
Region device_region(const char* p) {
  for (const Region& r : recent)
    if (inside(p, r.base, r.bytes)) return r;
  const auto [base, bytes] = allocation_of(p);
  if (!base) return {};
  std::vector<Shadow>& shadow = device_shadows()[base];
  if (shadow.empty()) shadow.resize((bytes + 3) / 4);
  Region r{base, bytes, shadow.data()};
  recent[next_recent++ % kRecent] = r;
  return r;
}

// The TLS block of the host thread that runs the kernels (one drives the
// device), where its copies of the __shared__ variables lie, and their shadow.
Region shared_region() {
  static Region r = [] {
    const auto [base, bytes] = tls_block_range();
    return Region{base, bytes, new Shadow[(bytes + 3) / 4]};
  }();
  return r;
}

std::string triple(std::uint32_t linear, dim3 extent) {
  return "(" + std::to_string(linear % extent.x) + "," + std::to_string(linear / extent.x % extent.y) + "," +
         std::to_string(linear / (extent.x * extent.y)) + ")";
}

// What an access does to a word.
enum class Kind { read, write, atomic };

// Where byte p of region r lies, for a message: in which __shared__
// variable, or how far into which device allocation.
std::string where(const char* p, const Region& r, bool shared) {
  if (shared) {
    std::size_t offset = 0;
    const std::string name = shared_variable_at(p, &offset);
    return "byte " + std::to_string(offset) + " of __shared__ " + (name.empty() ? "?" : name);
  }
  return "byte " + std::to_string(p - r.base) + " of a device allocation of " + std::to_string(r.bytes) + " bytes";
}

// The running thread's kernel, block and thread, to begin a message.
std::string running_thread() {
  return "kernel " + std::string(running_kernel() ? running_kernel() : "?") + ", block " +
         triple(place.block, regs.grid_dim) + ", thread " + triple(place.thread, regs.block_dim);
}

const char* verb(Kind kind) {
  return kind == Kind::read ? "reads " : kind == Kind::write ? "writes " : "atomically updates ";
}

// The race: the running thread's access (`kind`) of byte p, which `other` made (`did`: "read" or "wrote").
void report(const char* p, const Region& r, bool shared, const Access& other, const char* did, Kind kind) {
  if (other.atomic) did = "updated atomically";
  const std::string by = other.block == place.block
                             ? "thread " + triple(other.thread, regs.block_dim) + " of the same block " +
                                   std::string(did) + ", with no __syncthreads between them"
                             : "thread " + triple(other.thread, regs.block_dim) + " of block " +
                                   triple(other.block, regs.grid_dim) + " " + did + " in the same launch";
  fail_launch(running_thread() + " " + verb(kind) + where(p, r, shared) + ", which " + by +
              ": a data race (on a GPU the two run at once: a read sees either value, one of two updates is lost)");
}

// One access of n bytes at p by the running GPU thread, made at `pc` (null:
// an atomic); `range`: n bytes moved by several accesses (a memcpy).
void check(const void* address, std::size_t n, Kind kind, const void* pc, bool range = false) {
  if (!place.active || launch_failing() || n == 0) return;
  const char* p = static_cast<const char*>(address);
  if (inside(p, place.stack, place.stack_bytes)) return;  // its own locals
  Region r = shared_region();
  const bool shared = inside(p, r.base, r.bytes);
  if (!shared) r = device_region(p);
  if (!r.shadow) return;  // host memory
  // A GPU loads and stores 2, 4, 8 or 16 bytes (a float2, a float4) at once
  // only from an address that many bytes aligned, and fails the launch
  // otherwise (cudaErrorMisalignedAddress); x86 does not mind, so this says it.
  if (!range && std::uintptr_t(p) % n != 0)
    return fail_launch(running_thread() + " " + verb(kind) + std::to_string(n) + " bytes at once at " +
                       where(p, r, shared) + ", not " + std::to_string(n) +
                       "-byte aligned: a misaligned address (on a GPU the launch fails)");
  if (kind != Kind::atomic) profile_access(pc, p, n, shared, kind == Kind::write);
  const std::uint32_t epoch = shared ? place.block_run : place.launch;
  const std::size_t from = std::size_t(p - r.base), to = std::min(from + n, r.bytes);
  const auto mine = [](const Access& a) { return a.block == place.block && a.thread == place.thread; };
  for (std::size_t w = from / 4; w * 4 < to; ++w) {
    const std::size_t lo = std::max(from, w * 4), hi = std::min(to, w * 4 + 4);
    const auto mask = std::uint8_t(((1u << (hi - lo)) - 1) << (lo - w * 4));
    // Another thread's access to these bytes in this launch, with no
    // __syncthreads since (two atomics never race).
    const auto races = [&](const Access& a) {
      const bool ordered = a.block == place.block && a.phase != place.phase;
      const bool both_atomic = a.atomic && kind == Kind::atomic;
      return a.epoch == epoch && (a.bytes & mask) && !mine(a) && !ordered && !both_atomic;
    };
    Shadow& s = r.shadow[w];
    for (const Access& a : s.write)
      if (races(a)) return report(r.base + lo, r, shared, a, "wrote", kind);
    if (kind != Kind::read)
      for (const Access& a : s.read)
        if (races(a)) return report(r.base + lo, r, shared, a, "read", kind);
    const bool atomic = kind == Kind::atomic;
    Access* last = kind == Kind::read ? s.read : s.write;
    if (last[0].epoch == epoch && mine(last[0]) && last[0].phase == place.phase && last[0].atomic == atomic) {
      last[0].bytes |= mask;
      continue;
    }
    // Another thread's access moves back a slot, and so does my own of an
    // earlier phase if it holds bytes this one does not (other blocks may
    // still race with those); else this one stands for it.
    if (last[0].epoch == epoch && (!mine(last[0]) || (last[0].bytes & ~mask))) {
      if (last[1].epoch == epoch && last[1].block != place.block) last[2] = last[1];
      last[1] = last[0];
    }
    last[0] = {epoch, place.block, place.phase, std::uint16_t(place.thread), mask, atomic};
  }
}

}  // namespace

void note_atomic(const void* p, std::size_t n) { check(p, n, Kind::atomic, nullptr); }

void forget_shadow(const void* base) {
  device_shadows().erase(static_cast<const char*>(base));
  for (Region& r : recent)
    if (r.base == base) r = {};
}

}  // namespace simt::device

namespace {
using simt::device::check;
using simt::device::Kind;
}  // namespace

// What g++'s -fsanitize=thread instrumentation calls (the subset the CUDA sources need); the
// return address is the place in the kernel that made the access (for the memory profile).
extern "C" {
void __tsan_init() {}
void __tsan_read1(void* p) { check(p, 1, Kind::read, __builtin_return_address(0)); }
void __tsan_read2(void* p) { check(p, 2, Kind::read, __builtin_return_address(0)); }
void __tsan_read4(void* p) { check(p, 4, Kind::read, __builtin_return_address(0)); }
void __tsan_read8(void* p) { check(p, 8, Kind::read, __builtin_return_address(0)); }
void __tsan_read16(void* p) { check(p, 16, Kind::read, __builtin_return_address(0)); }
void __tsan_write1(void* p) { check(p, 1, Kind::write, __builtin_return_address(0)); }
void __tsan_write2(void* p) { check(p, 2, Kind::write, __builtin_return_address(0)); }
void __tsan_write4(void* p) { check(p, 4, Kind::write, __builtin_return_address(0)); }
void __tsan_write8(void* p) { check(p, 8, Kind::write, __builtin_return_address(0)); }
void __tsan_write16(void* p) { check(p, 16, Kind::write, __builtin_return_address(0)); }
void __tsan_read_range(void* p, unsigned long n) { check(p, n, Kind::read, __builtin_return_address(0), true); }
void __tsan_write_range(void* p, unsigned long n) { check(p, n, Kind::write, __builtin_return_address(0), true); }
void __tsan_vptr_update(void**, void*) {}
// A function-local static's guard (the only C++ atomic in the CUDA sources; CUDA's are in atomics.cpp).
char __tsan_atomic8_load(const volatile char* a, int) { return __atomic_load_n(a, __ATOMIC_ACQUIRE); }
}
