// Launch-wide settings: the block cap of elementwise kernels, scratch poisoning.
#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {
namespace {
unsigned g_max_blocks = 65535u * 32u;
bool g_poison_scratch = [] {
  const char* e = std::getenv("EVOPLAST_POISON_SCRATCH");
  return e && std::strcmp(e, "1") == 0;
}();
}  // namespace

unsigned max_blocks() { return g_max_blocks; }
void set_max_blocks(unsigned blocks) { g_max_blocks = blocks ? blocks : 1; }
bool poison_scratch() { return g_poison_scratch; }
void set_poison_scratch(bool on) { g_poison_scratch = on; }

}  // namespace evoplast::kernels::cuda
