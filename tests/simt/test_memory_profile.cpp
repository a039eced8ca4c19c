// The memory profile's own checks (test_simt_races only: these kernels are
// compiled with the CUDA sources, their accesses reported through races.cpp
// to memory_profile.cpp). Each kernel's pattern has a count any CUDA guide
// gives: 32 consecutive floats are 4 sectors, floats 32 apart are 32; a
// column of a 32-wide float tile is a 32-way bank conflict, of a 33-wide one
// none.
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace evoplast::kernels::cuda {
namespace {

// Thread t copies float t: every request whole and coalesced.
__global__ void copy_consecutive(const float* x, float* y) { y[threadIdx.x] = x[threadIdx.x]; }

// Thread t copies float 32·t into place t: each load touches 32 sectors for 4 sectors' worth of floats.
__global__ void copy_strided(const float* x, float* y) { y[threadIdx.x] = x[32 * threadIdx.x]; }

// Every thread reads float 0: one sector, and the loop reads four rows of 32
// in turn (four requests, one per visit of the same place).
__global__ void broadcast_then_rows(const float* x, float* y) {
  float sum = x[0];
  for (int row = 0; row < 4; ++row) sum += x[32 * row + threadIdx.x];
  y[threadIdx.x] = sum;
}

// A 32 × 32 tile written by columns (32-way conflict), and a 32 × 33 one
// (conflict-free); then every thread reads one word (a broadcast).
__global__ void tile_columns(float* y) {
  __shared__ float tight[32 * 32];
  __shared__ float padded[32 * 33];
  const unsigned t = threadIdx.x;
  for (unsigned c = 0; c < 32; ++c) {
    tight[t * 32 + c] = float(c);
    padded[t * 33 + c] = float(c);
  }
  __syncthreads();
  y[t] = tight[t * 32] + padded[t * 33] + tight[5];
}

// The kernel's counts, by the name the profile gives it.
simt::KernelMemory profile_of(const char* name, const std::map<std::string, simt::KernelMemory>& profile) {
  const auto it = profile.find(name);
  INFO("kernel " << name);
  REQUIRE(it != profile.end());
  return it->second;
}

float* device_floats(std::size_t n) {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMemsetAsync(p, 0, n * sizeof(float), nullptr) == cudaSuccess);
  return static_cast<float*>(p);
}

}  // namespace
}  // namespace evoplast::kernels::cuda
using namespace evoplast::kernels::cuda;

TEST_CASE("simt memory profile: sectors per request of coalesced, strided and broadcast loads") {
  float* x = device_floats(32 * 32);
  float* y = device_floats(64);
  simt::start_memory_profile();
  ::simt::launch("copy_consecutive", copy_consecutive, 1, 64, 0, nullptr, x, y);  // two warps
  ::simt::launch("copy_strided", copy_strided, 1, 32, 0, nullptr, x, y);
  ::simt::launch("broadcast_then_rows", broadcast_then_rows, 1, 32, 0, nullptr, x, y);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const auto profile = simt::stop_memory_profile();

  const simt::KernelMemory consecutive = profile_of("copy_consecutive", profile);
  CHECK(consecutive.blocks == 1);
  CHECK(consecutive.global_load.requests == 2);
  CHECK(consecutive.global_load.units == 8);
  CHECK(consecutive.global_load.ideal == 8);
  CHECK(consecutive.global_store.requests == 2);
  CHECK(consecutive.global_store.units == 8);

  const simt::KernelMemory strided = profile_of("copy_strided", profile);
  CHECK(strided.global_load.requests == 1);
  CHECK(strided.global_load.units == 32);
  CHECK(strided.global_load.ideal == 4);
  CHECK(strided.global_store.units == 4);

  // x[0] by all (1 sector), four rows (4 each).
  const simt::KernelMemory rows = profile_of("broadcast_then_rows", profile);
  CHECK(rows.global_load.requests == 5);
  CHECK(rows.global_load.units == 1 + 4 * 4);
  CHECK(rows.global_load.ideal == 1 + 4 * 4);
  CHECK(rows.shared_load.requests == 0);
  cudaFree(x);
  cudaFree(y);
}

TEST_CASE("simt memory profile: bank conflicts of a tile's columns, gone with a padded row") {
  float* y = device_floats(32);
  simt::start_memory_profile();
  ::simt::launch("tile_columns", tile_columns, 1, 32, 0, nullptr, y);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const simt::KernelMemory tile = profile_of("tile_columns", simt::stop_memory_profile());
  // Stores: 32 columns of each tile: 32 passes each in `tight`, 1 in `padded`.
  CHECK(tile.shared_store.requests == 64);
  CHECK(tile.shared_store.units == 32 * 32 + 32 * 1);
  CHECK(tile.shared_store.ideal == 64);
  // Loads: a column of each (32 and 1 passes), and one word for all (1).
  CHECK(tile.shared_load.requests == 3);
  CHECK(tile.shared_load.units == 32 + 1 + 1);
  CHECK(tile.shared_load.ideal == 3);
  // Nothing is counted once the profile stops.
  ::simt::launch("tile_columns", tile_columns, 1, 32, 0, nullptr, y);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(simt::stop_memory_profile().empty());
  cudaFree(y);
}
