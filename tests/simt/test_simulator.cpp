// The simulator's own checks: each rule it exists to enforce is broken on
// purpose here, and it must say so, naming the kernel.
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cuda_check.hpp"

namespace {

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

// Half of the threads leave before the barrier.
__global__ void early_exit(float* out) {
  if (threadIdx.x >= blockDim.x / 2) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void copy_kernel(std::size_t n, const float* x, float* y) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    y[i] = x[i];
}

template <typename T>
T* device_alloc(std::size_t n) {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
  return static_cast<T*>(p);
}

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

// Last: a broken barrier is an execution error, and execution errors stick.
TEST_CASE("simt: a __syncthreads not reached by every thread is an error naming the kernel, and it sticks") {
  float* out = device_alloc<float>(64);
  EVOPLAST_LAUNCH(early_exit, 1, 64, 0, nullptr, out);
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
