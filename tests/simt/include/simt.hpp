// The SIMT simulator: g++ compiles the unchanged kernels/*_cuda.cu and the
// CUDA backend against this header (through the cuda_runtime.h and
// cublas_v2.h beside it), so every kernel runs on the CPU in CI.
//
// The model, and what it checks:
// - a launch is queued on one device queue (stream order, asynchronous like a
//   GPU) and runs at the next synchronising call;
// - each block runs on one host thread, each GPU thread of it as a fiber
//   (Boost.Context); __syncthreads is a real barrier: every fiber runs to it
//   before any passes, and one that is not reached by every thread of the
//   block (or reached at different places) is an error naming the kernel.
//   A kernel whose first launch reached no barrier runs its later launches
//   without fibers (the same execution, minus the switches; a barrier reached
//   there after all is an error; EVOPLAST_SIMT_FIBERS=always turns this off);
// - a warp collective (tensor-core mma, a shuffle or a vote over the full
//   warp) is a barrier of the warp's 32 lanes:
//   every lane must meet the same one (else an error naming the kernel and
//   the warp), and the warp then runs on at once, ahead of the other warps,
//   so a __syncthreads missing between warps shows;
// - between barriers the fibers run in the order EVOPLAST_SIMT_ORDER names
//   (forward, reverse or shuffle), and so do the blocks of a grid, so a
//   missing barrier or a race (between threads, or between blocks of one
//   launch) changes the result in one of the orders; every launch shuffles
//   from EVOPLAST_SIMT_SEED (default 12345), so a shuffled failure repeats
//   under its seed and other seeds try other orders;
// - __shared__ variables are per block (thread_local to the host thread
//   that runs the block), and filled with 0xFF bytes before every block, as
//   device memory is: a read of shared memory no thread of the block wrote
//   sees NaN (or −1), not what an earlier block or kernel left there (they
//   are found in the test program's own symbol table: the static
//   thread_locals of functions in evoplast::kernels::cuda, where every kernel
//   lives; shared_memory.cpp); each starts on its own 64 KiB boundary, and
//   the bytes around it that hold nothing are poisoned for AddressSanitizer,
//   so a kernel reaching past a shared array (through a pointer, where UBSan's
//   bounds check does not see) fails with a line naming the kernel, the
//   thread and the variable;
// - launch limits are an H100's: ≤ 1 024 threads per block, grid y and z
//   ≤ 65 535, dynamic shared memory ≤ 48 KiB unless opted in;
// - a local variable not initialised starts as 0xFE bytes (floats −1.7e38;
//   -ftrivial-auto-var-init=pattern), as a GPU thread's registers hold garbage;
// - device allocations are filled with 0xFF bytes (NaN floats, −1 integers)
//   so reads of unwritten memory show; every pointer argument of a launch
//   must lie in a live device allocation (a host pointer is an error);
// - an execution error is sticky, as on a GPU: every later call returns it;
// - in the second program, test_simt_races, every load and store a kernel
//   makes goes to the race checker (races.cpp): a word that two threads
//   touch with no __syncthreads between them, one of them writing (two
//   blocks never have one between them), fails the launch in any order;
//   atomics (below) race with plain accesses, not with each other.
//
// threadIdx, blockIdx, blockDim and gridDim are members of a thread_local
// (regs below), read through calls (thread_index() and the others: see
// there why).
#pragma once
#define EVOPLAST_SIMT 1

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
// CUDA's vector types, 8- and 16-byte aligned as there (UBSan checks the alignment of
// every load through it).
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

struct CUstream_st;
using cudaStream_t = CUstream_st*;

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906,
  cudaErrorGraphExecUpdateFailure = 910,
};
using cudaError_t = cudaError;

