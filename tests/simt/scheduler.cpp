// The block scheduler of the SIMT simulator: the blocks of a grid one after
// another, the threads of a block as fibers (Boost.Context) on the host
// thread that runs the block. A fiber runs until it reaches __syncthreads or
// ends; when every fiber has stopped, the barrier opens if every thread of
// the block is waiting at the same __syncthreads, and the block ends if none
// is; anything else is an error naming the kernel, the barrier and the block.
// Under AddressSanitizer every switch is announced to it, so the fibers'
// stacks are checked like any other.
#include <link.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "device.hpp"

// This file is built without the sanitizers (CMakeLists.txt) into programs
// that have them: SIMT_IN_ASAN_PROGRAM says to announce the switches all the same.
#if defined(__SANITIZE_ADDRESS__) || defined(SIMT_IN_ASAN_PROGRAM)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#endif

namespace simt {

thread_local Registers regs;
uint3 thread_index() { return regs.thread_idx; }
uint3 block_index() { return regs.block_idx; }
dim3 block_dims() { return regs.block_dim; }
dim3 grid_dims() { return regs.grid_dim; }

namespace device {
thread_local ThreadPlace place;

std::string site_name(const std::source_location& s) {
  const char* slash = std::strrchr(s.file_name(), '/');
  return std::string(slash ? slash + 1 : s.file_name()) + ":" + std::to_string(s.line());
}
}  // namespace device

namespace {

using device::place;
using device::site_name;

namespace bc = boost::context;

// ---- order between barriers ----

Order order_from_env() {
  const char* e = std::getenv("EVOPLAST_SIMT_ORDER");
  if (!e || !*e || std::strcmp(e, "forward") == 0) return Order::forward;
  if (std::strcmp(e, "reverse") == 0) return Order::reverse;
  if (std::strcmp(e, "shuffle") == 0) return Order::shuffle;
  std::fprintf(stderr, "simt: EVOPLAST_SIMT_ORDER=%s: use forward, reverse or shuffle\n", e);
  std::exit(2);
}
Order g_order = order_from_env();

// The shuffled order's seed: EVOPLAST_SIMT_SEED, else 12345 (CI's). Every
// launch starts from it, so a failure in shuffled order repeats under the
// same seed; other seeds try other orders.
std::uint32_t seed_from_env() {
  const char* e = std::getenv("EVOPLAST_SIMT_SEED");
  if (!e || !*e) return 12345;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(e, &end, 10);
  if (*end != '\0' || errno != 0 || v > 0xFFFFFFFFull || e[0] == '-') {
    std::fprintf(stderr, "simt: EVOPLAST_SIMT_SEED=%s: use a whole number from 0 to 4294967295\n", e);
    std::exit(2);
  }
  return std::uint32_t(v);
}
std::uint32_t g_seed = seed_from_env();

// ---- host threads: room for the __shared__ variables' thread-local block ----

// Every __shared__ variable is a thread_local on its own 64 KiB (simt.hpp), so
// the program's static TLS block grows 64 KiB or more with each one: 8.25 MiB in
// test_simt_races on 2026-12-07. glibc places that block inside every new
// thread's stack, and a thread made with the default stack (RLIMIT_STACK, 8
// MiB: OpenBLAS's OpenMP workers) failed to start once the block outgrew it
// ("libgomp: Thread creation failed: Invalid argument"). So every thread made
// after start-up (libgomp's, ours) gets the block's size on top of the default.
std::size_t static_tls_bytes() {
  std::size_t bytes = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* total) {
        for (int i = 0; i < info->dlpi_phnum; ++i)
          if (info->dlpi_phdr[i].p_type == PT_TLS) *static_cast<std::size_t*>(total) += info->dlpi_phdr[i].p_memsz;
        return 0;
      },
      &bytes);
  return bytes;
}
const bool g_thread_stacks_hold_tls = [] {
  pthread_attr_t attr;
  std::size_t stack = 0;
  if (pthread_getattr_default_np(&attr) != 0) return false;
  pthread_attr_getstacksize(&attr, &stack);
  const bool set = pthread_attr_setstacksize(&attr, std::max<std::size_t>(stack, 8 << 20) + static_tls_bytes()) == 0 &&
                   pthread_setattr_default_np(&attr) == 0;
  pthread_attr_destroy(&attr);
  return set;
}();

