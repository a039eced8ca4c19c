// Shared memory in the SIMT simulator. A __shared__ variable is a kernel's
// static thread_local (simt.hpp), so the running thread's copy lies in this
// program's TLS block at the offset its symbol gives. Before each block the
// scheduler fills every such variable with kPoison bytes (NaN floats, −1
// integers), as a device allocation is filled, so a kernel that reads shared
// memory no thread of its block wrote sees that, not an earlier block's data.
//
// The variables are found by name in the program's own symbol table: the
// statics of functions in namespace evoplast::kernels::cuda, where every
// kernel lives (kernels/; the simulator's own test kernels too). A linker
// section would be simpler, but GCC ignores a section attribute on the
// statics of templates (they go to their own COMDAT sections), and most
// shared tiles are in templates. Host code's static thread_locals elsewhere
// (a CPU kernel's buffer) are not touched.
//
// Out of bounds. AddressSanitizer puts no redzones around thread_locals, and
// UBSan's bounds check sees an index into an array, not one through a
// pointer (a reduction's `part` handed to a helper). So each variable starts
// on a 64 KiB boundary (simt.hpp), and the bytes of the TLS block that no
// variable holds (at least 16 KiB after each, as one has at most 48 KiB) are
// poisoned for ASan: an access there stops the test with ASan's report,
// after a line from __asan_on_error below naming the kernel, the block, the
// thread and the variable.
#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "device.hpp"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SIMT_ASAN 1
#endif

namespace simt::device {
namespace {

// Bytes at offset in the TLS block of the program.
struct Span {
  std::size_t offset, bytes;
};
struct SharedVariable {
  Span span;
  std::string symbol;  // mangled
};
struct SharedLayout {
  std::vector<SharedVariable> variables;
  std::vector<Span> guards;  // the TLS block's gaps, poisoned for ASan
  std::size_t regs_offset = 0;  // simt::regs, whose address locates the block for a thread
  std::size_t tls_bytes = 0;    // the TLS block's size (PT_TLS)
};

// Local statics of evoplast::kernels::cuda's functions, as g++ mangles them.
constexpr const char kKernelStatic[] = "_ZZN8evoplast7kernels4cuda";
constexpr const char kRegs[] = "_ZN4simt4regsE";

[[noreturn]] void cannot(const char* what) {
  std::fprintf(stderr, "simt: %s: the simulator finds shared memory in the test program's symbol table "
                       "(do not strip it)\n", what);
  std::abort();
}

std::string demangled(const std::string& symbol) {
  int status = 0;
  char* text = abi::__cxa_demangle(symbol.c_str(), nullptr, nullptr, &status);
  std::string out = status == 0 && text ? text : symbol;
  std::free(text);
  return out;
}

// The gaps of the TLS block (tls: every defined TLS symbol; end: the
// segment's size): bytes no variable holds, most of them the room the 64 KiB
// alignment leaves after each shared variable, the rest alignment padding.
std::vector<Span> gaps(std::vector<Span> tls, std::size_t end) {
  std::sort(tls.begin(), tls.end(), [](const Span& a, const Span& b) { return a.offset < b.offset; });
  std::vector<Span> out;
  std::size_t covered = 0;  // the end of the variables so far
  for (const Span& t : tls) {
    if (t.offset > covered) out.push_back({covered, t.offset - covered});
    covered = std::max(covered, t.offset + t.bytes);
  }
  if (end > covered) out.push_back({covered, end - covered});
  return out;
}

SharedLayout read_layout() {
  const int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || fstat(fd, &st) != 0) cannot("cannot read /proc/self/exe");
  const std::size_t size = std::size_t(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) cannot("cannot map /proc/self/exe");
  const char* image = static_cast<const char*>(map);
  const auto* header = reinterpret_cast<const Elf64_Ehdr*>(image);
  const auto* programs = reinterpret_cast<const Elf64_Phdr*>(image + header->e_phoff);
  std::size_t tls_bytes = 0;
  for (unsigned p = 0; p < header->e_phnum; ++p)
    if (programs[p].p_type == PT_TLS) tls_bytes = programs[p].p_memsz;
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(image + header->e_shoff);
  SharedLayout out;
  std::vector<Span> tls;
  bool found_regs = false;
  for (unsigned s = 0; s < header->e_shnum; ++s) {
    if (sections[s].sh_type != SHT_SYMTAB) continue;
    const auto* symbols = reinterpret_cast<const Elf64_Sym*>(image + sections[s].sh_offset);
    const char* names = image + sections[sections[s].sh_link].sh_offset;
    for (std::size_t k = 0; k < sections[s].sh_size / sizeof(Elf64_Sym); ++k) {
      const Elf64_Sym& sym = symbols[k];
      if (ELF64_ST_TYPE(sym.st_info) != STT_TLS || sym.st_shndx == SHN_UNDEF) continue;
      const char* name = names + sym.st_name;
      tls.push_back({sym.st_value, sym.st_size});
      if (std::strcmp(name, kRegs) == 0) {
        out.regs_offset = sym.st_value;
        found_regs = true;
      } else if (sym.st_size > 0 && std::strncmp(name, kKernelStatic, sizeof kKernelStatic - 1) == 0) {
        out.variables.push_back({{sym.st_value, sym.st_size}, name});
      }
    }
  }
  munmap(map, size);
  if (!found_regs) cannot("no symbol simt::regs");
  if (out.variables.empty())
    cannot("no kernel's __shared__ variable (a static thread_local of evoplast::kernels::cuda)");
  for (const SharedVariable& v : out.variables)
    if (v.span.bytes > kStaticShared) {
      std::fprintf(stderr, "simt: __shared__ %s is %zu bytes: a kernel has at most 48 KiB of static shared memory\n",
                   demangled(v.symbol).c_str(), v.span.bytes);
      std::abort();
    }
  out.guards = gaps(std::move(tls), tls_bytes);
  out.tls_bytes = tls_bytes;
  return out;
}

const SharedLayout& layout() {
  static const SharedLayout l = read_layout();
  return l;
}

char* tls_block() { return reinterpret_cast<char*>(&regs) - layout().regs_offset; }  // this thread's

}  // namespace

