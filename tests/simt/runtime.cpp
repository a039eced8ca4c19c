// The CUDA runtime of the SIMT simulator: device memory (host memory filled
// with 0xFF bytes, tracked so every pointer handed to a copy or a launch can
// be checked), one queue for every stream, copies with the real staging
// rules (a copy from pinned memory reads it when it runs, one from pageable
// memory when it is called), launch-limit checks, errors that stick.
// One host thread drives the device (as in evoplast); not thread-safe.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "device.hpp"

namespace simt {

// One piece of queued work, as a graph holds it.
struct Node {
  std::string kind;  // "kernel <name>", "copy host to device", …: what topology compares
  std::function<void()> work;
};

namespace {

// A stream's capture in progress (one at a time).
struct Capture {
  cudaStream_t stream = nullptr;
  std::vector<Node> nodes;
  std::string invalid;  // why it was invalidated; empty while it is valid
};

constexpr std::size_t kAlign = 256;  // cudaMalloc's alignment
constexpr std::size_t kOptinShared = 227 << 10;

struct CudaState {
  std::map<const char*, std::size_t> device;  // base → bytes, live device allocations
  std::map<const char*, std::size_t> pinned;  // base → bytes, cudaMallocHost
  std::size_t in_use = 0, capacity = std::size_t(80) << 30;
  std::deque<std::function<void()>> queue;
  std::set<cudaStream_t> streams;
  std::optional<Capture> capture;
  std::unordered_map<const void*, int> max_dynamic_shared;  // kernel → opted-in bytes
  cudaError_t sticky = cudaSuccess, last = cudaSuccess;
  cudaError_t detail_code = cudaSuccess;
  std::string detail;  // the message of the last error, for cudaGetErrorString
  std::size_t launches = 0, graph_launches = 0;
};
CudaState& st() {
  static CudaState* s = new CudaState;  // never destroyed: backends may outlive static destruction
  return *s;
}

// The allocation of `map` that holds p (nullptr, 0 if none).
std::pair<const char*, std::size_t> find(const std::map<const char*, std::size_t>& map, const void* p) {
  const char* c = static_cast<const char*>(p);
  auto it = map.upper_bound(c);
  if (it == map.begin()) return {nullptr, 0};
  --it;
  if (c <= it->first + it->second) return *it;
  return {nullptr, 0};
}
bool in(const std::map<const char*, std::size_t>& map, const void* p, std::size_t bytes) {
  const auto [base, size] = find(map, p);
  return base && static_cast<const char*>(p) + bytes <= base + size && (bytes == 0 || static_cast<const char*>(p) < base + size);
}
bool is_pinned(const void* p, std::size_t bytes) { return in(st().pinned, p, bytes); }

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

cudaError_t ok() { return st().sticky; }

void* aligned_new(std::size_t bytes) { return ::operator new(bytes ? bytes : 1, std::align_val_t(kAlign)); }
void aligned_delete(const void* p) { ::operator delete(const_cast<void*>(p), std::align_val_t(kAlign)); }

}  // namespace

namespace device {

cudaError_t enqueue(cudaStream_t stream, const std::string& kind, std::function<void()> work) {
  CudaState& s = st();
  if (s.capture && stream == s.capture->stream) {
    s.capture->nodes.push_back(Node{kind, std::move(work)});
    return cudaSuccess;
  }
  if (s.capture && !stream) {
    const std::string why = kind + " on the legacy stream 0 while a stream captures";
    if (s.capture->invalid.empty()) s.capture->invalid = why;
    return refuse(cudaErrorStreamCaptureImplicit, why);
  }
  s.queue.push_back(std::move(work));
  return cudaSuccess;
}

cudaError_t capture_forbids(const char* call) {
  CudaState& s = st();
  if (!s.capture) return cudaSuccess;
  const std::string why = std::string(call) + " while a stream captures (it waits for the device or allocates)";
  if (s.capture->invalid.empty()) s.capture->invalid = why;
  return refuse(cudaErrorStreamCaptureUnsupported, why);
}

void fail(cudaError_t code, const std::string& message) {
  CudaState& s = st();
  if (s.sticky != cudaSuccess) return;
  std::fprintf(stderr, "simt: %s\n", message.c_str());
  s.sticky = s.last = s.detail_code = code;
  s.detail = "simulator: " + message;
  s.queue.clear();
}

cudaError_t refuse(cudaError_t code, const std::string& message) {
  CudaState& s = st();
  s.last = s.detail_code = code;
  s.detail = "simulator: " + message;
  return code;
}

cudaError_t sticky() { return st().sticky; }

bool is_device_range(const void* p, std::size_t bytes) { return in(st().device, p, bytes); }

std::pair<const char*, std::size_t> allocation_of(const void* p) {
  const auto [base, size] = find(st().device, p);
  if (!base || static_cast<const char*>(p) >= base + size) return {nullptr, 0};
  return {base, size};
}

}  // namespace device

void drain() {
  CudaState& s = st();
  if (device::capture_forbids("work that waits for the device (a synchronising call, or Thrust on the host)")) return;
  while (!s.queue.empty() && s.sticky == cudaSuccess) {
    auto work = std::move(s.queue.front());
    s.queue.pop_front();
    work();
  }
}

bool device_pointer_ok(const char* kernel, int index, const void* p) {
  if (!p || device::is_device_range(p, 0) || is_pinned(p, 0)) return true;
  device::refuse(cudaErrorInvalidValue, std::string("launch of ") + kernel + ": argument " + std::to_string(index) +
                                            " (" + hex(p) + ") is not device memory: a host pointer, or freed");
  return false;
}

void launch_body(const char* kernel, const void* fn, dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                 ThreadBody body) {
  CudaState& s = st();
  if (s.sticky != cudaSuccess) return;
  auto bad = [&](const std::string& why) {
    device::refuse(cudaErrorInvalidConfiguration, std::string("launch of ") + kernel + ": " + why);
  };
  if (stream && !s.streams.count(stream)) return bad("unknown or destroyed stream");
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0)
    return bad("an empty grid or block (" + std::to_string(grid.x) + "×" + std::to_string(grid.y) + "×" +
               std::to_string(grid.z) + " blocks of " + std::to_string(threads) + " threads)");
  if (threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
    return bad(std::to_string(threads) + " threads per block (" + std::to_string(block.x) + "×" +
               std::to_string(block.y) + "×" + std::to_string(block.z) + "): at most 1024, z at most 64");
  if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    return bad("grid " + std::to_string(grid.x) + "×" + std::to_string(grid.y) + "×" + std::to_string(grid.z) +
               ": y and z at most 65535");
  const auto opt = s.max_dynamic_shared.find(fn);
  const std::size_t limit = opt == s.max_dynamic_shared.end() ? device::kStaticShared : std::size_t(opt->second);
  if (smem > limit)
    return bad(std::to_string(smem) + " bytes of dynamic shared memory: at most " + std::to_string(limit) +
               (opt == s.max_dynamic_shared.end() ? " unless opted in with cudaFuncSetAttribute" : ""));
  ++s.launches;
  (void)device::enqueue(stream, std::string("kernel ") + kernel, [kernel, fn, grid, block, body = std::move(body)] {
    std::string error;
    if (!device::run_grid(kernel, fn, grid, block, body, error)) device::fail(cudaErrorLaunchFailure, error);
  });
}

void set_device_memory(std::size_t bytes) { st().capacity = bytes; }
std::size_t launches() { return st().launches; }
std::size_t graph_launches() { return st().graph_launches; }
void clear_error() { st().sticky = st().last = cudaSuccess; }

}  // namespace simt

