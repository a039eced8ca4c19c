// The simulator's own checks: each rule it exists to enforce is broken on
// purpose here, and it must say so, naming the kernel.
#include <doctest/doctest.h>

#include <cuda_runtime.h>
#include <sanitizer/asan_interface.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/async_copy.cuh"
#include "kernels/cuda_check.hpp"
#include "kernels/mma.cuh"

// The test kernels live where every kernel does (evoplast::kernels::cuda):
// the simulator poisons the shared memory of that namespace's functions.
namespace evoplast::kernels::cuda {
namespace {

// A launch whose failure the runtime must report later (at a synchronisation,
// or when its graph runs) goes unchecked: EVOPLAST_LAUNCH would synchronise
// and throw at once under EVOPLAST_CUDA_SYNC=1.
#define UNCHECKED_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::simt::launch(#kernel, kernel, grid, block, smem, stream, __VA_ARGS__)

// A block sum with its barriers in place, or with the first one missing.
__global__ void block_sum(bool skip_first_barrier, const float* x, float* out) {
  __shared__ float part[256];
  part[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  if (!skip_first_barrier) __syncthreads();
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = part[0];
}

// Each thread copies x[t] and x[32 + t] into its two shared slots as two
// groups of asynchronous copies (and a null source, a 0, into a third
// with the second), reading its slots before any wait, after the wait that
// leaves the newest group in flight, and after the wait for all: out[8t…8t + 7].
__global__ void async_copies_landing(const float* x, float* out) {
  __shared__ float slot[3][32];
  const unsigned t = threadIdx.x;
  for (auto& s : slot) s[t] = -1;
  AsyncCopies<3> copies;
  copies.copy(&slot[0][t], x + t);
  copies.commit();
  copies.copy(&slot[1][t], x + 32 + t);
  copies.copy(&slot[2][t], nullptr);
  copies.commit();
  float* mine = out + 8 * t;
  mine[0] = slot[0][t], mine[1] = slot[1][t], mine[2] = slot[2][t];
  copies.wait<1>();
  mine[3] = slot[0][t], mine[4] = slot[1][t];
  copies.wait<0>();
  mine[5] = slot[0][t], mine[6] = slot[1][t], mine[7] = slot[2][t];
}

// Each of 8 threads copies a run of 4 floats of x (16 bytes) as one group
// and a run of four 0s (a null source) as a second, reading its slots
// before any wait, after the wait that leaves the newest group in flight,
// and after the wait for all: out[12t…12t + 11].
__global__ void async_runs_landing(const float* x, float* out) {
  alignas(16) __shared__ float slot[2][32];
  const unsigned t = threadIdx.x;
  for (auto& s : slot)
    for (int i = 0; i < 4; ++i) s[4 * t + i] = -1;
  AsyncCopies<8> copies;
  copies.copy4(&slot[0][4 * t], x + 4 * t);
  copies.commit();
  copies.copy4(&slot[1][4 * t], nullptr);
  copies.commit();
  float* mine = out + 12 * t;
  mine[0] = slot[0][4 * t + 3], mine[1] = slot[1][4 * t];
  copies.wait<1>();
  for (int i = 0; i < 4; ++i) mine[2 + i] = slot[0][4 * t + i];
  mine[6] = slot[1][4 * t + 2];
  copies.wait<0>();
  for (int i = 0; i < 4; ++i) mine[7 + i] = slot[1][4 * t + i];
  mine[11] = slot[0][4 * t];
}

// Half of the threads leave before the barrier.
__global__ void early_exit(float* out) {
  if (threadIdx.x >= blockDim.x / 2) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Thread 0 of block 0 writes the shared slot; every block reads it back:
// blocks other than 0 read shared memory no thread of theirs wrote.
__global__ void read_block0s_shared_slot(float* out) {
  __shared__ float slot;
  if (blockIdx.x == 0 && threadIdx.x == 0) slot = 1;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = slot;
}

// Thread 0 asks ASan which bytes around a 20-byte shared array a kernel may
// touch: out = {its last float, the byte past its end, the last of the 16 KiB
// past its end, the byte before it}; 1 where poisoned.
__global__ void probe_around_shared_row(int* out) {
  __shared__ float row[5];
  if (threadIdx.x != 0) return;
  const char* bytes = reinterpret_cast<const char*>(row);
  out[0] = __asan_address_is_poisoned(bytes + 16);
  out[1] = __asan_address_is_poisoned(bytes + 20);
  out[2] = __asan_address_is_poisoned(bytes + 20 + (16 << 10) - 1);
  out[3] = __asan_address_is_poisoned(bytes - 1);
}

// Writes slot[i] where the compiler cannot see the array slot points into
// (not inlined), as a reduction's helper is handed `part`: UBSan's bounds and
// object-size checks do not see this write.
[[gnu::noinline]] __device__ void write_one(float* slot, unsigned i) { slot[i] = 1; }

// Each thread writes its own float of a 5-float shared array: with 6 threads,
// thread 5 writes one past the end.
__global__ void write_past_shared_row(float* out) {
  __shared__ float row[5];
  write_one(row, threadIdx.x);
  __syncthreads();
  if (threadIdx.x == 0) out[0] = row[0];
}

// Block b adds 1 to what block b − 1 left (a race between the blocks of one
// launch): blocks in order chain the additions, blocks in reverse do not.
__global__ void add_to_previous_block(float* x) {
  if (threadIdx.x == 0 && blockIdx.x > 0) x[blockIdx.x] = x[blockIdx.x - 1] + 1;
}

__global__ void copy_kernel(std::size_t n, const float* x, float* y) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    y[i] = x[i];
}

// One warp: D (16×8) = A (16×8, row-major) · B (8×8, row-major) + C through
// the mma wrapper, each lane loading its fragments as the PTX ISA lays them out.
// skip_lane ≥ 0: that lane leaves before the mma (a broken warp collective).
__global__ void warp_mma(int skip_lane, const float* A, const float* B, const float* C, float* D) {
  namespace kc = evoplast::kernels::cuda;
  const int lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
  if (lane == skip_lane) return;
  const std::uint32_t a[4] = {kc::to_tf32(A[g * 8 + t]), kc::to_tf32(A[(g + 8) * 8 + t]),
                              kc::to_tf32(A[g * 8 + t + 4]), kc::to_tf32(A[(g + 8) * 8 + t + 4])};
  const std::uint32_t b[2] = {kc::to_tf32(B[t * 8 + g]), kc::to_tf32(B[(t + 4) * 8 + g])};
  float d[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  kc::mma_tf32(d, a, b, d);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

__global__ void add_value(float v, std::size_t n, float* y) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    y[i] += v;
}

// The same through the bf16 wrapper: D (16×8) = A (16×16) · B (16×8) + C,
// A and B row-major, two values per register in the PTX ISA's layout.
__global__ void warp_mma_bf16(const float* A, const float* B, const float* C, float* D) {
  namespace kc = evoplast::kernels::cuda;
  const int lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
  const std::uint32_t a[4] = {kc::to_bf16x2(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]),
                              kc::to_bf16x2(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]),
                              kc::to_bf16x2(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]),
                              kc::to_bf16x2(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9])};
  const std::uint32_t b[2] = {kc::to_bf16x2(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]),
                              kc::to_bf16x2(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g])};
  float d[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
  kc::mma_bf16(d, a, b, d);
  D[g * 8 + 2 * t] = d[0];
  D[g * 8 + 2 * t + 1] = d[1];
  D[(g + 8) * 8 + 2 * t] = d[2];
  D[(g + 8) * 8 + 2 * t + 1] = d[3];
}

