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

// One thread's copies in flight: at most kCapacity floats' worth issued and not yet landed.
template <int kCapacity>
class AsyncCopies {
 public:
  // dst = *src, 4 bytes, landing by a later wait; dst in shared memory, src
  // in global memory, or null for a 0 (the copy's ignore-src: nothing read).
  __device__ __forceinline__ void copy(float* dst, const float* src) {
#if defined(EVOPLAST_SIMT)
    issue(dst, float4{src ? *src : 0.0f, 0.0f, 0.0f, 0.0f}, 1);
#else
    issue<4>(dst, src);
#endif
  }
  // dst[0, 4) = src[0, 4), 16 bytes, landing by a later wait; dst and src
  // 16-byte aligned, src null for four 0s. In the simulator one 16-byte
  // read when issued and one 16-byte store when it lands, as on a GPU (so
  // the memory profile counts its sectors and bank passes as one access's,
  // and a misaligned address fails), taking four of the capacity's places.
  __device__ __forceinline__ void copy4(float* dst, const float* src) {
#if defined(EVOPLAST_SIMT)
    issue(dst, src ? *reinterpret_cast<const float4*>(src) : float4{0.0f, 0.0f, 0.0f, 0.0f}, 4);
#else
    issue<16>(dst, src);
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
      Pending& c = pending_[i];
      if (c.group + kNewest >= open_) {
        pending_[kept++] = c;
      } else {
        if (c.width == 4) *reinterpret_cast<float4*>(c.dst) = c.value;
        else *c.dst = c.value.x;
        floats_ -= c.width;
      }
    }
    count_ = kept;
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kNewest) : "memory");
#endif
  }

 private:
#if !defined(EVOPLAST_SIMT)
  // cp.async of kBytes (4 or 16) from src to dst, zeros where src is null.
  template <int kBytes>
  __device__ __forceinline__ static void issue(float* dst, const float* src) {
    const auto at = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile(
        "{\n"
        "  .reg .pred ignore;\n"
        "  setp.eq.u64 ignore, %1, 0;\n"
        "  cp.async.ca.shared.global [%0], [%1], %2, ignore;\n"
        "}\n" ::"r"(at),
        "l"(src), "n"(kBytes)
        : "memory");
  }
#else
  struct Pending {
    float* dst;
    float4 value;  // its first `width` floats
    int width;     // 1 or 4
    unsigned group;
  };
  void issue(float* dst, float4 value, int width) {
    if (floats_ + width > kCapacity) {
      std::fprintf(stderr, "simt: more than %d floats of asynchronous copies in flight in one thread\n",
                   kCapacity);
      std::abort();
    }
    pending_[count_++] = {dst, value, width, open_};
    floats_ += width;
  }
  Pending pending_[kCapacity];
  int count_ = 0, floats_ = 0;  // copies in flight, and the floats they carry
  unsigned open_ = 0;           // the group being filled
#endif
};

}  // namespace evoplast::kernels::cuda
