// The CUDA implementations of every kernel family, as launchers on a stream.
// Same shapes and population-major layouts as the CPU versions in
// kernels/*.hpp (float32 only); every pointer is device memory unless the
// comment says host. No CUDA header is needed to include this file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>

#include "kernels/common.hpp"
#include "kernels/data.hpp"
#include "kernels/plasticity.hpp"
#include "kernels/sparsity.hpp"

struct CUstream_st;
struct cublasContext;

namespace evoplast::kernels::cuda {

using Stream = CUstream_st*;
using Blas = cublasContext*;

// The most blocks an elementwise kernel is launched with (65 535 · 32);
// grid-stride loops cover the rest. Tests lower it to exercise those loops.
unsigned max_blocks();
void set_max_blocks(unsigned blocks);

// Poison scratch: every region the arena hands out is first filled with 0xFF
// bytes (NaN) in stream order, so a kernel that reads scratch it did not
// write shows. Off by default (it costs a memset per use); on where
// $EVOPLAST_POISON_SCRATCH=1, and in the simulator's tests.
bool poison_scratch();
void set_poison_scratch(bool on);

// Grow-only device scratch owned by the caller (the backend's arena).
struct Scratch {
  virtual ~Scratch() = default;
  virtual float* floats(int slot, std::size_t n) = 0;  // slot: independent regions
};

// Row-major strided-batched GEMM: C_b = α·op(A_b)·op(B_b) + β·C_b, by cuBLAS
// (the vendor yardstick, default) or our tiled kernel; $EVOPLAST_GEMM=tiled
// or set_gemm_impl chooses. Every conv and dense layer goes through it.
enum class GemmImpl { cublas, tiled };
void set_gemm_impl(GemmImpl impl);
GemmImpl gemm_impl();
// The arithmetic of every GEMM-shaped kernel: fp32 (plain GEMMs by the
// implementation above; our tile kernels — implicit-GEMM convolutions, fused
// steps — by FMAs), or our tile kernel for all of them on tensor cores at
// tf32 (operands rounded to 10 mantissa bits; about 1e-3 relative error per
// product), tf32x3 (split TF32: three mmas per step, about fp32's accuracy)
// or bf16 (operands rounded to 7 mantissa bits, about 8e-3 per product; half
// the mmas of tf32). $EVOPLAST_PRECISION or set_gemm_precision chooses; fp32
// by default (the CPU reference's arithmetic).
enum class Precision { fp32, tf32, tf32x3, bf16 };
void set_gemm_precision(Precision precision);
Precision gemm_precision();
const char* precision_name(Precision precision);  // "fp32", "tf32", "tf32x3", "bf16"
// The shared tile sets this build's tile kernels take turns in: 3, or 2 or 1
// in a build for timing what the sets buy; and whether their slices are
// copied by cp.async (the default) or loaded through registers
// (kernels/gemm_tile.cuh).
constexpr int kDefaultTileBuffers = 3;
int tile_buffers();
bool tile_copies_async();
std::optional<Precision> parse_precision(const char* name);  // by precision_name; nullopt for others
// ws: where our tiled GEMM may split a long sum over blocks (scratch slot 8;
// kernels/gemm_plan.hpp); null: it does not.
void gemm(Blas h, bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          long long strideA, const float* B, int ldb, long long strideB, float beta, float* C, int ldc,
          long long strideC, int batch, Scratch* ws = nullptr);

// Convolution: ours as an implicit GEMM over all P nets (the default: the
// tile kernel at the GEMM precision, patches gathered as tiles are loaded),
// ours by im2col (a patch matrix in scratch, then the GEMM above: cuBLAS in
// fp32), or cuDNN's grouped convolution (the vendor yardstick, in builds that
// found cuDNN); $EVOPLAST_CONV=im2col|cudnn or set_conv_impl chooses (cudnn
// where the build has none: ours, and set_conv_impl throws). The fused conv
// steps are implicit GEMMs. The cudnn entry points take the handle as Dnn.
enum class ConvImpl { implicit_gemm, im2col, cudnn };
bool cudnn_built();  // false where cuDNN was not found at build time (and in the simulator)
void set_conv_impl(ConvImpl impl);
ConvImpl conv_impl();
using Dnn = void*;
// A cuDNN handle on a stream (opens libcudnn at first use; throws CudaError
// naming what to do where it is missing), and its release.
Dnn create_cudnn(Stream st);
void destroy_cudnn(Dnn dnn) noexcept;
void conv2d_forward_cudnn(Stream st, Dnn dnn, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                          const float* b, float* y);
void conv2d_backward_cudnn(Stream st, Dnn dnn, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                           const float* dy, float* dx, float* dw, float* db);

// relu: y through the ReLU after the convolution, applied as y is written
// (what relu_forward would leave in place).
void conv2d_forward(Stream st, Blas h, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                    const float* b, bool relu, float* y);
void conv2d_backward(Stream st, Blas h, Scratch& ws, const ConvShape& s, const float* x, const float* w,
                     const float* dy, float* dx, float* dw, float* db);
// conv → ReLU → 2×2 max-pool (→ dropout where dropout.rate > 0) in one pass
// (an implicit GEMM at the GEMM precision): y (P, N, Cout, Ho/2, Wo/2) and argmax
// (P, N, Cout, Ho/2, Wo/2; the index in the Ho×Wo plane) as conv2d_forward,
// relu_forward, maxpool2d_forward and dropout_forward would leave them; the
// ReLU's output act (P, N, Cout, Ho, Wo) is written only where act is not
// null (for the plasticity rules; Ho and Wo even, else invalid_argument).
// Its backward: dx, dw, db as dropout_backward, maxpool2d_backward,
// relu_backward and conv2d_backward would give from dy (P, N, Cout, Ho/2,
// Wo/2; not changed), the convolution's error made as it is read (y > 0:
// kept, and the ReLU passed).
void conv2d_relu_pool_forward(Stream st, const ConvShape& s, const DropoutParams& dropout, const float* x,
                              const float* w, const float* b, float* act, float* y, std::int32_t* argmax);
void conv2d_relu_pool_backward(Stream st, Scratch& ws, const ConvShape& s, const DropoutParams& dropout,
                               const float* x, const float* w, const float* y, const std::int32_t* argmax,
                               const float* dy, float* dx, float* dw, float* db);
// How the fused backward passes (conv2d_relu_pool_backward,
// conv2d_input_grad_pooled, the pooled conv2d_plasticity_grads) read a
// conv's error made from the pool above it: staged (the default) — one
// elementwise pass stores it for a chunk of nets in scratch (slot 1;
// conv_plan.hpp's staged_error_nets), then the implicit GEMMs read it as a
// stored error — or gathered as each tile loads (three loads and a compare
// per element, each element read K² times by the input gradient's windows).
// The same values summed in the same order: the same bits either way. On an
// H200 (2026-12-04) the gathered conv2 backward at P = 64 took 21.0 ms, the
// three steps composed 15.0. $EVOPLAST_POOLED_ERROR=staged|gathered or
// set_pooled_error_read chooses.
enum class PooledErrorRead { staged, gathered };
void set_pooled_error_read(PooledErrorRead read);
PooledErrorRead pooled_error_read();
// How a conv plastic layer's [g; h] is summed where its 2·Out stacked rows
// take more than one 64-row tile (conv2d_plasticity_grads): as a pair of
// products, the error rows and the Hebbian rows, over one pass of the image
// patches (the default), or as stacked tiles that each load the patches (how
// a layer of at most 32 units is always summed). The same sums in the same
// order: the same bits either way. For bench_kernels' A/B and the tests.
enum class StackedRowsSum { pair, tiles };
void set_stacked_rows_sum(StackedRowsSum sum);
StackedRowsSum stacked_rows_sum();
// Feedback alignment in a mixed population, as an implicit GEMM: dx through each
// net's own weights w or, where use_fb[p] (device, P), its fixed feedback
// matrix fb (both (P, Out, In) / (P, Cout, Cin, K, K)), read where they lie.
void conv2d_input_grad_picked(Stream st, Scratch& ws, const ConvShape& s, const std::uint8_t* use_fb,
                              const float* x, const float* w, const float* fb, const float* dy, float* dx);
// A conv plastic layer's input gradient with its error e made from the pool
// above it as it is read (PooledConvError, mode a device table), as an
// implicit GEMM: through each net's w, or where use_fb (device, P; null: none) its fb.
// Only nets on keep get their dx written: one on DFA or none routes every
// hidden layer's error, so nothing reads what would come down to it.
void conv2d_input_grad_pooled(Stream st, Scratch& ws, const ConvShape& s, const PooledConvError& e,
                              const std::uint8_t* use_fb, const float* x, const float* w, const float* fb, float* dx);
// A dense layer's input gradient by our tile kernel through each net's w, or
// where use_fb (device, P; null: none) its fb; only the nets on keep (mode:
// device, P; null: all) get their dx written.
void dense_input_grad_picked(Stream st, const DenseShape& s, const HiddenError* mode, const std::uint8_t* use_fb,
                             const float* w, const float* fb, const float* dy, float* dx);
void dense_forward(Stream st, Blas h, Scratch& ws, const DenseShape& s, const float* x, const float* w,
                   const float* b, float* y);
// Each net's weights w (P, Out, In) stepped by Adadelta (rates lr: P, device) as
// their gradient dyᵀ·x leaves our tile GEMM's accumulators; sq_avg and
// acc_delta (P, Out, In) its state.
void dense_weight_adadelta(Stream st, const DenseShape& s, const float* lr, float rho, float eps, const float* x,
                           const float* dy, float* w, float* sq_avg, float* acc_delta);
void dense_backward(Stream st, Blas h, Scratch& ws, const DenseShape& s, const float* x, const float* w,
                    const float* dy, float* dx, float* dw, float* db);
void maxpool2d_forward(Stream st, const PoolShape& s, const float* x, float* y, std::int32_t* argmax);
void maxpool2d_backward(Stream st, const PoolShape& s, const float* dy, const std::int32_t* argmax, float* dx);
// The pool's backward and the ReLU's before it in one pass: dx as
// maxpool2d_backward then relu_backward give it, the ReLU's sign read from
// the pooled output y (planes, Ho, Wo), the window's maximum.
void maxpool2d_relu_backward(Stream st, const PoolShape& s, const float* dy, const std::int32_t* argmax,
                             const float* y, float* dx);
void relu_forward(Stream st, std::size_t n, const float* x, float* y);
void relu_backward(Stream st, std::size_t n, const float* y, const float* dy, float* dx);
void dropout_forward(Stream st, int P, std::size_t per_net, const DropoutParams& d, const float* x, float* y);
void dropout_backward(Stream st, int P, std::size_t per_net, const DropoutParams& d, const float* dy, float* dx);
void log_softmax_nll_forward(Stream st, Scratch& ws, int P, int N, int C, const float* logits,
                             const std::int32_t* labels, float* logp, float* loss);
void log_softmax_nll_backward(Stream st, int P, int N, int C, const float* logp, const std::int32_t* labels,
                              float* dlogits);
void count_correct(Stream st, int P, int N, int C, const float* scores, const std::int32_t* labels,
                   std::int64_t* correct);
// lr: device (P).
void sgd_step(Stream st, int P, std::size_t per_net, const float* lr, float* w, const float* g);
void adadelta_step(Stream st, int P, std::size_t per_net, const float* lr, float rho, float eps, float* w,
                   const float* g, float* sq_avg, float* acc_delta);
void fill(Stream st, float* x, std::size_t n, float value);

// Plasticity (kernels/plasticity.hpp); coeffs and strength are device arrays of P.
void stack_error_and_hebb(Stream st, int P, int N, int Out, int S, const PlasticityCoeffs* coeffs,
                          const float* e, const float* y, const std::int32_t* labels, float* theta, float* error_hebb,
                          float* mean_y, float* mean_y2);
// A conv plastic layer's [g; h] as an implicit GEMM without the stacked rows in
// memory: the weight-gradient pass over [e | ŷ/(N·S)] (s.Cout = Out units),
// each row made as the loaders read it from e and y (P, N, Out, Ho, Wo) and
// θ (P, Out) as it is; then, in one pass, the error rows' sums and each
// unit's ⟨y⟩, ⟨y²⟩ (P, Out) and θ's move. grad_hebb (P, 2·Out, Cin·K·K),
// the error half of grad_hebb_bias (P, 2·Out), the statistics and θ as
// stack_error_and_hebb (no labels) and conv2d_backward over its 2·Out rows
// give them; grad_hebb_bias's Hebbian half (read by nothing) is not written.
void conv2d_plasticity_grads(Stream st, Scratch& ws, const ConvShape& s, const PlasticityCoeffs* coeffs,
                             const float* x, const float* e, const float* y, float* theta, float* grad_hebb,
                             float* grad_hebb_bias, float* mean_y, float* mean_y2);
// The same with e made from the pool above the layer as it is read
// (PooledConvError, mode a device table): e is never stored.
void conv2d_plasticity_grads(Stream st, Scratch& ws, const ConvShape& s, const PlasticityCoeffs* coeffs,
                             const float* x, const PooledConvError& e, const float* y, float* theta,
                             float* grad_hebb, float* grad_hebb_bias, float* mean_y, float* mean_y2);
// Both of a conv plastic layer's backward passes under a ReLU and pool:
// conv2d_input_grad_pooled's dx (none where dx is null) and the pooled
// conv2d_plasticity_grads' outputs (grads), with the error staged once per
// chunk of nets for both where each pass alone stages it (the same values:
// the same bits as the two calls).
struct ConvPlasticGrads {
  const PlasticityCoeffs* coeffs;  // (P), device
  const float* y;                  // (P, N, Out, Ho, Wo)
  float* theta;                    // (P, Out): read by the rows, then moved
  float* grad_hebb;                // (P, 2·Out, Cin, K, K)
  float* grad_hebb_bias;           // (P, 2·Out): the error half written
  float* mean_y;                   // (P, Out)
  float* mean_y2;                  // (P, Out)
};
void conv2d_plastic_backward_pooled(Stream st, Scratch& ws, const ConvShape& s, const PooledConvError& e,
                                    const std::uint8_t* use_fb, const float* x, const float* w, const float* fb,
                                    float* dx, const ConvPlasticGrads& grads);
void plasticity_bound_rows(Stream st, int P, int Out, int In, const PlasticityCoeffs* coeffs, float* w);
// The dense plasticity step with g and h computed by our tile kernel and the
// update fused into that GEMM's epilogue:
// s.Out units; error_hebb (P, N, 2·Out) from stack_error_and_hebb.
void plasticity_update_dense_fused(Stream st, const DenseShape& s, const PlasticityCoeffs* coeffs, const float* x,
                                   const float* error_hebb, const float* mean_x, const float* mean_y,
                                   const float* mean_y2, float* w, float* sq_avg, float* acc_delta, float* omega);
void route_hidden_error(Stream st, int P, std::size_t per_net, const HiddenError* mode, const float* dfa_e,
                        const float* y, bool relu_after, float* e);
void pick_per_net(Stream st, int P, std::size_t per_net, const std::uint8_t* use_b, const float* a, const float* b,
                  float* out);
void pre_mean_dense(Stream st, const DenseShape& s, const float* x, float* mean_x);
void pre_mean_conv(Stream st, const ConvShape& s, const float* x, float* mean_x);
void plasticity_update(Stream st, int P, int Out, int In, const PlasticityCoeffs* coeffs, const float* grad_hebb,
                       const float* mean_x, const float* mean_y, const float* mean_y2, float* w, float* sq_avg,
                       float* acc_delta, float* omega);
void plasticity_bias_update(Stream st, int P, int Out, const PlasticityCoeffs* coeffs, const float* gb,
                            const float* mean_y, float* b, float* sq_avg, float* acc_delta);
void ewc_accumulate_fisher(Stream st, int P, std::size_t per_net, float scale, const float* g, float* fisher);
void ewc_proximal_step(Stream st, int P, std::size_t per_net, const float* strength, const float* fisher,
                       const float* anchor, float* w);
void mask_logits(Stream st, int P, int N, int C, const std::uint8_t* allowed, float* logits);
void flag_nonfinite(Stream st, int P, std::size_t per_net, const float* x, std::uint8_t* flags);

// Sparsity (kernels/sparsity.hpp); params are device arrays of P.
void kwta_forward(Stream st, int P, int N, int units, const KwtaParams* params, float* y, float* scale);
void kwta_backward(Stream st, int P, int N, int units, const KwtaParams* params, const float* y,
                   const float* scale, const float* dy, float* dx);

// Data (kernels/data.hpp).
void gather_batch(Stream st, const GatherShape& s, const std::uint8_t* images, const std::uint8_t* labels,
                  const std::int32_t* order, const std::int32_t* index, const std::int32_t* task, const float* mean, const float* stddev,
                  const std::uint16_t* perm, const std::int8_t* label_map, const std::uint8_t* head, float* x,
                  std::int32_t* y, std::uint8_t* allowed);
void add_scaled(Stream st, std::size_t n, float scale, const float* x, float* acc);
void shuffle_order(Stream st, Scratch& ws, std::size_t n, std::uint64_t seed, std::int32_t* order);

}  // namespace evoplast::kernels::cuda
