// The memory profile of the SIMT simulator's second program (test_simt_races,
// simt_memory_profile): what a GPU's memory system would make of each warp's
// loads and stores, counted as Nsight Compute counts them, on the CPU.
//
// Why: a card is lent rarely and for minutes; whether a kernel's global
// accesses coalesce and whether its shared tiles are free of bank conflicts
// depends only on the addresses its threads compute, which the simulator
// sees. These are counts, not timings: they say which kernels waste memory
// transactions and whether a change removed the waste, not how fast a card is.
//
// How: races.cpp hands every load and store of a kernel here with the place
// in the code that made it (the instrumented call's return address). The
// accesses of the 32 lanes of a warp made at the same place for the same
// time since their last __syncthreads are one warp-wide request — the
// instruction a GPU would issue for the warp. (A lane that skips an access
// another lane makes, a bounds check at a tile's edge, is out of step at that
// place until the next barrier; its accesses then join later requests. The
// tile kernels' bounds checks are at the edges of the problem, so most
// requests are whole.) When the block ends, each request is counted:
// - device memory: the 32-byte sectors its lanes' bytes touch, against the
//   fewest that hold those bytes (ceil(distinct bytes / 32)): 4 and 4 for 32
//   consecutive floats, 32 and 4 for floats 32 apart;
// - shared memory: its wavefronts, the passes the 32 banks of 4 bytes make:
//   accesses of 4 bytes or less go as one group of 32 lanes, of 8 bytes as two
//   of 16, of 16 bytes as four of 8; a group takes as many passes as the most
//   distinct 4-byte words any bank holds among its lanes' bytes (one word read
//   by many lanes is one broadcast). The fewest is one pass per group.
// Atomics are not counted, nor reads of threadIdx and the like (registers on a GPU).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <map>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "device.hpp"