std::pair<char*, std::size_t> tls_block_range() { return {tls_block(), layout().tls_bytes}; }

std::string shared_variable_at(const void* p, std::size_t* offset) {
  const char* c = static_cast<const char*>(p);
  const char* block = tls_block();
  for (const SharedVariable& v : layout().variables)
    if (c >= block + v.span.offset && c < block + v.span.offset + v.span.bytes) {
      *offset = std::size_t(c - (block + v.span.offset));
      return demangled(v.symbol);
    }
  return "";
}

void poison_shared_memory() {
  char* block = tls_block();
  for (const SharedVariable& v : layout().variables) std::memset(block + v.span.offset, kPoison, v.span.bytes);
#ifdef SIMT_ASAN
  thread_local bool guarded = false;  // the shadow of a thread's TLS is cleared only when the thread starts
  if (!guarded)
    for (const Span& g : layout().guards) ASAN_POISON_MEMORY_REGION(block + g.offset, g.bytes);
  guarded = true;
#endif
}

}  // namespace simt::device

#ifdef SIMT_ASAN
// Called by ASan before its report: where the bad address is in a gap beside a
// shared variable, say which (the nearer, in a gap between two), and who reached it.
extern "C" void __asan_on_error() {
  using namespace simt::device;
  const char* kernel = running_kernel();
  if (!kernel) return;
  const char* address = static_cast<const char*>(__asan_get_report_address());
  const char* block = tls_block();
  const auto in = [&](const Span& g) { return address >= block + g.offset && address < block + g.offset + g.bytes; };
  if (std::none_of(layout().guards.begin(), layout().guards.end(), in)) return;
  // How far byte `at` (from a variable's first byte) lies outside its `bytes`: 1 for either neighbour.
  const auto outside = [](long long at, std::size_t bytes) { return at < 0 ? -at : at - (long long)bytes + 1; };
  const SharedVariable* nearest = nullptr;
  long long at = 0;  // from the nearest variable's first byte
  for (const SharedVariable& v : layout().variables) {
    const long long here = address - (block + v.span.offset);
    if (!nearest || outside(here, v.span.bytes) < outside(at, nearest->span.bytes)) nearest = &v, at = here;
  }
  if (!nearest) return;
  const auto& r = simt::regs;
  std::fprintf(stderr,
               "simt: kernel %s, block (%u,%u,%u), thread (%u,%u,%u): shared memory out of bounds: byte %lld of "
               "__shared__ %s, which has %zu\n",
               kernel, r.block_idx.x, r.block_idx.y, r.block_idx.z, r.thread_idx.x, r.thread_idx.y, r.thread_idx.z, at,
               demangled(nearest->symbol).c_str(), nearest->span.bytes);
}
#endif