using simt::st;

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorGraphExecUpdateFailure: return "cudaErrorGraphExecUpdateFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  if (e != cudaSuccess && e == st().detail_code && !st().detail.empty()) return st().detail.c_str();
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return cudaGetErrorName(e);
  }
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = st().last;
  st().last = st().sticky;
  return e;
}
cudaError_t cudaPeekAtLastError() { return st().last; }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return simt::device::refuse(cudaErrorInvalidDevice, "the simulator has one device, 0");
  return simt::ok();
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return simt::ok();
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return simt::device::refuse(cudaErrorInvalidDevice, "the simulator has one device, 0");
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "SIMT simulator (H100 limits)");
  prop->totalGlobalMem = st().capacity;
  prop->sharedMemPerBlock = simt::device::kStaticShared;
  prop->sharedMemPerBlockOptin = simt::kOptinShared;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->multiProcessorCount = 132;
  prop->major = 9;
  prop->minor = 0;
  return simt::ok();
}
cudaError_t cudaDeviceSynchronize() {
  if (const cudaError_t e = simt::device::capture_forbids("cudaDeviceSynchronize")) return e;
  simt::drain();
  return simt::ok();
}
cudaError_t cudaMemGetInfo(std::size_t* free, std::size_t* total) {
  *total = st().capacity;
  *free = st().capacity > st().in_use ? st().capacity - st().in_use : 0;
  return simt::ok();
}

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  *ptr = nullptr;
  if (st().sticky) return st().sticky;
  if (const cudaError_t e = simt::device::capture_forbids("cudaMalloc")) return e;
  if (bytes > st().capacity - std::min(st().capacity, st().in_use))
    return simt::device::refuse(cudaErrorMemoryAllocation,
                                "out of memory: " + std::to_string(bytes >> 20) + " MiB requested, " +
                                    std::to_string((st().capacity - std::min(st().capacity, st().in_use)) >> 20) +
                                    " MiB free of the simulated card's " + std::to_string(st().capacity >> 20));
  void* p = simt::aligned_new(bytes);
  std::memset(p, simt::device::kPoison, bytes);
  st().device[static_cast<const char*>(p)] = bytes;
  st().in_use += bytes;
  *ptr = p;
  return cudaSuccess;
}