namespace simt {
namespace device {
namespace {

bool profiling = false;

// One lane's part in a request.
struct LaneAccess {
  std::uintptr_t address;
  std::uint32_t bytes;
  std::uint32_t lane;
};
// A warp-wide request: the accesses its lanes made at one place in the code
// for the n-th time since the block's phase-th __syncthreads.
struct RequestKey {
  const void* pc;
  std::uint32_t warp, phase, n;
  bool operator==(const RequestKey&) const = default;
};
struct Request {
  bool shared = false, write = false;
  std::vector<LaneAccess> lanes;
};
// How many times a thread made an access at a place since the barrier `phase`.
struct PlaceKey {
  const void* pc;
  std::uint32_t thread;
  bool operator==(const PlaceKey&) const = default;
};
struct Visits {
  std::uint32_t phase = 0, n = 0;
};
struct Hash {
  std::size_t operator()(const RequestKey& k) const {
    return std::hash<const void*>()(k.pc) ^ (std::size_t(k.warp) * 0x9E3779B97F4A7C15ull) ^
           (std::size_t(k.phase) << 20) ^ (std::size_t(k.n) << 40);
  }
  std::size_t operator()(const PlaceKey& k) const {
    return std::hash<const void*>()(k.pc) ^ (std::size_t(k.thread) * 0x9E3779B97F4A7C15ull);
  }
};

// The block being profiled: its kernel and its requests so far.
struct BlockRun {
  std::uint32_t run = 0;  // place.block_run; 0: none
  const void* kernel = nullptr;
  std::unordered_map<RequestKey, Request, Hash> requests;
  std::unordered_map<PlaceKey, Visits, Hash> visits;
};
BlockRun current;
std::map<const void*, KernelMemory> totals;  // by kernel function

// The kernel function of the running grid (run_grid records it), named by its symbol.
const void* running_fn = nullptr;

// Device memory: sectors touched, and the fewest that hold the bytes.
void count_global(const Request& r, MemoryTraffic& t) {
  std::vector<std::uintptr_t> sectors, bytes;
  for (const LaneAccess& a : r.lanes)
    for (std::uintptr_t b = a.address; b < a.address + a.bytes; ++b) bytes.push_back(b);
  std::sort(bytes.begin(), bytes.end());
  bytes.erase(std::unique(bytes.begin(), bytes.end()), bytes.end());
  for (std::uintptr_t b : bytes) sectors.push_back(b >> 5);
  sectors.erase(std::unique(sectors.begin(), sectors.end()), sectors.end());  // sorted already
  t.requests += 1;
  t.units += sectors.size();
  t.ideal += (bytes.size() + 31) / 32;
}

// Shared memory: the passes of the banks, and the fewest (one per group of lanes).
void count_shared(const Request& r, MemoryTraffic& t) {
  std::uint32_t widest = 0;
  for (const LaneAccess& a : r.lanes) widest = std::max(widest, a.bytes);
  const std::uint32_t groups = widest <= 4 ? 1 : widest <= 8 ? 2 : 4, lanes_per_group = 32 / groups;
  t.requests += 1;
  for (std::uint32_t g = 0; g < groups; ++g) {
    std::vector<std::uintptr_t> words;  // distinct 4-byte words of the group's lanes
    for (const LaneAccess& a : r.lanes)
      if (a.lane / lanes_per_group == g)
        for (std::uintptr_t w = a.address >> 2; w <= (a.address + a.bytes - 1) >> 2; ++w) words.push_back(w);
    if (words.empty()) continue;
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    std::uint32_t per_bank[32] = {};
    for (std::uintptr_t w : words) ++per_bank[w % 32];
    t.units += *std::max_element(per_bank, per_bank + 32);
    t.ideal += 1;
  }
}

// The requests of the block that ran last, counted into its kernel's totals.
void flush() {
  if (current.run == 0) return;
  KernelMemory& k = totals[current.kernel];
  k.blocks += 1;
  for (const auto& [key, r] : current.requests) {
    if (r.shared) count_shared(r, r.write ? k.shared_store : k.shared_load);
    else count_global(r, r.write ? k.global_store : k.global_load);
  }
  current.requests.clear();
  current.visits.clear();
  current.run = 0;
}

// The program's load address and its function symbols (address → mangled name).
struct FunctionSymbols {
  std::uintptr_t base = 0;
  std::map<std::uintptr_t, std::pair<std::size_t, std::string>> by_address;  // start → size, name
};

FunctionSymbols read_function_symbols() {
  FunctionSymbols out;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        static_cast<FunctionSymbols*>(data)->base = info->dlpi_addr;
        return 1;  // the first object is the program
      },
      &out);
  const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    return out;
  }
  const std::size_t size = std::size_t(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return out;
  const char* image = static_cast<const char*>(map);
  const auto* header = reinterpret_cast<const Elf64_Ehdr*>(image);
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(image + header->e_shoff);
  for (unsigned s = 0; s < header->e_shnum; ++s) {
    if (sections[s].sh_type != SHT_SYMTAB) continue;
    const auto* symbols = reinterpret_cast<const Elf64_Sym*>(image + sections[s].sh_offset);
    const char* names = image + sections[sections[s].sh_link].sh_offset;
    for (std::size_t k = 0; k < sections[s].sh_size / sizeof(Elf64_Sym); ++k)
      if (ELF64_ST_TYPE(symbols[k].st_info) == STT_FUNC && symbols[k].st_shndx != SHN_UNDEF)
        out.by_address[symbols[k].st_value] = {symbols[k].st_size, names + symbols[k].st_name};
  }
  munmap(map, size);
  return out;
}

// A kernel's name as a reader knows it: its template arguments, without its
// namespace, return type and parameter list.
std::string kernel_name(const void* fn) {
  static const FunctionSymbols symbols = read_function_symbols();
  const auto at = std::uintptr_t(fn) - symbols.base;
  const auto it = symbols.by_address.find(at);
  if (it == symbols.by_address.end()) return "?";
  int status = 0;
  char* text = abi::__cxa_demangle(it->second.second.c_str(), nullptr, nullptr, &status);
  std::string name = status == 0 && text ? text : it->second.second;
  std::free(text);
  if (name.rfind("void ", 0) == 0) name.erase(0, 5);
  // The parameter list: the last top-level '(' .
  int depth = 0;
  for (std::size_t i = name.size(); i-- > 0;) {
    if (name[i] == ')') ++depth;
    if (name[i] == '(' && --depth == 0) {
      name.erase(i);
      break;
    }
  }
  for (const std::string ns : {"evoplast::kernels::cuda::", "(anonymous namespace)::"})
    for (std::size_t p; (p = name.find(ns)) != std::string::npos;) name.erase(p, ns.size());
  return name;
}

}  // namespace

void profile_grid(const void* fn) { running_fn = fn; }

void profile_access(const void* pc, const void* address, std::size_t n, bool shared, bool write) {
  if (!profiling || !pc) return;
  // threadIdx and the like are thread_locals beside the __shared__ variables: a GPU's registers.
  const auto* c = static_cast<const char*>(address);
  const auto* regs = reinterpret_cast<const char*>(&::simt::regs);
  if (c >= regs && c < regs + sizeof ::simt::regs) return;
  if (place.block_run != current.run) {
    flush();
    current.run = place.block_run;
    current.kernel = running_fn;
  }
  Visits& v = current.visits[{pc, place.thread}];
  if (v.phase != place.phase) v = {place.phase, 0};
  Request& r = current.requests[{pc, place.thread / 32, place.phase, v.n++}];
  r.shared = shared;
  r.write = write;
  r.lanes.push_back({std::uintptr_t(address), std::uint32_t(n), place.thread % 32});
}

}  // namespace device

void start_memory_profile() {
  device::flush();
  device::totals.clear();
  device::profiling = true;
}

std::map<std::string, KernelMemory> stop_memory_profile() {
  device::flush();
  device::profiling = false;
  std::map<std::string, KernelMemory> out;
  for (const auto& [fn, k] : device::totals) {
    out[device::kernel_name(fn)] += k;
  }
  device::totals.clear();
  return out;
}

}  // namespace simt
