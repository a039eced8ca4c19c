// Builds without cuDNN: the selection still exists and says why it cannot be used.
#include "kernels/cuda_util.cuh"

namespace evoplast::kernels::cuda {

bool cudnn_built() { return false; }
Dnn create_cudnn(Stream) { throw CudaError("EVOPLAST_CONV=cudnn: this build has no cuDNN; unset it to use our convolution"); }
void destroy_cudnn(Dnn) noexcept {}
void conv2d_forward_cudnn(Stream, Dnn, Scratch&, const ConvShape&, const float*, const float*, const float*, float*) {
  throw CudaError("EVOPLAST_CONV=cudnn: this build has no cuDNN; unset it to use our convolution");
}
void conv2d_backward_cudnn(Stream, Dnn, Scratch&, const ConvShape&, const float*, const float*, const float*, float*,
                           float*, float*) {
  throw CudaError("EVOPLAST_CONV=cudnn: this build has no cuDNN; unset it to use our convolution");
}

}  // namespace evoplast::kernels::cuda