namespace {
cudaError_t release_device(void* ptr, const char* call) {
  if (!ptr) return simt::ok();
  auto it = st().device.find(static_cast<const char*>(ptr));
  if (it == st().device.end())
    return simt::device::refuse(cudaErrorInvalidValue, std::string(call) + "(" + simt::hex(ptr) +
                                                           "): not the start of a live device allocation "
                                                           "(freed twice, or never allocated)");
  st().in_use -= it->second;
  st().device.erase(it);
  simt::device::forget_shadow(ptr);
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaFree(void* ptr) {
  if (const cudaError_t e = simt::device::capture_forbids("cudaFree")) return e;
  simt::drain();  // cudaFree synchronises the device
  if (st().sticky) return st().sticky;
  const cudaError_t e = release_device(ptr, "cudaFree");
  if (e == cudaSuccess && ptr) simt::aligned_delete(ptr);
  return e;
}
// Stream-ordered allocation during a capture would make graph memory nodes,
// which the simulator does not model: refused there (stricter than CUDA).
cudaError_t cudaMallocAsync(void** ptr, std::size_t bytes, cudaStream_t) {
  if (const cudaError_t e = simt::device::capture_forbids("cudaMallocAsync")) return e;
  return cudaMalloc(ptr, bytes);
}
cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  if (st().sticky) return st().sticky;
  if (const cudaError_t e = simt::device::capture_forbids("cudaFreeAsync")) return e;
  // Gone for every later call and launch now; the memory itself goes in stream order.
  const cudaError_t e = release_device(ptr, "cudaFreeAsync");
  if (e == cudaSuccess && ptr) return simt::device::enqueue(stream, "free", [ptr] { simt::aligned_delete(ptr); });
  return e;
}
cudaError_t cudaMallocHost(void** ptr, std::size_t bytes) {
  if (const cudaError_t e = simt::device::capture_forbids("cudaMallocHost")) return e;
  void* p = simt::aligned_new(bytes);
  std::memset(p, simt::device::kPoison, bytes);
  st().pinned[static_cast<const char*>(p)] = bytes;
  *ptr = p;
  return simt::ok();
}
cudaError_t cudaFreeHost(void* ptr) {
  if (const cudaError_t e = simt::device::capture_forbids("cudaFreeHost")) return e;
  simt::drain();
  auto it = st().pinned.find(static_cast<const char*>(ptr));
  if (it == st().pinned.end())
    return simt::device::refuse(cudaErrorInvalidValue, "cudaFreeHost(" + simt::hex(ptr) + "): not pinned memory");
  st().pinned.erase(it);
  simt::aligned_delete(ptr);
  return simt::ok();
}

namespace {

// Checks a copy's ranges against its kind; "" when they are fine.
std::string copy_problem(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  const bool dst_dev = simt::device::is_device_range(dst, bytes), src_dev = simt::device::is_device_range(src, bytes);
  const bool dst_any = simt::device::is_device_range(dst, 0), src_any = simt::device::is_device_range(src, 0);
  auto range = [&](const void* p) { return simt::hex(p) + " + " + std::to_string(bytes) + " bytes"; };
  switch (kind) {
    case cudaMemcpyHostToDevice:
      if (!dst_dev) return "destination " + range(dst) + " is not inside one device allocation";
      if (src_any) return "source " + range(src) + " is device memory, but the kind says host";
      return "";
    case cudaMemcpyDeviceToHost:
      if (!src_dev) return "source " + range(src) + " is not inside one device allocation";
      if (dst_any) return "destination " + range(dst) + " is device memory, but the kind says host";
      return "";
    case cudaMemcpyDeviceToDevice:
      if (!dst_dev) return "destination " + range(dst) + " is not inside one device allocation";
      if (!src_dev) return "source " + range(src) + " is not inside one device allocation";
      return "";
    default: return "unsupported copy kind " + std::to_string(int(kind)) + " (name the direction)";
  }
}

cudaError_t copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream, bool async,
                 const char* call) {
  if (st().sticky) return st().sticky;
  if (bytes == 0) return cudaSuccess;
  const std::string problem = copy_problem(dst, src, bytes, kind);
  if (!problem.empty()) return simt::device::refuse(cudaErrorInvalidValue, std::string(call) + ": " + problem);
  using simt::device::enqueue;
  if (!async) {
    if (const cudaError_t e = simt::device::capture_forbids(call)) return e;
    simt::drain();
    if (st().sticky) return st().sticky;
    std::memcpy(dst, src, bytes);
    return cudaSuccess;
  }
  switch (kind) {
    case cudaMemcpyHostToDevice: {
      if (simt::is_pinned(src, bytes))  // reads the source when it runs
        return enqueue(stream, "copy host to device", [=] { std::memcpy(dst, src, bytes); });
      // Pageable memory is staged before the call returns (so not in a graph).
      if (const cudaError_t e = simt::device::capture_forbids("cudaMemcpyAsync from pageable memory")) return e;
      auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                        static_cast<const char*>(src) + bytes);
      return enqueue(stream, "copy host to device", [=] { std::memcpy(dst, staged->data(), bytes); });
    }
    case cudaMemcpyDeviceToHost:
      if (simt::is_pinned(dst, bytes))  // written when it runs: sync before reading
        return enqueue(stream, "copy device to host", [=] { std::memcpy(dst, src, bytes); });
      if (const cudaError_t e = simt::device::capture_forbids("cudaMemcpyAsync into pageable memory")) return e;
      simt::drain();  // into pageable memory the copy is synchronous
      if (st().sticky) return st().sticky;
      std::memcpy(dst, src, bytes);
      return cudaSuccess;
    default: return enqueue(stream, "copy device to device", [=] { std::memcpy(dst, src, bytes); });
  }
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  return copy(dst, src, bytes, kind, nullptr, false, "cudaMemcpy");
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (stream && !st().streams.count(stream))
    return simt::device::refuse(cudaErrorInvalidValue, "cudaMemcpyAsync: unknown or destroyed stream");
  return copy(dst, src, bytes, kind, stream, true, "cudaMemcpyAsync");
}
cudaError_t cudaMemsetAsync(void* ptr, int value, std::size_t bytes, cudaStream_t stream) {
  if (st().sticky) return st().sticky;
  if (!simt::device::is_device_range(ptr, bytes))
    return simt::device::refuse(cudaErrorInvalidValue, "cudaMemsetAsync: " + simt::hex(ptr) + " + " +
                                                            std::to_string(bytes) +
                                                            " bytes is not inside one device allocation");
  return simt::device::enqueue(stream, "memset", [=] { std::memset(ptr, value, bytes); });
}