// ---- fiber stacks: mmap'ed with a guard page below (an overflow faults), reused ----

constexpr std::size_t kStackBytes = 256 << 10;
std::size_t page() {
  static const std::size_t p = std::size_t(sysconf(_SC_PAGESIZE));
  return p;
}

class StackPool {
 public:
  ~StackPool() {
    for (void* base : free_) munmap(base, kStackBytes + page());
  }
  bc::stack_context take() {
    void* base;
    if (free_.empty()) {
      base = mmap(nullptr, kStackBytes + page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED) throw std::bad_alloc();
      mprotect(base, page(), PROT_NONE);
    } else {
      base = free_.back();
      free_.pop_back();
    }
    bc::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = static_cast<char*>(base) + page() + kStackBytes;
    return sc;
  }
  // A thread's frames are unpoisoned as they return (or unwind), so the stack comes back clean.
  void give(const bc::stack_context& sc) {
    free_.push_back(static_cast<char*>(sc.sp) - sc.size - page());
  }

 private:
  std::vector<void*> free_;
};
thread_local StackPool t_stacks;

// ---- one GPU thread ----

struct Fiber {
  enum State { ready, waiting, done };
  bc::fiber self;       // resumes this thread
  bc::fiber scheduler;  // inside the thread: resumes the scheduler
  uint3 tid{};
  std::uint32_t index = 0;  // tid, linear
  State state = ready;
  std::source_location site;  // the barrier it waits at
  bool at_warp = false;       // waits at a warp collective, not at __syncthreads
  unsigned warp_barriers = 0;  // warp barriers passed in this block
  const void* stack_bottom = nullptr;
  std::size_t stack_size = 0;
  void* fake_stack = nullptr;  // ASan's, while switched out
};

// Boost's StackAllocator: a pooled stack, whose bounds the fiber keeps for ASan.
struct PooledStack {
  Fiber* owner;
  bc::stack_context allocate() {
    bc::stack_context sc = t_stacks.take();
    owner->stack_bottom = static_cast<char*>(sc.sp) - sc.size;
    owner->stack_size = sc.size;
    return sc;
  }
  void deallocate(bc::stack_context& sc) noexcept { t_stacks.give(sc); }
};

thread_local Fiber* t_running = nullptr;
// Threads of a kernel that has never reached a barrier run without fibers, one
// after another in the same order (the same execution, minus the switches).
thread_local bool t_direct = false;
thread_local bool t_reached_barrier = false;  // in this launch
thread_local std::source_location t_direct_site;
thread_local const char* t_kernel = nullptr;  // the kernel whose grid runs, for the sanitizers' lines
thread_local bool t_abort = false;  // the block failed: waiting threads end at their barrier
thread_local const void* t_host_bottom = nullptr;  // the scheduler's stack, for ASan
thread_local std::size_t t_host_size = 0;
struct AbortThread {};

void asan_start(void** fake_stack, const void* bottom, std::size_t size) {
#ifdef SIMT_ASAN
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}
void asan_finish(void* fake_stack, const void** bottom, std::size_t* size) {
#ifdef SIMT_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}

bc::fiber start(Fiber& f, const ThreadBody& body) {
  return bc::fiber(std::allocator_arg, PooledStack{&f}, [&f, &body](bc::fiber&& sched) {
    f.scheduler = std::move(sched);
    asan_finish(nullptr, &t_host_bottom, &t_host_size);
    try {
      body();
    } catch (const AbortThread&) {
    }
    f.state = Fiber::done;
    asan_start(nullptr, t_host_bottom, t_host_size);  // null: this stack is going away
    return std::move(f.scheduler);
  });
}

void resume(Fiber& f) {
  t_running = &f;
  regs.thread_idx = f.tid;
  place.thread = f.index;
  place.stack = static_cast<const char*>(f.stack_bottom);
  place.stack_bytes = f.stack_size;
  place.active = true;
  void* fake = nullptr;
  asan_start(&fake, f.stack_bottom, f.stack_size);
  f.self = std::move(f.self).resume();
  asan_finish(fake, nullptr, nullptr);
  place.active = false;
  t_running = nullptr;
}

// The host thread's own stack: where a kernel run without fibers keeps its locals.
std::pair<const char*, std::size_t> host_stack() {
  thread_local std::pair<const char*, std::size_t> range = [] {
    pthread_attr_t attr;
    void* low = nullptr;
    std::size_t bytes = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstack(&attr, &low, &bytes);
      pthread_attr_destroy(&attr);
    }
    return std::pair<const char*, std::size_t>(static_cast<const char*>(low), bytes);
  }();
  return range;
}

