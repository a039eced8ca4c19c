// Builds without cuDNN: the selection still exists and says why it cannot be used.
#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {

bool cudnn_built() { return false; }
void set_conv_impl(ConvImpl impl) {
  if (impl == ConvImpl::cudnn) throw std::runtime_error("this build has no cuDNN");
}
ConvImpl conv_impl() { return ConvImpl::im2col; }
void conv2d_forward_cudnn(Stream, Dnn, Scratch&, const ConvShape&, const float*, const float*, const float*, float*) {
  throw std::runtime_error("this build has no cuDNN");
}
void conv2d_backward_cudnn(Stream, Dnn, Scratch&, const ConvShape&, const float*, const float*, const float*, float*,
                           float*, float*) {
  throw std::runtime_error("this build has no cuDNN");
}

}  // namespace evoplast::kernels::cuda