namespace simt {

// The built-in variables of the GPU thread now running (set by the scheduler).
struct Registers {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
extern thread_local Registers regs;
// What threadIdx, blockIdx, blockDim and gridDim read: regs, through calls
// compiled apart from the kernels (scheduler.cpp). Read in place, GCC 12's
// UBSan null check of the thread_local, after a call not inlined in the
// same loop (a barrier, a fiber switch), reused stale flags and reported
// "member access within null pointer of type 'struct Registers'" though
// the address is not null (seen in the objdump of a grid-stride loop, and
// of a tile loop reading threadIdx after its barrier).
uint3 thread_index();
uint3 block_index();
dim3 block_dims();
dim3 grid_dims();

// One GPU thread's run of a kernel: the kernel called with its arguments.
using ThreadBody = std::function<void()>;

// Queues a launch (after checking its configuration; a bad one is the
// launch's error, as cudaGetLastError reports it).
void launch_body(const char* kernel, const void* fn, dim3 grid, dim3 block, std::size_t smem,
                 cudaStream_t stream, ThreadBody body);
// A pointer argument of a launch: null, or inside a live device allocation.
bool device_pointer_ok(const char* kernel, int index, const void* p);
// Runs everything queued so far (what a synchronising call does).
void drain();
// The barrier; the site names it in errors.
void barrier(std::source_location site);
// The barrier of the calling thread's warp (threads 32w…32w + 31 of the block
// in linear order): a warp collective. Every lane must reach the same one, in
// a full warp of 32; anything else is an error naming the kernel and the warp.
void warp_barrier(std::source_location site);
// How many warp barriers the calling thread has passed in this block: the
// same number for every lane of its warp (they pass each one together).
unsigned warp_barriers_passed();

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 over the calling warp:
// D (16×8) = A (16×8) · B (8×8) + C, each lane holding its fragments in the
// PTX ISA's layout (g = lane / 4, t = lane % 4):
//   a[0..3]: A[g][t], A[g+8][t], A[g][t+4], A[g+8][t+4]   (tf32 bit patterns)
//   b[0..1]: B[t][g], B[t+4][g]                            (tf32 bit patterns)
//   c, d[0..3]: C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]
// Only the tf32 bits of a and b count (the low 13 of each are ignored, as the
// tensor core ignores them); products are exact, and summed with C as the
// tensor core sums: each addend cut toward zero to kTensorCoreBits bits below
// the largest one's leading bit, the cut sum cut toward zero to fp32
// (tests/simt/warp.cpp says why).
constexpr int kTensorCoreBits = 22;
void mma_m16n8k8_tf32(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
                      std::source_location site = std::source_location::current());
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D (16×8) = A (16×16) ·
// B (16×8) + C, two bf16 per register (the lower index in the low half):
//   a[0..3]: A[g][2t..2t+1], A[g+8][2t..2t+1], A[g][2t+8..2t+9], A[g+8][2t+8..2t+9]
//   b[0..1]: B[2t..2t+1][g], B[2t+8..2t+9][g]
//   c, d: as for m16n8k8. Products are exact and summed as for m16n8k8.
void mma_m16n8k16_bf16(float d[4], const std::uint32_t a[4], const std::uint32_t b[2], const float c[4],
                       std::source_location site = std::source_location::current());

// The calling thread's lane in its warp.
unsigned lane_id();
// A shuffle over the calling warp: every lane leaves its value, meets the
// warp, and gets the value lane src left. `what` names the intrinsic in errors.
// Only the full mask (0xffffffff) is simulated; another fails the launch,
// naming the kernel, the thread, the intrinsic and the mask.
std::uint64_t warp_shuffle(std::uint32_t mask, std::uint64_t value, unsigned src, const char* what,
                           std::source_location site);
// A vote over the calling warp: bit l of the result is lane l's predicate.
std::uint32_t warp_ballot(std::uint32_t mask, bool predicate, const char* what, std::source_location site);

// warp_shuffle of a 4- or 8-byte value of any type.
template <typename T>
T shuffle(std::uint32_t mask, T var, unsigned src, const char* what, std::source_location site) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "a shuffle moves 4 or 8 bytes");
  std::uint64_t bits = 0;
  __builtin_memcpy(&bits, &var, sizeof(T));
  bits = warp_shuffle(mask, bits, src, what, site);
  __builtin_memcpy(&var, &bits, sizeof(T));
  return var;
}

template <typename T>
bool argument_ok(const char* kernel, int index, const T& v) {
  if constexpr (std::is_pointer_v<T>) return device_pointer_ok(kernel, index, static_cast<const void*>(v));
  else return true;
}

// kernel<<<grid, block, smem, stream>>>(args…): the arguments are converted
// to the kernel's parameter types and copied, as a launch does.
template <typename... Params, typename... Args>
void launch(const char* kernel, void (*fn)(Params...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
            Args&&... args) {
  std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
  bool ok = true;
  int index = 0;
  std::apply([&](const auto&... v) { ((ok = argument_ok(kernel, index++, v) && ok), ...); }, values);
  if (!ok) return;
  launch_body(kernel, reinterpret_cast<const void*>(fn), grid, block, smem, stream,
              [fn, values] { std::apply(fn, values); });
}

// Test controls.
enum class Order { forward, reverse, shuffle };
void set_order(Order order);              // default: $EVOPLAST_SIMT_ORDER or forward
void set_seed(std::uint32_t seed);        // the shuffled order's; default: $EVOPLAST_SIMT_SEED or 12345
std::uint32_t seed();
void set_device_memory(std::size_t bytes);  // the card's size (default 80 GiB, an H100's)
std::size_t launches();                   // kernels launched so far
std::size_t graph_launches();             // cudaGraphLaunch calls so far
void clear_error();                       // forget a sticky error (a new context, for tests)

// The memory profile (memory_profile.cpp): how each kernel's warps use the
// memory system, counted as Nsight Compute counts it. Only where the kernels
// report their accesses (test_simt_races, simt_memory_profile); elsewhere
// nothing is counted.
struct MemoryTraffic {
  std::uint64_t requests = 0;  // warp-wide loads or stores (one instruction for a warp)
  std::uint64_t units = 0;     // device memory: 32-byte sectors; shared memory: wavefronts (bank passes)
  std::uint64_t ideal = 0;     // the fewest units that serve the same bytes
};
struct KernelMemory {
  std::uint64_t blocks = 0;  // blocks that accessed memory
  MemoryTraffic global_load, global_store, shared_load, shared_store;
  KernelMemory& operator+=(const KernelMemory& o) {
    blocks += o.blocks;
    for (auto [mine, theirs] : {std::pair{&global_load, &o.global_load}, {&global_store, &o.global_store},
                                {&shared_load, &o.shared_load}, {&shared_store, &o.shared_store}}) {
      mine->requests += theirs->requests;
      mine->units += theirs->units;
      mine->ideal += theirs->ideal;
    }
    return *this;
  }
};
void start_memory_profile();  // counts from now (what an earlier profile counted is dropped)
// Stops counting; each kernel's counts, by its name with template arguments.
std::map<std::string, KernelMemory> stop_memory_profile();

}  // namespace simt

