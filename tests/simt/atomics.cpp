// CUDA's atomics for the SIMT simulator. Each is a std::atomic_ref
// read-modify-write (one host thread runs the device, so any would do; this
// one stays right if blocks ever run on several), and tells the race checker
// (races.cpp) of an atomic access, which races with a plain access by another
// thread and not with another atomic, as on a GPU.
#include <algorithm>
#include <atomic>

#include "device.hpp"

namespace {

// The word's old value; `update` gives the new one from it.
template <typename T, typename Update>
T read_modify_write(T* address, Update update) {
  simt::device::note_atomic(address, sizeof(T));
  std::atomic_ref<T> word(*address);
  T old = word.load();
  while (!word.compare_exchange_weak(old, update(old))) {
  }
  return old;
}

template <typename T>
T add(T* address, T val) {
  return read_modify_write(address, [val](T old) { return T(old + val); });
}
template <typename T>
T max(T* address, T val) {
  return read_modify_write(address, [val](T old) { return std::max(old, val); });
}
template <typename T>
T min(T* address, T val) {
  return read_modify_write(address, [val](T old) { return std::min(old, val); });
}
template <typename T>
T exch(T* address, T val) {
  return read_modify_write(address, [val](T) { return val; });
}
template <typename T>
T cas(T* address, T compare, T val) {
  return read_modify_write(address, [compare, val](T old) { return old == compare ? val : old; });
}

}  // namespace

int atomicAdd(int* address, int val) { return add(address, val); }
unsigned atomicAdd(unsigned* address, unsigned val) { return add(address, val); }
unsigned long long atomicAdd(unsigned long long* address, unsigned long long val) { return add(address, val); }
float atomicAdd(float* address, float val) { return add(address, val); }
int atomicMax(int* address, int val) { return max(address, val); }
unsigned atomicMax(unsigned* address, unsigned val) { return max(address, val); }
int atomicMin(int* address, int val) { return min(address, val); }
unsigned atomicMin(unsigned* address, unsigned val) { return min(address, val); }
int atomicExch(int* address, int val) { return exch(address, val); }
unsigned atomicExch(unsigned* address, unsigned val) { return exch(address, val); }
float atomicExch(float* address, float val) { return exch(address, val); }
int atomicCAS(int* address, int compare, int val) { return cas(address, compare, val); }
unsigned atomicCAS(unsigned* address, unsigned compare, unsigned val) { return cas(address, compare, val); }
unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long val) {
  return cas(address, compare, val);
}