// A new block's place: its serial number, its index in the grid, no barrier passed yet.
void enter_block(dim3 grid, uint3 bid) {
  static std::uint32_t block_runs = 0;
  place.block_run = ++block_runs;
  place.block = bid.x + grid.x * (bid.y + grid.y * bid.z);
  place.phase = 0;
}

std::string triple(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// The same source line: file names compared by pointer first (one literal per
// file in practice), by text where the pointers differ (the strcmp was a tenth
// of the simulator's time).
bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && (a.file_name() == b.file_name() || std::strcmp(a.file_name(), b.file_name()) == 0);
}

// Every lane of the full warp starting at thread lo waits at the same warp collective.
bool warp_complete(const std::vector<Fiber>& fibers, unsigned lo) {
  const Fiber& first = fibers[lo];
  if (first.state != Fiber::waiting || !first.at_warp) return false;
  for (unsigned k = lo + 1; k < lo + 32; ++k) {
    const Fiber& f = fibers[k];
    if (f.state != Fiber::waiting || !f.at_warp || !same_site(f.site, first.site))
      return false;
  }
  return true;
}

std::vector<unsigned> thread_order(unsigned n, std::mt19937& rng) {
  std::vector<unsigned> seq(n);
  std::iota(seq.begin(), seq.end(), 0u);
  if (g_order == Order::reverse) std::reverse(seq.begin(), seq.end());
  if (g_order == Order::shuffle) std::shuffle(seq.begin(), seq.end(), rng);
  return seq;
}

// The grid's blocks in the order EVOPLAST_SIMT_ORDER names: a GPU runs them
// in any order, at once, so a kernel whose blocks read what other blocks of
// the same launch write gives another result in one of the orders.
std::vector<uint3> block_order(dim3 grid, std::mt19937& rng) {
  std::vector<uint3> blocks;
  blocks.reserve(std::size_t(grid.x) * grid.y * grid.z);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) blocks.push_back({x, y, z});
  if (g_order == Order::reverse) std::reverse(blocks.begin(), blocks.end());
  if (g_order == Order::shuffle) std::shuffle(blocks.begin(), blocks.end(), rng);
  return blocks;
}

// Every thread of one block of a kernel with no barrier, without fibers.
bool run_block_direct(const char* kernel, dim3 grid, dim3 block, uint3 bid, const ThreadBody& body,
                      std::mt19937& rng, std::string& error) {
  device::poison_shared_memory();
  enter_block(grid, bid);
  regs.block_idx = bid;
  regs.block_dim = block;
  regs.grid_dim = grid;
  t_direct = true;
  bool ok = true;
  std::tie(place.stack, place.stack_bytes) = host_stack();
  for (unsigned i : thread_order(block.x * block.y * block.z, rng)) {
    regs.thread_idx = {i % block.x, i / block.x % block.y, i / (block.x * block.y)};
    place.thread = i;
    place.active = true;
    try {
      body();
      place.active = false;
    } catch (const AbortThread&) {
      place.active = false;
      error = "kernel " + std::string(kernel) + " reached a barrier at " + site_name(t_direct_site) +
              " in a launch run without fibers (its first launch never reached a barrier or warp collective); "
              "run with EVOPLAST_SIMT_FIBERS=always";
      ok = false;
      break;
    }
  }
  t_direct = false;
  return ok;
}

