// Inside the SIMT simulator: what the runtime (runtime.cpp), the block
// scheduler (scheduler.cpp) and the cuBLAS stand-in (cublas.cpp) share.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "cuda_runtime.h"

namespace simt::device {

// What memory nobody wrote holds: new device allocations, scratch, and shared
// memory at the start of every block.
constexpr unsigned char kPoison = 0xFF;  // NaN as float, −1 as any integer

// Shared memory a kernel has without opting in (an H100's): its static
// __shared__ variables, or its dynamic shared memory.
constexpr std::size_t kStaticShared = 48 << 10;

// Queues work in stream order (one queue: every stream is serialised, which
// is one of the orders a GPU may run them in); drain() runs it. While
// `stream` captures, the work is recorded in its graph instead (`kind` names
// the node for cudaGraphExecUpdate's topology check); work on the legacy
// stream 0 during a capture is refused and invalidates it.
cudaError_t enqueue(cudaStream_t stream, const std::string& kind, std::function<void()> work);
// A call that waits for the device or allocates: refused, and the capture
// invalidated, while a stream captures; cudaSuccess otherwise.
cudaError_t capture_forbids(const char* call);

// The sticky error of a failed execution: printed once, returned by every
// later call, and the queue is dropped (as a GPU context is lost).
void fail(cudaError_t code, const std::string& message);
// The error of one call (not sticky): what cudaGetLastError reports next.
cudaError_t refuse(cudaError_t code, const std::string& message);
cudaError_t sticky();

// [p, p + bytes) inside one live device allocation (p one past its end is
// inside when bytes is 0).
bool is_device_range(const void* p, std::size_t bytes);

// Runs every block of a grid; false with `error` set when the kernel broke a
// rule (a barrier not reached by every thread of a block).
// Kernels that never reached a barrier in their first launch run later
// launches without fibers ($EVOPLAST_SIMT_FIBERS=always: never).
bool run_grid(const char* kernel, const void* fn, dim3 grid, dim3 block, const ThreadBody& body,
              std::string& error);

// The kernel whose grid this host thread runs; null between grids.
const char* running_kernel();
// A source place as errors name it: "file.cpp:123".
std::string site_name(const std::source_location& s);

// Where the GPU thread running on this host thread is, kept by the scheduler
// for the race checker (races.cpp).
struct ThreadPlace {
  bool active = false;          // a GPU thread runs (false in the scheduler itself)
  std::uint32_t launch = 0;     // the grid's serial number, from 1: device memory's epoch
  std::uint32_t block_run = 0;  // the block's serial number over all grids, from 1: shared memory's epoch
  std::uint32_t block = 0;      // the block's linear index in its grid
  std::uint32_t phase = 0;      // the __syncthreads its block has passed
  std::uint32_t thread = 0;     // the thread's linear index in its block
  const char* stack = nullptr;  // the stack it runs on (its locals are nobody else's)
  std::size_t stack_bytes = 0;
};
extern thread_local ThreadPlace place;

// The live device allocation holding byte p ({nullptr, 0} if none).
std::pair<const char*, std::size_t> allocation_of(const void* p);
// This host thread's TLS block, where its copies of the __shared__ variables lie.
std::pair<char*, std::size_t> tls_block_range();
// The demangled name of the __shared__ variable holding byte p and p's offset
// in it ("" if none).
std::string shared_variable_at(const void* p, std::size_t* offset);

// A rule a GPU thread broke without stopping (a race, a warp collective over
// part of a warp): the grid's first such line is kept, and fails the launch
// when the block ends (scheduler.cpp); taken, it is empty again.
void fail_launch(std::string line);
bool launch_failing();
std::string take_launch_failure();

// The race checker (races.cpp): the shadow of an allocation being freed, dropped.
void forget_shadow(const void* base);
// An atomic read-modify-write of n bytes at p by the running GPU thread (atomics.cpp).
void note_atomic(const void* p, std::size_t n);

// The memory profile (memory_profile.cpp): the kernel function of the grid
// about to run, and one load or store of n bytes at address by the running GPU
// thread, made at `pc` in the kernel's code (counted while a profile runs).
void profile_grid(const void* fn);
void profile_access(const void* pc, const void* address, std::size_t n, bool shared, bool write);

// Fills the calling thread's copy of every __shared__ variable (a kernel's
// static thread_local) with kPoison: what a block finds when it starts.
// Under AddressSanitizer the bytes around them are poisoned too (once per
// host thread), so an access past one is an error.
void poison_shared_memory();

}  // namespace simt::device
