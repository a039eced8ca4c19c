// Copies from global to shared memory that do not pass through registers
// (cp.async, sm_80 and later): a thread issues them, commits them as a
// group, and later waits until all but its newest N groups have landed; a
// __syncthreads after the wait makes every thread's landed copies visible to
// the block. The tile kernels keep slices in flight this way while the warps
// multiply an earlier one (kernels/gemm_tile.cuh), with no register held per
// element in flight.
//
// Under nvcc they are the PTX instructions. In the SIMT simulator
// (EVOPLAST_SIMT) a thread's AsyncCopies holds its copies' values, read from
// global memory when issued, and writes them to shared memory only in the
// wait that lets them land: so a slice multiplied before its wait (or before
// the barrier after it) reads what was there before, and the race checker
// sees each write as the waiting thread's, before that barrier.
#pragma once
#include <cuda_runtime.h>

#if defined(EVOPLAST_SIMT)
#include <cstdio>
#include <cstdlib>
#endif

namespace evoplast::kernels::cuda {

// One thread's copies in flight: at most kCapacity issued and not yet landed.
template <int kCapacity>
class AsyncCopies {
 public:
  // dst = *src, 4 bytes, landing by a later wait; dst in shared memory, src
  // in global memory, or null for a 0 (the copy's ignore-src: nothing read).
  __device__ __forceinline__ void copy(float* dst, const float* src) {
#if defined(EVOPLAST_SIMT)
    if (count_ == kCapacity) {
      std::fprintf(stderr, "simt: more than %d asynchronous copies in flight in one thread\n", kCapacity);
      std::abort();
    }
    pending_[count_++] = {dst, src ? *src : 0.0f, open_};
#else
    const auto at = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile(
        "{\n"
        "  .reg .pred ignore;\n"
        "  setp.eq.u64 ignore, %1, 0;\n"
        "  cp.async.ca.shared.global [%0], [%1], 4, ignore;\n"
        "}\n" ::"r"(at),
        "l"(src)
        : "memory");
#endif
  }
  // Closes the group of the copies issued since the last commit (an empty
  // group too: the waits count groups).
  __device__ __forceinline__ void commit() {
#if defined(EVOPLAST_SIMT)
    ++open_;
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
  }
  // Returns when every committed group but the newest kNewest has landed.
  template <int kNewest>
  __device__ __forceinline__ void wait() {
    static_assert(kNewest >= 0, "a wait leaves 0 or more groups in flight");
#if defined(EVOPLAST_SIMT)
    int kept = 0;
    for (int i = 0; i < count_; ++i) {
      if (pending_[i].group + kNewest < open_) *pending_[i].dst = pending_[i].value;
      else pending_[kept++] = pending_[i];
    }
    count_ = kept;
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kNewest) : "memory");
#endif
  }

 private:
#if defined(EVOPLAST_SIMT)
  struct Pending {
    float* dst;
    float value;
    unsigned group;
  };
  Pending pending_[kCapacity];
  int count_ = 0;
  unsigned open_ = 0;  // the group being filled
#endif
};

}  // namespace evoplast::kernels::cuda