// Every thread of one block; false with `error` set when a barrier is broken.
bool run_block(const char* kernel, dim3 grid, dim3 block, uint3 bid, const ThreadBody& body, std::mt19937& rng,
               std::string& error) {
  device::poison_shared_memory();
  enter_block(grid, bid);
  const unsigned n = block.x * block.y * block.z;
  std::vector<Fiber> fibers(n);
  for (unsigned i = 0; i < n; ++i) {
    fibers[i].tid = {i % block.x, i / block.x % block.y, i / (block.x * block.y)};
    fibers[i].index = i;
    fibers[i].self = start(fibers[i], body);
  }
  regs.block_idx = bid;
  regs.block_dim = block;
  regs.grid_dim = grid;
  std::vector<unsigned> seq = thread_order(n, rng);
  const unsigned warps = (n + 31) / 32;
  // seq's threads grouped by warp, each warp's lanes in seq's order: warp w's at [32w, 32w + 32).
  std::vector<unsigned> warp_seq(n), next(warps);
  const auto group_by_warp = [&] {
    for (unsigned w = 0; w < warps; ++w) next[w] = 32 * w;
    for (unsigned i : seq) warp_seq[next[i / 32]++] = i;
  };
  group_by_warp();
  // Of each warp, the lanes now waiting at a warp collective: a warp is
  // checked for a met collective only once all 32 are, not after each lane's
  // turn, and its lanes are found in warp_seq, not by a scan of all of seq.
  std::vector<unsigned> at_collective(warps);
  const auto resume_counting = [&](unsigned i) {
    resume(fibers[i]);
    if (fibers[i].state == Fiber::waiting && fibers[i].at_warp) ++at_collective[i / 32];
  };
  for (;;) {
    if (g_order == Order::shuffle) {  // seq changes only here
      std::shuffle(seq.begin(), seq.end(), rng);
      group_by_warp();
    }
    std::fill(at_collective.begin(), at_collective.end(), 0u);
    for (unsigned i : seq) {
      if (fibers[i].state != Fiber::ready) continue;
      resume_counting(i);
      // A warp whose last lane just met its collective runs on at once, ahead
      // of the other warps (up to a __syncthreads, the end, or a collective
      // some lane has not met), as a warp may on a GPU: a barrier missing
      // between warps shows.
      const unsigned w = i / 32, lo = 32 * w;
      while (at_collective[w] == 32 && warp_complete(fibers, lo)) {
        for (unsigned k = lo; k < lo + 32; ++k) fibers[k].state = Fiber::ready;
        at_collective[w] = 0;
        for (unsigned k = lo; k < lo + 32; ++k) resume_counting(warp_seq[k]);
      }
    }
    // A warp still waiting at a collective: some lane never met it (an error below).
    for (unsigned w = 0; w * 32 < n; ++w) {
      const unsigned lo = w * 32, hi = std::min(n, lo + 32);
      const Fiber* at = nullptr;
      for (unsigned i = lo; i < hi && !at; ++i)
        if (fibers[i].state == Fiber::waiting && fibers[i].at_warp) at = &fibers[i];
      if (!at) continue;
      const Fiber* off = nullptr;
      for (unsigned i = lo; i < hi && !off; ++i)
        if (fibers[i].state != Fiber::waiting || !fibers[i].at_warp ||
            !same_site(fibers[i].site, at->site))
          off = &fibers[i];
      error = "kernel " + std::string(kernel) + ", block " + triple(bid) + ", warp " + std::to_string(w) +
              ": the warp collective at " + site_name(at->site) +
              (off ? " not reached by every lane: thread " + triple(off->tid) +
                         (off->state == Fiber::done ? " ended without it" : " waits at " + site_name(off->site))
                   : " in a partial warp of " + std::to_string(hi - lo) +
                         " lanes (the block's size is not a multiple of 32)");
      t_abort = true;
      for (Fiber& f : fibers)
        if (f.state == Fiber::waiting) resume(f);
      t_abort = false;
      return false;
    }
    const Fiber* first_waiting = nullptr;
    const Fiber* first_done = nullptr;
    const Fiber* elsewhere = nullptr;
    unsigned waiting = 0;
    for (const Fiber& f : fibers) {
      if (f.state == Fiber::done) {
        if (!first_done) first_done = &f;
        continue;
      }
      ++waiting;
      if (!first_waiting) first_waiting = &f;
      else if (!elsewhere && !same_site(f.site, first_waiting->site))
        elsewhere = &f;
    }
    if (waiting == 0) return true;
    if (first_done || elsewhere) {
      const std::string where = "kernel " + std::string(kernel) + ", block " + triple(bid) + ": ";
      if (elsewhere)
        error = where + "threads wait at different __syncthreads: " + site_name(first_waiting->site) + " (thread " +
                triple(first_waiting->tid) + ") and " + site_name(elsewhere->site) + " (thread " +
                triple(elsewhere->tid) + ")";
      else
        error = where + "__syncthreads at " + site_name(first_waiting->site) + " not reached by every thread: " +
                std::to_string(n - waiting) + " of " + std::to_string(n) + " threads ended without it (first: " +
                triple(first_done->tid) + ")";
      t_abort = true;  // let the waiting threads end, so their stacks unwind
      for (Fiber& f : fibers)
        if (f.state == Fiber::waiting) resume(f);
      t_abort = false;
      return false;
    }
    for (Fiber& f : fibers) f.state = Fiber::ready;
    ++place.phase;  // the barrier opened: what any thread of the block did before it, all see now
  }
}

}  // namespace

