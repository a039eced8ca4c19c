#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {
namespace {
unsigned g_max_blocks = 65535u * 32u;
}

unsigned max_blocks() { return g_max_blocks; }
void set_max_blocks(unsigned blocks) { g_max_blocks = blocks ? blocks : 1; }

}  // namespace evoplast::kernels::cuda
