// The race checker's own checks (test_simt_races only: these kernels are
// compiled with the CUDA sources, their accesses reported to races.cpp).
// Each race is one no order of threads or blocks shows: the sums come out
// right in the simulator, and would not on a GPU.
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include "kernels/async_copy.cuh"

#include <string>
#include <vector>

// The test kernels live where every kernel does (evoplast::kernels::cuda):
// the simulator finds shared memory among that namespace's statics.
namespace evoplast::kernels::cuda {
namespace {

// Every thread adds its 1 to one word, as if `+=` were atomic (it is not).
__global__ void add_into_one_word(float* sum) { *sum += 1; }

// The same in shared memory, then thread 0 stores the total.
__global__ void add_into_one_shared_word(float* sum) {
  __shared__ float total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  total += 1;
  __syncthreads();
  if (threadIdx.x == 0) *sum = total;
}

// Each thread copies x[t] into its shared slot asynchronously, waits for
// it, and (with the barrier after the wait missing where `barrier` is
// false) reads its neighbour's slot.
__global__ void read_neighbours_async_copy(bool barrier, const float* x, float* out) {
  __shared__ float slot[32];
  const unsigned t = threadIdx.x;
  AsyncCopies<1> copies;
  copies.copy(&slot[t], x + t);
  copies.commit();
  copies.wait<0>();
  if (barrier) __syncthreads();
  out[t] = slot[(t + 1) % 32];
}

// Block b > 0 reads the word block b − 1 writes in the same launch.
__global__ void read_previous_blocks_word(float* x) {
  if (threadIdx.x != 0) return;
  x[blockIdx.x] = float(blockIdx.x);
  if (blockIdx.x > 0) x[gridDim.x + blockIdx.x] = x[blockIdx.x - 1];
}

// Race-free: each thread its own word of a shared array, a tree sum between
// barriers, thread 0 writes the block's total, then (after a barrier) every
// thread reads it back from global memory and writes its own word.
__global__ void block_sum_then_broadcast(const float* x, float* totals, float* out) {
  __shared__ float part[64];
  const unsigned t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  part[t] = x[i];
  __syncthreads();
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w) part[t] += part[t + w];
    __syncthreads();
  }
  if (t == 0) totals[blockIdx.x] = part[0];
  __syncthreads();
  out[i] = x[i] / totals[blockIdx.x];
}

// The reduction above with its first barrier missing: thread t < 32 adds part[t + 32] before thread t + 32 wrote it.
__global__ void block_sum_missing_barrier(const float* x, float* totals) {
  __shared__ float part[64];
  const unsigned t = threadIdx.x;
  part[t] = x[blockIdx.x * blockDim.x + t];
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w) part[t] += part[t + w];
    __syncthreads();
  }
  if (t == 0) totals[blockIdx.x] = part[0];
}

// Every thread reads a flag thread 0 set; thread 0 then overwrites it with no
// barrier between, while others may still be reading. In reverse order thread 0
// reads last, and every thread reads 1: the result is right.
__global__ void read_then_overwrite(float* out) {
  __shared__ float flag;
  if (threadIdx.x == 0) flag = 1;
  __syncthreads();
  out[threadIdx.x] = flag;
  if (threadIdx.x == 0) flag = 2;
}

// Threads 0 and 1 write bytes 0 and 1 of one word; thread 2 reads byte 0 with no barrier between.
__global__ void read_a_byte_another_thread_writes(unsigned char* bytes) {
  if (threadIdx.x < 2) bytes[threadIdx.x] = 1;
  if (threadIdx.x == 2) bytes[4] = bytes[0];
}

// Every thread adds 1 to the block's total with atomicAdd, in shared memory
// and then in global memory: atomics never race with each other.
__global__ void add_atomically(float* sum) {
  __shared__ float total;
  if (threadIdx.x == 0) total = 0;
  __syncthreads();
  atomicAdd(&total, 1.0f);
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(sum, total);
}

// Thread 0 zeroes the sum with a plain store while the others add to it atomically.
__global__ void zero_while_adding_atomically(float* sum) {
  if (threadIdx.x == 0) *sum = 0;
  else atomicAdd(sum, 1.0f);
}

