// Checked CUDA calls: every runtime call and launch goes through these.
// CUDA_CHECK throws EngineError naming the file, line, statement and message;
// CUDA_CHECK_PRINT only prints (for destructors, which must not throw).
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "engine/errors.hpp"

#define CUDA_CHECK(stmt)                                                                  \
  do {                                                                                    \
    cudaError_t evoplast_err_ = (stmt);                                                   \
    if (evoplast_err_ != cudaSuccess)                                                     \
      throw ::evoplast::engine::EngineError(std::string(__FILE__) + ":" +                  \
                                            std::to_string(__LINE__) + ": " #stmt ": " +   \
                                            cudaGetErrorString(evoplast_err_));            \
  } while (0)

#define CUDA_CHECK_PRINT(stmt)                                                            \
  do {                                                                                    \
    cudaError_t evoplast_err_ = (stmt);                                                   \
    if (evoplast_err_ != cudaSuccess)                                                     \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #stmt,                  \
                   cudaGetErrorString(evoplast_err_));                                    \
  } while (0)

// After every kernel launch: launch errors now, execution errors at the next sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