struct CUstream_st {
  int id;
};
cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  static int next = 1;
  *stream = new CUstream_st{next++};
  st().streams.insert(*stream);
  return simt::ok();
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (const cudaError_t e = simt::device::capture_forbids("cudaStreamDestroy")) return e;
  simt::drain();
  if (!st().streams.erase(stream))
    return simt::device::refuse(cudaErrorInvalidValue, "cudaStreamDestroy: unknown or destroyed stream");
  delete stream;
  return simt::ok();
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (stream && !st().streams.count(stream))
    return simt::device::refuse(cudaErrorInvalidValue, "cudaStreamSynchronize: unknown or destroyed stream");
  if (const cudaError_t e = simt::device::capture_forbids("cudaStreamSynchronize")) return e;
  simt::drain();
  return simt::ok();
}

// Events: the simulator has no clock of its own; elapsed times are 0.
struct CUevent_st {};
cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return simt::ok();
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return simt::ok();
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return simt::ok(); }
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  if (const cudaError_t e = simt::device::capture_forbids("cudaEventSynchronize")) return e;
  simt::drain();
  return simt::ok();
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) {
  *ms = 0;
  return simt::ok();
}

// Graphs: what a capture recorded, and an executable copy of it.
struct CUgraph_st {
  std::vector<simt::Node> nodes;
};
struct CUgraphExec_st {
  std::vector<simt::Node> nodes;
};

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (st().sticky) return st().sticky;
  if (!stream || !st().streams.count(stream))
    return simt::device::refuse(cudaErrorInvalidValue, "cudaStreamBeginCapture: the legacy stream 0, or an unknown one");
  if (st().capture)
    return simt::device::refuse(cudaErrorInvalidValue, "cudaStreamBeginCapture: a stream already captures (the "
                                                       "simulator captures one at a time)");
  st().capture = simt::Capture{stream, {}, {}};
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  *graph = nullptr;
  if (!st().capture || st().capture->stream != stream)
    return simt::device::refuse(cudaErrorInvalidValue, "cudaStreamEndCapture: this stream is not capturing");
  simt::Capture c = std::move(*st().capture);
  st().capture.reset();
  if (!c.invalid.empty())
    return simt::device::refuse(cudaErrorStreamCaptureInvalidated, "the capture was invalidated by " + c.invalid);
  if (st().sticky) return st().sticky;
  *graph = new CUgraph_st{std::move(c.nodes)};
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  const auto& c = st().capture;
  *status = !c || c->stream != stream ? cudaStreamCaptureStatusNone
            : c->invalid.empty()      ? cudaStreamCaptureStatusActive
                                      : cudaStreamCaptureStatusInvalidated;
  return simt::ok();
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = nullptr;
  if (!graph) return simt::device::refuse(cudaErrorInvalidValue, "cudaGraphInstantiate: no graph");
  *exec = new CUgraphExec_st{graph->nodes};
  return simt::ok();
}
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo* info) {
  *info = cudaGraphExecUpdateResultInfo{cudaGraphExecUpdateSuccess, nullptr, nullptr};
  if (!exec || !graph) return simt::device::refuse(cudaErrorInvalidValue, "cudaGraphExecUpdate: no graph");
  bool same = exec->nodes.size() == graph->nodes.size();
  for (std::size_t i = 0; same && i < graph->nodes.size(); ++i) same = exec->nodes[i].kind == graph->nodes[i].kind;
  if (!same) {
    info->result = cudaGraphExecUpdateErrorTopologyChanged;
    return simt::device::refuse(cudaErrorGraphExecUpdateFailure, "cudaGraphExecUpdate: the topology changed");
  }
  exec->nodes = graph->nodes;
  return simt::ok();
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (st().sticky) return st().sticky;
  if (!exec) return simt::device::refuse(cudaErrorInvalidValue, "cudaGraphLaunch: no graph");
  if (st().capture)
    return simt::device::refuse(cudaErrorStreamCaptureUnsupported,
                                "cudaGraphLaunch during a capture (child graphs are not simulated)");
  if (stream && !st().streams.count(stream))
    return simt::device::refuse(cudaErrorInvalidValue, "cudaGraphLaunch: unknown or destroyed stream");
  ++st().graph_launches;
  for (const simt::Node& n : exec->nodes) (void)simt::device::enqueue(stream, n.kind, n.work);
  return simt::ok();
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return simt::ok();
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return simt::ok();
}

cudaError_t simt_func_set_attribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || std::size_t(value) > simt::kOptinShared)
    return simt::device::refuse(cudaErrorInvalidValue, "cudaFuncSetAttribute: dynamic shared memory at most " +
                                                           std::to_string(simt::kOptinShared) + " bytes");
  st().max_dynamic_shared[func] = value;
  return simt::ok();
}