// Every thread of every block reads word 0; after a barrier the last block's
// thread 0 overwrites it, while on a GPU the other blocks may still be reading.
// In forward order the last block's own reads, which the barrier orders before
// the write, come after the other blocks' reads.
__global__ void last_block_overwrites_what_all_read(float* x) {
  x[1 + blockIdx.x * blockDim.x + threadIdx.x] = x[0];
  __syncthreads();
  if (blockIdx.x == gridDim.x - 1 && threadIdx.x == 0) x[0] = 2;
}

// Every thread counts itself into a word atomically; after a barrier the last
// block's thread 0 reads the count with a plain load, while on a GPU the other
// blocks may still be counting.
__global__ void last_block_reads_a_count_still_rising(float* count, float* out) {
  atomicAdd(count, 1.0f);
  __syncthreads();
  if (blockIdx.x == gridDim.x - 1 && threadIdx.x == 0) *out = *count;
}

// Thread 0 copies a float2 from x + from to x + to, whole (a named float2:
// g++ moves a temporary's members one at a time), as the tile stores do.
__global__ void copy_float2(float* x, int from, int to) {
  if (threadIdx.x != 0) return;
  const float2 pair = *reinterpret_cast<const float2*>(x + from);
  *reinterpret_cast<float2*>(x + to) = pair;
}

// Thread 0 reads a float4 of a 16-byte aligned shared array at element `at` into out.
__global__ void read_shared_float4(const float* x, float* out, int at) {
  alignas(16) __shared__ float staged[8];
  if (threadIdx.x == 0)
    for (int i = 0; i < 8; ++i) staged[i] = x[i];
  __syncthreads();
  if (threadIdx.x != 0) return;
  const float4 four = *reinterpret_cast<const float4*>(staged + at);
  *reinterpret_cast<float4*>(out) = four;
}