namespace {

// Stops the running GPU thread at a barrier (of the block, or of its warp) until the scheduler opens it.
void wait_at(std::source_location site, bool warp) {
  Fiber* f = t_running;
  if (!f && t_direct) {
    t_direct_site = site;
    throw AbortThread{};
  }
  if (!f) {
    std::fprintf(stderr, "simt: a barrier at %s outside a kernel\n", site_name(site).c_str());
    std::abort();
  }
  t_reached_barrier = true;
  f->state = Fiber::waiting;
  f->site = site;
  f->at_warp = warp;
  asan_start(&f->fake_stack, t_host_bottom, t_host_size);
  f->scheduler = std::move(f->scheduler).resume();
  asan_finish(f->fake_stack, &t_host_bottom, &t_host_size);
  if (t_abort) throw AbortThread{};
  if (warp) ++f->warp_barriers;
}

}  // namespace

void barrier(std::source_location site) { wait_at(site, false); }
void warp_barrier(std::source_location site) { wait_at(site, true); }
unsigned warp_barriers_passed() { return t_running ? t_running->warp_barriers : 0; }

void set_order(Order order) { g_order = order; }
void set_seed(std::uint32_t seed) { g_seed = seed; }
std::uint32_t seed() { return g_seed; }

namespace device {

bool run_grid(const char* kernel, const void* fn, dim3 grid, dim3 block, const ThreadBody& body,
              std::string& error) {
  // Fibers for a kernel's first launch, and for every launch of one that reached a barrier.
  static std::unordered_map<const void*, bool> reaches_barrier;
  static const bool always_fibers = [] {
    const char* e = std::getenv("EVOPLAST_SIMT_FIBERS");
    return e && std::strcmp(e, "always") == 0;
  }();
  const auto known = reaches_barrier.find(fn);
  const bool direct = !always_fibers && known != reaches_barrier.end() && !known->second;
  std::mt19937 rng(g_seed);
  static std::uint32_t launches = 0;
  place.launch = ++launches;
  t_reached_barrier = false;
  t_kernel = kernel;
  profile_grid(fn);
  for (const uint3& bid : block_order(grid, rng)) {
    bool ok = direct ? run_block_direct(kernel, grid, block, bid, body, rng, error)
                     : run_block(kernel, grid, block, bid, body, rng, error);
    if (std::string failure = take_launch_failure(); ok && !failure.empty()) {
      error = std::move(failure);
      ok = false;
    }
    if (!ok) {
      t_kernel = nullptr;
      return false;
    }
  }
  t_kernel = nullptr;
  // Once a launch reached one, every later launch gets fibers: a launch whose blocks all return early
  // (a chunk of nets with nothing to do) says nothing of the next.
  if (!direct) {
    const bool before = known != reaches_barrier.end() && known->second;
    reaches_barrier[fn] = before || t_reached_barrier;
  }
  return true;
}

const char* running_kernel() { return t_kernel; }

namespace {
std::string t_launch_failure;  // the running grid's first broken rule (one host thread drives the device)
}
void fail_launch(std::string line) {
  if (t_launch_failure.empty()) t_launch_failure = std::move(line);
}
bool launch_failing() { return !t_launch_failure.empty(); }
std::string take_launch_failure() { return std::exchange(t_launch_failure, {}); }

}  // namespace device
}  // namespace simt