template <typename T>
T* device_alloc(std::size_t n) {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
  return static_cast<T*>(p);
}

// kernel(x, out) run as one block of `threads`, x uploaded: out's n floats.
template <class Kernel>
std::vector<float> run_one_block(Kernel kernel, unsigned threads, const std::vector<float>& x, std::size_t n) {
  float* dx = device_alloc<float>(x.size());
  float* out = device_alloc<float>(n);
  REQUIRE(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  EVOPLAST_LAUNCH(kernel, 1, threads, 0, nullptr, dx, out);
  std::vector<float> got(n);
  REQUIRE(cudaMemcpy(got.data(), out, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  cudaFree(dx);
  cudaFree(out);
  return got;
}

// Every thread of every block takes a ticket (atomicAdd's old value), adds
// 0.5 to a float, offers its index to a max and a min, swaps its index into
// a slot, and tries to claim a word still 0 (atomicCAS). state: {tickets, max,
// min, slot, claim, float sum as bits}.
__global__ void take_tickets(int* tickets, unsigned* state, float* sum) {
  const unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  tickets[t] = atomicAdd(reinterpret_cast<int*>(&state[0]), 1);
  atomicAdd(sum, 0.5f);
  atomicMax(&state[1], t);
  atomicMin(&state[2], t);
  atomicExch(&state[3], t);
  atomicCAS(&state[4], 0u, t + 1);
}

// Each warp shuffles and votes on its threads' linear indices t (two warps a
// block); out holds 9 results a thread: from lane 3; from the lane below
// within groups of 8 (delta 2); from the lane above (delta 1); from the lane
// with bit 0 flipped; the warp's sum by a butterfly of xor shuffles (float);
// a ballot of t % 3 == 0; any lane 5; all lanes < 31; and all lanes.
__global__ void shuffle_and_vote(int* out) {
  const int t = int(blockIdx.x * blockDim.x + threadIdx.x), lane = int(threadIdx.x % 32);
  int* mine = out + 9 * t;
  const unsigned full = 0xFFFFFFFFu;
  mine[0] = __shfl_sync(full, t, 3);
  mine[1] = __shfl_up_sync(full, t, 2, 8);
  mine[2] = __shfl_down_sync(full, t, 1);
  mine[3] = __shfl_xor_sync(full, t, 1);
  float sum = float(t);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(full, sum, offset);
  mine[4] = int(sum);
  mine[5] = int(__ballot_sync(full, t % 3 == 0));
  mine[6] = __any_sync(full, lane == 5);
  mine[7] = __all_sync(full, lane < 31);
  mine[8] = __all_sync(full, 1);
}

// A sum into an accumulator never zeroed (a kernel's bug): its register
// starts as garbage on a GPU, and here as the 0xFE bytes of the pattern every
// uninitialised local starts with in a CUDA source (tests/simt/CMakeLists.txt),
// never as the zeros of a fresh fiber stack.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__global__ void sum_without_zero(const float* x, float* out) {
  float acc;
  for (int i = 0; i < 4; ++i) acc += x[4 * threadIdx.x + i];
  __syncthreads();  // on fibers
  out[threadIdx.x] = acc;
}
#pragma GCC diagnostic pop

// A shuffle over half a warp: not simulated.
__global__ void shuffle_half_a_warp(int* out) { out[threadIdx.x] = __shfl_sync(0xFFFFu, int(threadIdx.x), 0); }

std::vector<float> sums(bool skip_first_barrier) {
  const int blocks = 3, threads = 256;
  std::vector<float> host(blocks * threads);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = float(i % 7);
  float* x = device_alloc<float>(host.size());
  float* out = device_alloc<float>(blocks);
  REQUIRE(cudaMemcpy(x, host.data(), host.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  EVOPLAST_LAUNCH(block_sum, blocks, threads, 0, nullptr, skip_first_barrier, x, out);
  std::vector<float> got(blocks);
  REQUIRE(cudaMemcpy(got.data(), out, blocks * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  cudaFree(x);
  cudaFree(out);
  return got;
}

}  // namespace
}  // namespace evoplast::kernels::cuda
using namespace evoplast::kernels::cuda;

TEST_CASE("simt: a block reduction is right with its barriers, wrong without one in some order") {
  std::vector<float> want(3, 0);
  for (int i = 0; i < 3 * 256; ++i) want[std::size_t(i / 256)] += float(i % 7);
  CHECK(sums(false) == want);
  bool wrong_in_some_order = false;
  for (simt::Order o : {simt::Order::forward, simt::Order::reverse, simt::Order::shuffle}) {
    simt::set_order(o);
    CHECK(sums(false) == want);
    wrong_in_some_order |= sums(true) != want;
  }
  simt::set_order(simt::Order::forward);
  CHECK(wrong_in_some_order);
}

TEST_CASE("simt: an asynchronous copy lands only in the wait that lets it, so a slice read early shows") {
  std::vector<float> x(64);
  std::iota(x.begin(), x.end(), 1.0f);
  const std::vector<float> got = run_one_block(async_copies_landing, 32, x, 8 * 32);
  for (int t = 0; t < 32; ++t) {
    const float first = x[std::size_t(t)], second = x[std::size_t(32 + t)];
    const std::vector<float> want = {-1, -1, -1, first, -1, first, second, 0};
    CHECK(std::vector<float>(got.begin() + 8 * t, got.begin() + 8 * t + 8) == want);
  }
}

TEST_CASE("simt: a 16-byte asynchronous copy lands whole only in the wait that lets it; a null source gives 0s") {
  std::vector<float> x(32);
  std::iota(x.begin(), x.end(), 1.0f);
  const std::vector<float> got = run_one_block(async_runs_landing, 8, x, 12 * 8);
  for (std::size_t t = 0; t < 8; ++t) {
    const float* run = x.data() + 4 * t;
    const std::vector<float> want = {-1, -1, run[0], run[1], run[2], run[3], -1, 0, 0, 0, 0, run[0]};
    CHECK(std::vector<float>(got.begin() + std::ptrdiff_t(12 * t), got.begin() + std::ptrdiff_t(12 * t + 12)) == want);
  }
}

TEST_CASE("simt: the blocks of a grid run in the order named, so a race between blocks shows") {
  const auto run = [](simt::Order order) {
    simt::set_order(order);
    float* x = device_alloc<float>(4);
    REQUIRE(cudaMemsetAsync(x, 0, 16, nullptr) == cudaSuccess);
    EVOPLAST_LAUNCH(add_to_previous_block, 4, 32, 0, nullptr, x);
    std::vector<float> got(4);
    REQUIRE(cudaMemcpy(got.data(), x, 16, cudaMemcpyDeviceToHost) == cudaSuccess);
    cudaFree(x);
    return got;
  };
  CHECK(run(simt::Order::forward) == std::vector<float>{0, 1, 2, 3});
  CHECK(run(simt::Order::reverse) == std::vector<float>{0, 1, 1, 1});
  simt::set_order(simt::Order::forward);
}

namespace {

// take_tickets over 3 blocks of 64 threads in the current order: each
// thread's ticket (its place in the order the threads ran), the final state
// and the float sum.
struct Tickets {
  std::vector<int> tickets;
  std::vector<unsigned> state;
  float total = 0;
};
Tickets take_all_tickets() {
  const unsigned n = 3 * 64;
  int* tickets = device_alloc<int>(n);
  unsigned* state = device_alloc<unsigned>(5);
  float* sum = device_alloc<float>(1);
  const std::vector<unsigned> start{0, 0, ~0u, 0, 0};
  const float zero = 0;
  REQUIRE(cudaMemcpy(state, start.data(), 20, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(sum, &zero, 4, cudaMemcpyHostToDevice) == cudaSuccess);
  EVOPLAST_LAUNCH(take_tickets, 3, 64, 0, nullptr, tickets, state, sum);
  Tickets got{std::vector<int>(n), std::vector<unsigned>(5), 0};
  REQUIRE(cudaMemcpy(got.tickets.data(), tickets, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaMemcpy(got.state.data(), state, 20, cudaMemcpyDeviceToHost) == cudaSuccess);
  REQUIRE(cudaMemcpy(&got.total, sum, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  cudaFree(tickets);
  cudaFree(state);
  cudaFree(sum);
  return got;
}

}  // namespace

TEST_CASE("simt: atomics give every thread its own old value and lose no update, in any order") {
  for (simt::Order o : {simt::Order::forward, simt::Order::reverse, simt::Order::shuffle}) {
    simt::set_order(o);
    const unsigned n = 3 * 64;
    auto [got, end, total] = take_all_tickets();
    std::sort(got.begin(), got.end());
    std::vector<int> each(n);
    for (unsigned i = 0; i < n; ++i) each[i] = int(i);
    CHECK(got == each);  // n tickets, each taken once
    CHECK(end[0] == n);
    CHECK(total == 0.5f * n);
    CHECK(end[1] == n - 1);
    CHECK(end[2] == 0);
    CHECK(end[3] < n);   // the last thread to swap
    CHECK(end[4] >= 1);  // one thread claimed it, and no later one overwrote it
    CHECK(end[4] <= n);
  }
  simt::set_order(simt::Order::forward);
}

TEST_CASE("simt: a shuffled order repeats under its seed, and another seed shuffles otherwise") {
  // Each thread's ticket is its place in the order the threads and blocks ran.
  const auto tickets = [](std::uint32_t seed) {
    simt::set_seed(seed);
    return take_all_tickets().tickets;
  };
  const std::uint32_t before = simt::seed();
  simt::set_order(simt::Order::forward);
  std::vector<int> forward(3 * 64);
  std::iota(forward.begin(), forward.end(), 0);
  CHECK(tickets(7) == forward);  // the seed moves no other order
  simt::set_order(simt::Order::shuffle);
  const std::vector<int> a = tickets(7), again = tickets(7), b = tickets(8);
  CHECK(a == again);
  CHECK(a != b);
  CHECK(a != forward);
  simt::set_order(simt::Order::forward);
  simt::set_seed(before);
}

TEST_CASE("simt: warp shuffles and votes give each lane the value CUDA names, in any order") {
  const int blocks = 2, threads = 64, n = blocks * threads;
  std::vector<int> want(9 * n);
  for (int t = 0; t < n; ++t) {
    const int lane = t % 32, warp0 = t - lane;
    int* w = &want[std::size_t(9 * t)];
    w[0] = warp0 + 3;
    w[1] = lane % 8 >= 2 ? t - 2 : t;
    w[2] = lane < 31 ? t + 1 : t;
    w[3] = t ^ 1;
    w[4] = 32 * warp0 + 31 * 32 / 2;
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) ballot |= unsigned((warp0 + l) % 3 == 0) << l;
    w[5] = int(ballot);
    w[6] = 1;
    w[7] = 0;
    w[8] = 1;
  }
  for (simt::Order o : {simt::Order::forward, simt::Order::reverse, simt::Order::shuffle}) {
    simt::set_order(o);
    int* out = device_alloc<int>(want.size());
    EVOPLAST_LAUNCH(shuffle_and_vote, blocks, threads, 0, nullptr, out);
    std::vector<int> got(want.size());
    REQUIRE(cudaMemcpy(got.data(), out, got.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(got == want);
    cudaFree(out);
  }
  simt::set_order(simt::Order::forward);
}

TEST_CASE("simt: a shuffle over part of a warp fails its launch, naming the kernel, the intrinsic and the mask") {
  int* out = device_alloc<int>(32);
  UNCHECKED_LAUNCH(shuffle_half_a_warp, 1, 32, 0, nullptr, out);
  const cudaError_t e = cudaDeviceSynchronize();
  CHECK(e == cudaErrorLaunchFailure);
  const std::string msg = cudaGetErrorString(e);
  INFO(msg);
  CHECK(msg.find("kernel shuffle_half_a_warp, block (0,0,0), thread (0,0,0): __shfl_sync at test_simulator.cpp:") !=
        std::string::npos);
  CHECK(msg.find("with mask 0x0000ffff: only the full warp's (0xffffffff) is simulated") != std::string::npos);
  simt::clear_error();
  cudaFree(out);
}

TEST_CASE("simt: launches beyond an H100's limits are refused, naming the kernel") {
  float* y = device_alloc<float>(4096);
  try {
    EVOPLAST_LAUNCH(copy_kernel, 2, 2048, 0, nullptr, std::size_t(4096), static_cast<const float*>(y), y);
    FAIL("a launch of 2048 threads per block was accepted");
  } catch (const evoplast::kernels::cuda::CudaError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("launch of copy_kernel") != std::string::npos);
    CHECK(msg.find("2048 threads per block") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(EVOPLAST_LAUNCH(copy_kernel, dim3(1, 70000), 32, 0, nullptr, std::size_t(1),
                                       static_cast<const float*>(y), y),
                       doctest::Contains("y and z at most 65535"), evoplast::kernels::cuda::CudaError);
  CHECK_THROWS_WITH_AS(EVOPLAST_LAUNCH(copy_kernel, 1, 32, 64 << 10, nullptr, std::size_t(1),
                                       static_cast<const float*>(y), y),
                       doctest::Contains("dynamic shared memory"), evoplast::kernels::cuda::CudaError);
  std::vector<float> host(16);
  CHECK_THROWS_WITH_AS(EVOPLAST_LAUNCH(copy_kernel, 1, 32, 0, nullptr, std::size_t(16),
                                       static_cast<const float*>(host.data()), y),
                       doctest::Contains("argument 1"), evoplast::kernels::cuda::CudaError);
  // Refused launches are not sticky: the device still works.
  EVOPLAST_LAUNCH(copy_kernel, 2, 256, 0, nullptr, std::size_t(4096), static_cast<const float*>(y), y);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  cudaFree(y);
}

TEST_CASE("simt: new device memory reads as NaN, and host memory is not device memory") {
  float* y = device_alloc<float>(8);
  std::vector<float> got(8);
  REQUIRE(cudaMemcpy(got.data(), y, 32, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (float v : got) CHECK(std::isnan(v));
  CHECK(cudaMemcpy(got.data(), y, 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);  // past the end
  CHECK(std::string(cudaGetErrorString(cudaGetLastError())).find("not inside one device allocation") !=
        std::string::npos);
  CHECK(cudaFree(y) == cudaSuccess);
  CHECK(cudaFree(y) == cudaErrorInvalidValue);  // twice
  (void)cudaGetLastError();
}

TEST_CASE("simt: a local variable never initialised starts as garbage, in every launch") {
  const std::vector<float> host(4 * 64, 1.0f);
  float* x = device_alloc<float>(host.size());
  float* out = device_alloc<float>(64);
  REQUIRE(cudaMemcpy(x, host.data(), host.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  for (int launch = 0; launch < 2; ++launch) {  // fresh fiber stacks, then reused ones
    CAPTURE(launch);
    EVOPLAST_LAUNCH(sum_without_zero, 1, 64, 0, nullptr, static_cast<const float*>(x), out);
    std::vector<float> got(64);
    REQUIRE(cudaMemcpy(got.data(), out, got.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (float v : got) CHECK(v < -1e38f);  // 0xFEFEFEFE is −1.69e38; the sum of the four ones would be 4
  }
  cudaFree(x);
  cudaFree(out);
}

TEST_CASE("simt: shared memory no thread of the block wrote reads as NaN, not as an earlier block left it") {
  for (simt::Order o : {simt::Order::forward, simt::Order::reverse}) {
    simt::set_order(o);
    float* out = device_alloc<float>(3);
    EVOPLAST_LAUNCH(read_block0s_shared_slot, 3, 64, 0, nullptr, out);
    std::vector<float> got(3);
    REQUIRE(cudaMemcpy(got.data(), out, 12, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(got[0] == 1);
    CHECK(std::isnan(got[1]));
    CHECK(std::isnan(got[2]));
    cudaFree(out);
  }
  simt::set_order(simt::Order::forward);
}

TEST_CASE("simt: the bytes around a __shared__ variable are poisoned for ASan, and its own are not") {
  int* out = device_alloc<int>(4);
  EVOPLAST_LAUNCH(probe_around_shared_row, 2, 32, 0, nullptr, out);
  std::vector<int> got(4);
  REQUIRE(cudaMemcpy(got.data(), out, 16, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(got[0] == 0);
  CHECK(got[1] == 1);
  CHECK(got[2] == 1);
  CHECK(got[3] == 1);
  cudaFree(out);
}

// The child process runs the kernel and dies of ASan's report; its stderr is read back.
TEST_CASE("simt: a kernel reaching past a __shared__ array stops, naming the kernel, the thread and the variable") {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    void* out = nullptr;
    if (cudaMalloc(&out, 4) == cudaSuccess) {
      EVOPLAST_LAUNCH(write_past_shared_row, 1, 6, 0, nullptr, static_cast<float*>(out));
      (void)cudaDeviceSynchronize();
    }
    _exit(0);  // not reached when ASan stops the write
  }
  close(fds[1]);
  std::string report;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) report.append(buffer, std::size_t(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) != 0));
  INFO(report);
  CHECK(report.find("simt: kernel write_past_shared_row, block (0,0,0), thread (5,0,0): shared memory out of "
                    "bounds: byte 20 of __shared__ evoplast::kernels::cuda::(anonymous namespace)::"
                    "write_past_shared_row(float*)::row, which has 20") != std::string::npos);
  CHECK(report.find("AddressSanitizer: use-after-poison") != std::string::npos);
}

// tf32 as cvt.rna.tf32.f32 rounds: to 10 mantissa bits, ties away from zero.
float tf32_reference(float x) {
  const double m = std::ldexp(1.0, 10 - std::ilogb(x));  // 2^(10 − exponent): ulp⁻¹
  const double scaled = std::fabs(double(x)) * m;
  return float(std::copysign(std::floor(scaled + 0.5) / m, double(x)));
}

// c + Σ products as the simulated tensor core sums them (simt.hpp), by other
// means: each addend a whole number of units (cut toward zero), the units
// summed as integers, and the sum cut toward zero to fp32.
float tensor_core_reference(double c, const std::vector<double>& products) {
  double largest = std::fabs(c);
  for (double p : products) largest = std::max(largest, std::fabs(p));
  if (largest == 0) return 0.0f;
  const double unit = std::ldexp(1.0, std::ilogb(largest) - (simt::kTensorCoreBits - 1));
  auto units = std::int64_t(c / unit);  // the conversion cuts toward zero
  for (double p : products) units += std::int64_t(p / unit);
  const double sum = double(units) * unit;
  float d = float(sum);
  if (std::fabs(double(d)) > std::fabs(sum)) d = std::nextafter(d, 0.0f);
  return d;
}

TEST_CASE("simt: the tensor core sum the mma tests hold the simulator to cuts toward zero, losing small addends") {
  // 2^22 + 0.75: fp32 rounds to nearest, 2^22 + 1 (its ulp there is 0.5, the tie to even); the tensor core's 22
  // bits below 2^22 end at 2, so 0.75 is cut away. And −(2^22 + 0.75) is cut toward zero too.
  CHECK(float(0x1p22 + 0.75) == 0x1p22f + 1.0f);
  CHECK(tensor_core_reference(0x1p22, {0.75}) == 0x1p22f);
  CHECK(tensor_core_reference(-0x1p22, {-0.75}) == -0x1p22f);
  CHECK(tensor_core_reference(1.0, {0x1p-30}) == 1.0f);
}

// One warp's D = A·B + C (A 16×K and B K×8 row-major, C and D 16×8) through
// `launch(A, B, C, D)`, in every thread order: each D must be the exact
// products of the operands as `round` rounds them, summed with C as the
// tensor core sums them (tensor_core_reference).
template <class Launch>
void check_warp_mma(int K, float (*round)(float), const Launch& launch) {
  std::vector<float> a(std::size_t(16 * K)), b(std::size_t(K * 8)), c(16 * 8);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 1.0f + float(i) / 97.0f - float(i % 5) * 0.37f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.5f - float(i) / 61.0f + float(i % 3) * 0.113f;
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = float(i % 11) - 5.0f;
  float *A = device_alloc<float>(a.size()), *B = device_alloc<float>(b.size()), *C = device_alloc<float>(c.size());
  float* D = device_alloc<float>(c.size());
  REQUIRE(cudaMemcpy(A, a.data(), a.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(B, b.data(), b.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(C, c.data(), c.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  for (simt::Order o : {simt::Order::forward, simt::Order::reverse, simt::Order::shuffle}) {
    simt::set_order(o);
    launch(static_cast<const float*>(A), static_cast<const float*>(B), static_cast<const float*>(C), D);
    std::vector<float> got(c.size());
    REQUIRE(cudaMemcpy(got.data(), D, got.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 8; ++n) {
        std::vector<double> products;  // of tf32 or bf16 values: exact in a double
        for (int k = 0; k < K; ++k)
          products.push_back(double(round(a[std::size_t(m * K + k)])) * double(round(b[std::size_t(k * 8 + n)])));
        const float want = tensor_core_reference(c[std::size_t(m * 8 + n)], products);
        CHECK_MESSAGE(got[std::size_t(m * 8 + n)] == want, "D[" << m << "][" << n << "]");
      }
  }
  simt::set_order(simt::Order::forward);
  cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(D);
}

TEST_CASE("simt: mma.sync m16n8k8 follows the PTX fragment layout, with operands rounded to tf32") {
  CHECK(tf32_reference(1.0f + 0x1p-11f) == 1.0f + 0x1p-10f);  // a tie goes away from zero
  check_warp_mma(8, tf32_reference, [](const float* A, const float* B, const float* C, float* D) {
    EVOPLAST_LAUNCH(warp_mma, 1, 32, 0, nullptr, -1, A, B, C, D);
  });
}

// bf16 as cvt.rn.bf16x2.f32 rounds: to 8 significant bits, ties to even.
float bf16_reference(float x) {
  const double m = std::ldexp(1.0, 7 - std::ilogb(x));
  return float(std::copysign(std::nearbyint(std::fabs(double(x)) * m) / m, double(x)));
}

TEST_CASE("simt: mma.sync m16n8k16 follows the PTX fragment layout, with operands rounded to bf16") {
  CHECK(bf16_reference(1.0f + 0x1p-8f) == 1.0f);  // a tie goes to the even neighbour
  CHECK(bf16_reference(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);
  check_warp_mma(16, bf16_reference, [](const float* A, const float* B, const float* C, float* D) {
    EVOPLAST_LAUNCH(warp_mma_bf16, 1, 32, 0, nullptr, A, B, C, D);
  });
}

TEST_CASE("simt: a warp collective not reached by every lane is an error naming the kernel and the warp") {
  float* x = device_alloc<float>(16 * 8);
  float* D = device_alloc<float>(16 * 8);
  REQUIRE(cudaMemsetAsync(x, 0, 16 * 8 * 4, nullptr) == cudaSuccess);
  UNCHECKED_LAUNCH(warp_mma, 1, 64, 0, nullptr, 5, static_cast<const float*>(x), static_cast<const float*>(x),
                   static_cast<const float*>(x), D);
  const cudaError_t e = cudaDeviceSynchronize();
  CHECK(e == cudaErrorLaunchFailure);
  const std::string msg = cudaGetErrorString(e);
  CHECK(msg.find("kernel warp_mma") != std::string::npos);
  CHECK(msg.find("warp 0: the warp collective") != std::string::npos);
  CHECK(msg.find("not reached by every lane: thread (5,0,0) ended without it") != std::string::npos);
  simt::clear_error();
  cudaFree(x), cudaFree(D);
}

TEST_CASE("simt: a captured stream runs nothing until its graph launches, and a graph replays its arguments") {
  constexpr std::size_t n = 64;
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  float* y = device_alloc<float>(n);
  float* pinned = nullptr;
  REQUIRE(cudaMallocHost(reinterpret_cast<void**>(&pinned), n * 4) == cudaSuccess);
  for (std::size_t i = 0; i < n; ++i) pinned[i] = float(i);
  REQUIRE(cudaMemsetAsync(y, 0, n * 4, s) == cudaSuccess);
  const auto read = [&] {
    std::vector<float> got(n);
    REQUIRE(cudaMemcpy(got.data(), y, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    return got;
  };
  // The step: y = pinned (copied when it runs), then y += v.
  const auto capture = [&](float v, bool with_copy) {
    REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    if (with_copy) REQUIRE(cudaMemcpyAsync(y, pinned, n * 4, cudaMemcpyHostToDevice, s) == cudaSuccess);
    UNCHECKED_LAUNCH(add_value, 1, 64, 0, s, v, n, y);
    cudaGraph_t g = nullptr;
    REQUIRE(cudaStreamEndCapture(s, &g) == cudaSuccess);
    return g;
  };
  cudaGraph_t g1 = capture(1.0f, true);
  CHECK(read() == std::vector<float>(n, 0.0f));  // captured, not run
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, g1, 0) == cudaSuccess);
  for (std::size_t i = 0; i < n; ++i) pinned[i] = 10.0f * float(i);  // read when the graph's copy runs
  const std::size_t launched = simt::graph_launches();
  REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
  CHECK(simt::graph_launches() == launched + 1);
  auto got = read();
  for (std::size_t i = 0; i < n; ++i) CHECK(got[i] == 10.0f * float(i) + 1.0f);

  // The same work with another argument: updated in place.
  cudaGraph_t g2 = capture(2.0f, true);
  cudaGraphExecUpdateResultInfo info{};
  CHECK(cudaGraphExecUpdate(exec, g2, &info) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
  got = read();
  for (std::size_t i = 0; i < n; ++i) CHECK(got[i] == 10.0f * float(i) + 2.0f);
  // Other work (no copy): refused, and the graph keeps what it had.
  cudaGraph_t g3 = capture(5.0f, false);
  CHECK(cudaGraphExecUpdate(exec, g3, &info) == cudaErrorGraphExecUpdateFailure);
  CHECK(info.result == cudaGraphExecUpdateErrorTopologyChanged);
  (void)cudaGetLastError();
  REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
  got = read();
  for (std::size_t i = 0; i < n; ++i) CHECK(got[i] == 10.0f * float(i) + 2.0f);

  // Waiting or allocating inside a capture is refused and spoils the capture.
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported);
  CHECK(std::string(cudaGetErrorString(cudaGetLastError())).find("cudaStreamSynchronize while a stream captures") !=
        std::string::npos);
  void* p = nullptr;
  CHECK(cudaMalloc(&p, 16) == cudaErrorStreamCaptureUnsupported);
  std::vector<float> pageable(n, 1.0f);
  CHECK(cudaMemcpyAsync(y, pageable.data(), n * 4, cudaMemcpyHostToDevice, s) == cudaErrorStreamCaptureUnsupported);
  cudaGraph_t spoiled = nullptr;
  CHECK(cudaStreamEndCapture(s, &spoiled) == cudaErrorStreamCaptureInvalidated);
  CHECK(spoiled == nullptr);
  (void)cudaGetLastError();

  for (cudaGraph_t g : {g1, g2, g3}) cudaGraphDestroy(g);
  cudaGraphExecDestroy(exec);
  cudaFreeHost(pinned);
  cudaFree(y);
  cudaStreamDestroy(s);
}

// Last: a broken barrier is an execution error, and execution errors stick.
TEST_CASE("simt: a __syncthreads not reached by every thread is an error naming the kernel, and it sticks") {
  float* out = device_alloc<float>(64);
  UNCHECKED_LAUNCH(early_exit, 1, 64, 0, nullptr, out);
  const cudaError_t e = cudaDeviceSynchronize();
  CHECK(e == cudaErrorLaunchFailure);
  const std::string msg = cudaGetErrorString(e);
  CHECK(msg.find("kernel early_exit") != std::string::npos);
  CHECK(msg.find("not reached by every thread: 32 of 64") != std::string::npos);
  std::size_t free = 0, total = 0;
  CHECK(cudaMemGetInfo(&free, &total) == cudaErrorLaunchFailure);
  CHECK(cudaFree(out) == cudaErrorLaunchFailure);
  simt::clear_error();  // what a fresh process would have
  CHECK(cudaFree(out) == cudaSuccess);
}