// n floats of device memory set to value, freed when it goes.
struct DeviceFloats {
  float* p = nullptr;
  DeviceFloats(std::size_t n, float value) {
    void* bytes = nullptr;
    REQUIRE(cudaMalloc(&bytes, n * sizeof(float)) == cudaSuccess);
    p = static_cast<float*>(bytes);
    const std::vector<float> host(n, value);
    REQUIRE(cudaMemcpy(p, host.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DeviceFloats() { cudaFree(p); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
};

// The launch's error message (empty if it ran clean); the device is reset for the next test.
template <typename... Params, typename... Args>
std::string race_in(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  ::simt::launch(name, kernel, grid, block, 0, nullptr, args...);
  const cudaError_t e = cudaDeviceSynchronize();
  const std::string msg = e == cudaSuccess ? "" : cudaGetErrorString(e);
  ::simt::clear_error();
  return msg;
}

// Runs `launch` (which returns race_in's message) with the threads and blocks
// in forward order, then reversed, and checks each message holds that order's line.
template <typename Launch>
void check_race_in_both_orders(const Launch& launch, const char* forward_line, const char* reverse_line) {
  for (simt::Order o : {simt::Order::forward, simt::Order::reverse}) {
    simt::set_order(o);
    const std::string msg = launch();
    INFO(msg);
    CHECK(msg.find(o == simt::Order::forward ? forward_line : reverse_line) != std::string::npos);
  }
  simt::set_order(simt::Order::forward);
}

}  // namespace
}  // namespace evoplast::kernels::cuda
using namespace evoplast::kernels::cuda;

TEST_CASE("simt races: two threads adding into one word is a race, named with both threads and the word") {
  DeviceFloats sum(1, 0);
  const std::string msg = race_in("add_into_one_word", add_into_one_word, 1, 32, sum.p);
  INFO(msg);
  CHECK(msg.find("kernel add_into_one_word, block (0,0,0), thread (1,0,0) reads byte 0 of a device allocation "
                 "of 4 bytes, which thread (0,0,0) of the same block wrote, with no __syncthreads between them: "
                 "a data race") != std::string::npos);
}

TEST_CASE("simt races: so is adding into one word of shared memory, named with the variable") {
  DeviceFloats sum(1, 0);
  const std::string msg = race_in("add_into_one_shared_word", add_into_one_shared_word, 1, 32, sum.p);
  INFO(msg);
  CHECK(msg.find("thread (1,0,0) reads byte 0 of __shared__ "
                 "evoplast::kernels::cuda::(anonymous namespace)::add_into_one_shared_word(float*)::total, which "
                 "thread (0,0,0) of the same block wrote, with no __syncthreads between them") != std::string::npos);
}

TEST_CASE("simt races: a block reading what another block of the launch writes is a race, in any block order") {
  // Forward, block 1 reads the word block 0 wrote; reversed, block 2 writes the word block 3 read.
  check_race_in_both_orders(
      [] {
        DeviceFloats x(8, 0);
        return race_in("read_previous_blocks_word", read_previous_blocks_word, 4, 32, x.p);
      },
      "block (1,0,0), thread (0,0,0) reads byte 0 of a device allocation of 32 bytes, which thread (0,0,0) of "
      "block (0,0,0) wrote in the same launch",
      "block (2,0,0), thread (0,0,0) writes byte 8 of a device allocation of 32 bytes, which thread (0,0,0) of "
      "block (3,0,0) read in the same launch");
}

TEST_CASE("simt races: a reduction missing its first barrier is a race in shared memory, in any thread order") {
  // Forward, thread 32 writes the word thread 0 read; reversed, thread 31 reads the word thread 63 wrote.
  check_race_in_both_orders(
      [] {
        DeviceFloats x(128, 1);
        DeviceFloats totals(2, 0);
        return race_in("block_sum_missing_barrier", block_sum_missing_barrier, 2, 64, x.p, totals.p);
      },
      "thread (32,0,0) writes byte 128 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
      "block_sum_missing_barrier(float const*, float*)::part, which thread (0,0,0) of the same block read",
      "thread (31,0,0) reads byte 252 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
      "block_sum_missing_barrier(float const*, float*)::part, which thread (63,0,0) of the same block wrote");
}

TEST_CASE("simt races: barriers order a block's threads, in shared and in global memory, in any order") {
  for (simt::Order o : {simt::Order::forward, simt::Order::reverse, simt::Order::shuffle}) {
    simt::set_order(o);
    DeviceFloats x(128, 2);
    DeviceFloats totals(2, 0);
    DeviceFloats out(128, 0);
    CHECK(race_in("block_sum_then_broadcast", block_sum_then_broadcast, 2, 64, x.p, totals.p, out.p).empty());
    std::vector<float> got(128);
    REQUIRE(cudaMemcpy(got.data(), out.p, 512, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(got == std::vector<float>(128, 2.0f / 128));
  }
  simt::set_order(simt::Order::forward);
}

TEST_CASE("simt races: an asynchronous copy is its thread's write at the wait: read before a barrier, a race") {
  DeviceFloats x(32, 3);
  DeviceFloats out(32, 0);
  CHECK(race_in("read_neighbours_async_copy", read_neighbours_async_copy, 1, 32, true, x.p, out.p).empty());
  // Forward, thread 1's copy lands in slot 1 after thread 0 read it; reversed, thread 30 reads slot 31 after
  // thread 31's copy landed there.
  check_race_in_both_orders(
      [&] { return race_in("read_neighbours_async_copy", read_neighbours_async_copy, 1, 32, false, x.p, out.p); },
      "thread (1,0,0) writes byte 4 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
      "read_neighbours_async_copy(bool, float const*, float*)::slot, which thread (0,0,0) of the same block read",
      "thread (30,0,0) reads byte 124 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
      "read_neighbours_async_copy(bool, float const*, float*)::slot, which thread (31,0,0) of the same block wrote");
}

TEST_CASE("simt races: a write after several threads read meets a reader other than itself, in any order") {
  // Forward, thread 1 reads the 2 thread 0 wrote; reversed, thread 0 (the
  // last reader) writes the flag thread 1 read before it.
  check_race_in_both_orders(
      [] {
        DeviceFloats out(32, 0);
        return race_in("read_then_overwrite", read_then_overwrite, 1, 32, out.p);
      },
      "thread (1,0,0) reads byte 0 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
      "read_then_overwrite(float*)::flag, which thread (0,0,0) of the same block wrote",
      "thread (0,0,0) writes byte 0 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
      "read_then_overwrite(float*)::flag, which thread (1,0,0) of the same block read");
}

TEST_CASE("simt races: a read of a byte meets its writer after another thread wrote another byte of the word") {
  DeviceFloats bytes(2, 0);
  const std::string msg = race_in("read_a_byte_another_thread_writes", read_a_byte_another_thread_writes, 1, 3,
                                  reinterpret_cast<unsigned char*>(bytes.p));
  INFO(msg);
  CHECK(msg.find("thread (2,0,0) reads byte 0 of a device allocation of 8 bytes, which thread (0,0,0) of the "
                 "same block wrote") != std::string::npos);
}

TEST_CASE("simt races: atomics to one word do not race with each other, in shared or global memory") {
  DeviceFloats sum(1, 0);
  CHECK(race_in("add_atomically", add_atomically, 4, 32, sum.p).empty());
  float got = 0;
  REQUIRE(cudaMemcpy(&got, sum.p, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(got == 128);
}

TEST_CASE("simt races: a plain store to a word others update atomically is a race, in any order") {
  // Forward, thread 1's atomic meets thread 0's store; reversed, thread 0's store meets thread 1's atomic.
  check_race_in_both_orders(
      [] {
        DeviceFloats sum(1, 0);
        return race_in("zero_while_adding_atomically", zero_while_adding_atomically, 1, 32, sum.p);
      },
      "thread (1,0,0) atomically updates byte 0 of a device allocation of 4 bytes, which thread (0,0,0) of the "
      "same block wrote",
      "thread (0,0,0) writes byte 0 of a device allocation of 4 bytes, which thread (1,0,0) of the same block "
      "updated atomically");
}

TEST_CASE("simt races: a write to a word every block read meets another block's reader after its own block's") {
  // Forward, the last block's 32 reads come between block 2's and the write;
  // reversed, block 2 reads the word block 3 wrote.
  check_race_in_both_orders(
      [] {
        DeviceFloats x(1 + 4 * 32, 1);
        return race_in("last_block_overwrites_what_all_read", last_block_overwrites_what_all_read, 4, 32, x.p);
      },
      "block (3,0,0), thread (0,0,0) writes byte 0 of a device allocation of 516 bytes, which thread (31,0,0) of "
      "block (2,0,0) read in the same launch",
      "block (2,0,0), thread (31,0,0) reads byte 0 of a device allocation of 516 bytes, which thread (0,0,0) of "
      "block (3,0,0) wrote in the same launch");
}

TEST_CASE("simt races: a plain read of a count other blocks update atomically is a race, after its block's own") {
  check_race_in_both_orders(
      [] {
        DeviceFloats count(1, 0);
        DeviceFloats out(1, 0);
        return race_in("last_block_reads_a_count_still_rising", last_block_reads_a_count_still_rising, 4, 32,
                       count.p, out.p);
      },
      "block (3,0,0), thread (0,0,0) reads byte 0 of a device allocation of 4 bytes, which thread (31,0,0) of "
      "block (2,0,0) updated atomically in the same launch",
      "block (2,0,0), thread (31,0,0) atomically updates byte 0 of a device allocation of 4 bytes, which "
      "thread (0,0,0) of block (3,0,0) read in the same launch");
}

TEST_CASE("simt races: a float2 or a float4 at an address not 8 or 16 bytes aligned fails the launch, named") {
  DeviceFloats x(8, 1), out(4, 0);
  // Aligned: runs clean and moves both floats.
  CHECK(race_in("copy_float2", copy_float2, 1, 32, x.p, 2, 4) == "");
  CHECK(race_in("read_shared_float4", read_shared_float4, 1, 32, x.p, out.p, 4) == "");
  std::string msg = race_in("copy_float2", copy_float2, 1, 32, x.p, 1, 4);
  INFO(msg);
  CHECK(msg.find("kernel copy_float2, block (0,0,0), thread (0,0,0) reads 8 bytes at once at byte 4 of a device "
                 "allocation of 32 bytes, not 8-byte aligned: a misaligned address") != std::string::npos);
  msg = race_in("copy_float2", copy_float2, 1, 32, x.p, 0, 3);
  CHECK(msg.find("writes 8 bytes at once at byte 12 of a device allocation of 32 bytes, not 8-byte aligned") !=
        std::string::npos);
  msg = race_in("read_shared_float4", read_shared_float4, 1, 32, x.p, out.p, 2);
  CHECK(msg.find("reads 16 bytes at once at byte 8 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
                 "read_shared_float4(float const*, float*, int)::staged, not 16-byte aligned") != std::string::npos);
}
