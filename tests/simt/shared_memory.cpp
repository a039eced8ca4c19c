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
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "device.hpp"

namespace simt::device {
namespace {

// A kernel's static: bytes at offset in the TLS block of the program.
struct Span {
  std::size_t offset, bytes;
};
struct SharedLayout {
  std::vector<Span> spans;
  std::size_t regs_offset = 0;  // simt::regs, whose address locates the block for a thread
};

// Local statics of evoplast::kernels::cuda's functions, as g++ mangles them.
constexpr const char kKernelStatic[] = "_ZZN8evoplast7kernels4cuda";
constexpr const char kRegs[] = "_ZN4simt4regsE";

[[noreturn]] void cannot(const char* what) {
  std::fprintf(stderr, "simt: %s: the simulator finds shared memory in the test program's symbol table "
                       "(do not strip it)\n", what);
  std::abort();
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
  const auto* sections = reinterpret_cast<const Elf64_Shdr*>(image + header->e_shoff);
  SharedLayout out;
  bool found_regs = false;
  for (unsigned s = 0; s < header->e_shnum; ++s) {
    if (sections[s].sh_type != SHT_SYMTAB) continue;
    const auto* symbols = reinterpret_cast<const Elf64_Sym*>(image + sections[s].sh_offset);
    const char* names = image + sections[sections[s].sh_link].sh_offset;
    for (std::size_t k = 0; k < sections[s].sh_size / sizeof(Elf64_Sym); ++k) {
      const Elf64_Sym& sym = symbols[k];
      if (ELF64_ST_TYPE(sym.st_info) != STT_TLS || sym.st_shndx == SHN_UNDEF) continue;
      const char* name = names + sym.st_name;
      if (std::strcmp(name, kRegs) == 0) {
        out.regs_offset = sym.st_value;
        found_regs = true;
      } else if (sym.st_size > 0 && std::strncmp(name, kKernelStatic, sizeof kKernelStatic - 1) == 0) {
        out.spans.push_back({sym.st_value, sym.st_size});
      }
    }
  }
  munmap(map, size);
  if (!found_regs) cannot("no symbol simt::regs");
  if (out.spans.empty()) cannot("no kernel's __shared__ variable (a static thread_local of evoplast::kernels::cuda)");
  return out;
}

}  // namespace

void poison_shared_memory() {
  static const SharedLayout layout = read_layout();
  char* block = reinterpret_cast<char*>(&regs) - layout.regs_offset;  // this thread's TLS block
  for (const Span& s : layout.spans) std::memset(block + s.offset, kPoison, s.bytes);
}

}  // namespace simt::device