// The kernel language.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// 64 KiB: more than a kernel's 48 KiB of static shared memory, so every
// variable is followed by at least 16 KiB that no other shared variable holds.
#define __shared__ __attribute__((aligned(65536))) static thread_local
#define threadIdx (::simt::thread_index())
#define blockIdx (::simt::block_index())
#define blockDim (::simt::block_dims())
#define gridDim (::simt::grid_dims())
inline void __syncthreads(std::source_location site = std::source_location::current()) { ::simt::barrier(site); }

// Atomics, as CUDA declares them (atomics.cpp): each returns the word's old
// value. Not instrumented: they tell the race checker of an atomic access.
int atomicAdd(int* address, int val);
unsigned atomicAdd(unsigned* address, unsigned val);
unsigned long long atomicAdd(unsigned long long* address, unsigned long long val);
float atomicAdd(float* address, float val);
int atomicMax(int* address, int val);
unsigned atomicMax(unsigned* address, unsigned val);
int atomicMin(int* address, int val);
unsigned atomicMin(unsigned* address, unsigned val);
int atomicExch(int* address, int val);
unsigned atomicExch(unsigned* address, unsigned val);
float atomicExch(float* address, float val);
int atomicCAS(int* address, int compare, int val);
unsigned atomicCAS(unsigned* address, unsigned compare, unsigned val);
unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long val);

// Warp shuffles and votes, as CUDA declares them (width: a power of two ≤ 32
// splitting the warp into groups; warp.cpp).
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32,
              std::source_location site = std::source_location::current()) {
  const unsigned lane = ::simt::lane_id(), group = lane & ~unsigned(width - 1);
  const unsigned src = group | (unsigned(src_lane) & unsigned(width - 1));
  return ::simt::shuffle(mask, var, src, "__shfl_sync", site);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32,
                 std::source_location site = std::source_location::current()) {
  const unsigned lane = ::simt::lane_id();
  const unsigned src = lane % unsigned(width) >= delta ? lane - delta : lane;
  return ::simt::shuffle(mask, var, src, "__shfl_up_sync", site);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32,
                   std::source_location site = std::source_location::current()) {
  const unsigned lane = ::simt::lane_id();
  const unsigned src = lane % unsigned(width) + delta < unsigned(width) ? lane + delta : lane;
  return ::simt::shuffle(mask, var, src, "__shfl_down_sync", site);
}
// A lane of a later group than the caller's gives the caller its own value.
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32,
                  std::source_location site = std::source_location::current()) {
  const unsigned lane = ::simt::lane_id(), other = lane ^ unsigned(lane_mask);
  const unsigned src = other < (lane / unsigned(width) + 1) * unsigned(width) ? other : lane;
  return ::simt::shuffle(mask, var, src, "__shfl_xor_sync", site);
}
inline unsigned __ballot_sync(unsigned mask, int predicate,
                              std::source_location site = std::source_location::current()) {
  return ::simt::warp_ballot(mask, predicate != 0, "__ballot_sync", site);
}
inline int __any_sync(unsigned mask, int predicate, std::source_location site = std::source_location::current()) {
  return ::simt::warp_ballot(mask, predicate != 0, "__any_sync", site) != 0;
}
inline int __all_sync(unsigned mask, int predicate, std::source_location site = std::source_location::current()) {
  return ::simt::warp_ballot(mask, predicate != 0, "__all_sync", site) == 0xFFFFFFFFu;
}
inline unsigned __activemask() { return 0xFFFFFFFFu; }  // every lane of a full warp runs each collective
