// Each kernel beside its vendor counterpart on the population's real shapes
// (seed CNN, P = 64, batch 64): time, TFLOP/s or GB/s, and the share of this
// card's ceilings measured in the same run (a large cuBLAS SGEMM, a device
// copy). Figures, not assertions. NVTX ranges name every measurement.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <random>

#include "apps/command_line.hpp"
#include "bench/nvtx.hpp"
#include "engine/backend.hpp"
#include "engine/cuda_backend.hpp"
#include "engine/rule.hpp"
#include "kernels/cuda.hpp"
#include "kernels/cuda_check.hpp"

using namespace evoplast;
namespace kc = evoplast::kernels::cuda;
using Clock = std::chrono::steady_clock;

namespace {

engine::Buffer<float> random_buffer(engine::Backend& be, std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> h(n);
  for (auto& v : h) v = u(rng);
  engine::Buffer<float> b(be, n);
  b.upload(h);
  return b;
}

// Mean seconds of fn over `reps` runs after `warm` warm-up runs.
double time_it(engine::Backend& be, const char* name, const std::function<void()>& fn, int warm = 3, int reps = 20) {
  for (int i = 0; i < warm; ++i) fn();
  be.synchronize();
  NvtxRange r(name);
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) fn();
  be.synchronize();
  return std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

// The same for work on the default stream (the ceilings' own cuBLAS handle):
// the whole device is synchronised around the timing.
double time_on_device(const char* name, const std::function<void()>& fn, int warm = 1, int reps = 5) {
  for (int i = 0; i < warm; ++i) fn();
  EVOPLAST_CUDA(cudaDeviceSynchronize());
  NvtxRange r(name);
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) fn();
  EVOPLAST_CUDA(cudaDeviceSynchronize());
  return std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_kernels: each CUDA kernel beside cuBLAS/cuDNN on the seed CNN's shapes (P = 64, batch 64), "
               "against this card's measured ceilings"};
  bool tiles_only = false;
  app.add_flag("--tiles-only", tiles_only,
               "Only our tile kernels' rows (convolutions, GEMM, fused steps): no cuBLAS, cuDNN or elementwise rows");
  if (const auto exit_code = evoplast::apps::parse_command_line(app, argc, argv, "bench_kernels")) return *exit_code;
  try {
    auto be = engine::make_cuda_backend();
    std::mt19937 rng(1);
    fmt::print("bench_kernels on {}\n", be->name());

    // Ceilings of this card, measured now.
    const int G = 8192;
    auto a = random_buffer(*be, std::size_t(G) * G, rng), b = random_buffer(*be, std::size_t(G) * G, rng);
    engine::Buffer<float> c(*be, std::size_t(G) * G);
    auto bias = random_buffer(*be, std::size_t(G), rng);
    kc::set_gemm_impl(kc::GemmImpl::cublas);
    kc::set_gemm_precision(kc::Precision::fp32);
    const engine::DenseShape big{1, G, G, G, false};
    const double t_peak = time_it(*be, "ceiling sgemm", [&] { be->dense_forward(big, a.data(), b.data(), bias.data(), c.data()); }, 1, 5);
    const double peak_tflops = 2.0 * G * G * double(G) / t_peak / 1e12;
    const double t_copy = time_it(*be, "ceiling copy", [&] { be->copy(c.data(), a.data(), std::size_t(G) * G * 4); });
    const double peak_gbs = 2.0 * G * G * 4.0 / t_copy / 1e9;
    // The tensor-core ceiling: cuBLAS's SGEMM with TF32 allowed, same size.
    cublasHandle_t tf32_blas = nullptr;
    EVOPLAST_CUBLAS(cublasCreate(&tf32_blas));
    EVOPLAST_CUBLAS(cublasSetMathMode(tf32_blas, CUBLAS_TF32_TENSOR_OP_MATH));
    const float one = 1, zero = 0;
    const auto tf32_gemm = [&] {
      EVOPLAST_CUBLAS(
          cublasSgemm(tf32_blas, CUBLAS_OP_N, CUBLAS_OP_N, G, G, G, &one, a.data(), G, b.data(), G, &zero, c.data(), G));
    };
    const double t_tf32 = time_on_device("ceiling tf32 sgemm", tf32_gemm);
    const double peak_tf32 = 2.0 * G * G * double(G) / t_tf32 / 1e12;
    // The bf16 ceiling: cuBLAS's GEMM on bf16 operands with fp32 accumulation,
    // same size (the operands' values do not matter to its speed).
    void *a16 = nullptr, *b16 = nullptr;
    EVOPLAST_CUDA(cudaMalloc(&a16, std::size_t(G) * G * 2));
    EVOPLAST_CUDA(cudaMalloc(&b16, std::size_t(G) * G * 2));
    EVOPLAST_CUDA(cudaMemset(a16, 0x3F, std::size_t(G) * G * 2));  // 0x3F3F: about 0.75
    EVOPLAST_CUDA(cudaMemset(b16, 0x3F, std::size_t(G) * G * 2));
    const auto bf16_gemm = [&] {
      EVOPLAST_CUBLAS(cublasGemmEx(tf32_blas, CUBLAS_OP_N, CUBLAS_OP_N, G, G, G, &one, a16, CUDA_R_16BF, G, b16,
                                   CUDA_R_16BF, G, &zero, c.data(), CUDA_R_32F, G, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
    };
    const double t_bf16 = time_on_device("ceiling bf16 gemm", bf16_gemm);
    const double peak_bf16 = 2.0 * G * G * double(G) / t_bf16 / 1e12;
    EVOPLAST_CUDA(cudaFree(a16));
    EVOPLAST_CUDA(cudaFree(b16));
    cublasDestroy(tf32_blas);
    fmt::print("ceilings: fp32 SGEMM {:.1f} TFLOP/s, TF32 SGEMM {:.1f} TFLOP/s, bf16 GEMM (fp32 accumulation) {:.1f} "
               "TFLOP/s (cuBLAS, 8192³), device copy {:.0f} GB/s (read + write)\n\n",
               peak_tflops, peak_tf32, peak_bf16, peak_gbs);
    fmt::print("{:<34} {:<20} {:>9} {:>10} {:>9} {:>8}\n", "kernel (P = 64, batch 64)", "impl", "ms", "TFLOP/s", "GB/s",
               "% ceil");

    const int P = 64, N = 64;
    const engine::ConvShape conv1{P, N, 1, 28, 28, 32, 3, true}, conv2{P, N, 32, 26, 26, 64, 3, false};
    const engine::DenseShape fc1{P, N, 9216, 128, false};
    auto x1 = random_buffer(*be, conv1.x_size(), rng), w1 = random_buffer(*be, conv1.w_size(), rng);
    auto b1 = random_buffer(*be, conv1.b_size(), rng), y1 = random_buffer(*be, conv1.y_size(), rng);
    auto w2 = random_buffer(*be, conv2.w_size(), rng), b2 = random_buffer(*be, conv2.b_size(), rng);
    auto y2 = random_buffer(*be, conv2.y_size(), rng), dy2 = random_buffer(*be, conv2.y_size(), rng);
    auto dx2 = random_buffer(*be, conv2.x_size(), rng), dw2 = random_buffer(*be, conv2.w_size(), rng);
    auto db2 = random_buffer(*be, conv2.b_size(), rng);
    auto xf = random_buffer(*be, fc1.x_size(), rng), wf = random_buffer(*be, fc1.w_size(), rng);
    auto bf = random_buffer(*be, fc1.b_size(), rng), yf = random_buffer(*be, fc1.y_size(), rng);

    const auto flops_conv = [](const engine::ConvShape& s) {
      return 2.0 * s.P * s.N * s.Cout * s.Ho() * s.Wo() * double(s.Cin) * s.K * s.K;
    };
    // % of the ceiling of the arithmetic used: fp32 SGEMM, TF32 SGEMM (tensor cores), or the copy.
    const auto row = [&](const std::string& name, const std::string& impl, double t, double flops, double bytes) {
      const double tf = flops / t / 1e12, gbs = bytes / t / 1e9;
      const double ceiling = kc::gemm_precision() == kc::Precision::fp32   ? peak_tflops
                             : kc::gemm_precision() == kc::Precision::bf16 ? peak_bf16
                                                                           : peak_tf32;
      const double pct = flops > 0 ? 100 * tf / ceiling : 100 * gbs / peak_gbs;
      fmt::print("{:<34} {:<20} {:>9.3f} {:>10.2f} {:>9.0f} {:>7.1f}%\n", name, impl, 1e3 * t, tf, gbs, pct);
      std::fflush(stdout);
    };
    struct Impl {
      const char* name;
      kc::GemmImpl gemm;
      kc::ConvImpl conv;
      kc::Precision precision = kc::Precision::fp32;
    };
    // Ours: the tile kernel (implicit-GEMM convolutions) at each precision, fp32 by FMAs.
    const kc::ConvImpl implicit = kc::ConvImpl::implicit_gemm;
    std::vector<Impl> impls = {{"ours fp32", kc::GemmImpl::tiled, implicit},
                               {"ours tf32", kc::GemmImpl::tiled, implicit, kc::Precision::tf32},
                               {"ours tf32x3", kc::GemmImpl::tiled, implicit, kc::Precision::tf32x3},
                               {"ours bf16", kc::GemmImpl::tiled, implicit, kc::Precision::bf16}};
    if (!tiles_only) {
      impls.push_back({"im2col+cuBLAS", kc::GemmImpl::cublas, kc::ConvImpl::im2col});
      try {
        kc::set_conv_impl(kc::ConvImpl::cudnn);
        impls.push_back({"cuDNN", kc::GemmImpl::cublas, kc::ConvImpl::cudnn});
      } catch (const std::exception&) {
        fmt::print("(no cuDNN in this build: its rows are left out)\n");
      }
    }
    for (const Impl& im : impls) {
      kc::set_gemm_impl(im.gemm);
      kc::set_conv_impl(im.conv);
      kc::set_gemm_precision(im.precision);
      row("conv1 fwd 1→32 3×3 (shared input)", im.name,
          time_it(*be, "conv1 fwd", [&] { be->conv2d_forward(conv1, x1.data(), w1.data(), b1.data(), y1.data()); }),
          flops_conv(conv1), 0);
      row("conv2 fwd 32→64 3×3 (grouped)", im.name,
          time_it(*be, "conv2 fwd", [&] { be->conv2d_forward(conv2, y1.data(), w2.data(), b2.data(), y2.data()); }),
          flops_conv(conv2), 0);
      row("conv2 bwd (dx, dw, db)", im.name, time_it(*be, "conv2 bwd", [&] {
            be->conv2d_backward(conv2, y1.data(), w2.data(), dy2.data(), dx2.data(), dw2.data(), db2.data());
          }),
          2 * flops_conv(conv2), 0);
      row("fc1 fwd 9216→128 (batched GEMM)", im.name,
          time_it(*be, "fc1 fwd", [&] { be->dense_forward(fc1, xf.data(), wf.data(), bf.data(), yf.data()); }),
          2.0 * P * N * 9216.0 * 128, 0);
    }
    // The fused conv steps in fp32 (FMAs) and TF32 (tensor cores) beside the
    // same steps composed (the backend's layer-by-layer reference): conv2 →
    // ReLU → 2×2 pool, forward and backward, and a plastic conv2's input
    // gradient and [g; h] with its error read from the pool's
    // (PooledConvError) or stored first.
    kc::set_gemm_impl(kc::GemmImpl::tiled);
    kc::set_conv_impl(implicit);
    for (const kc::Precision precision : {kc::Precision::fp32, kc::Precision::tf32}) {
      kc::set_gemm_precision(precision);
      if (!be->fuses_conv_steps()) break;
      const std::string at = std::string(" ") + kc::precision_name(precision);
      const std::size_t pooled = conv2.y_size() / 4;  // 24 × 24 → 12 × 12
      auto py = random_buffer(*be, pooled, rng), pdy = random_buffer(*be, pooled, rng);
      engine::Buffer<std::int32_t> argmax(*be, pooled);
      auto act = random_buffer(*be, conv2.y_size(), rng), e2 = random_buffer(*be, conv2.y_size(), rng);
      const engine::DropoutParams no_dropout{};
      be->conv2d_relu_pool_forward(conv2, no_dropout, y1.data(), w2.data(), b2.data(), act.data(), py.data(),
                                   argmax.data());  // the argmax the backward passes read
      for (const bool fused : {true, false}) {
        const std::string impl = (fused ? "fused" : "composed") + at;
        row("conv2→ReLU→pool fwd", impl, time_it(*be, "conv2 relu pool fwd", [&] {
              if (fused)
                be->conv2d_relu_pool_forward(conv2, no_dropout, y1.data(), w2.data(), b2.data(), nullptr, py.data(),
                                             argmax.data());
              else
                be->Backend::conv2d_relu_pool_forward(conv2, no_dropout, y1.data(), w2.data(), b2.data(), act.data(),
                                                      py.data(), argmax.data());
            }),
            flops_conv(conv2), 0);
      }
      engine::ConvShape through = conv2;
      through.input_relu = true;
      // Backward: the pool's error staged (the default) or gathered as the tiles load (kc::PooledErrorRead).
      for (const char* impl : {"staged", "gathered", "composed"}) {
        const bool composed = std::string(impl) == "composed";
        kc::set_pooled_error_read(std::string(impl) == "gathered" ? kc::PooledErrorRead::gathered
                                                                  : kc::PooledErrorRead::staged);
        row("conv2→ReLU→pool bwd (dx, dw, db)", impl + at, time_it(*be, "conv2 relu pool bwd", [&] {
              if (!composed)
                be->conv2d_relu_pool_backward(through, no_dropout, y1.data(), w2.data(), nullptr, py.data(),
                                              argmax.data(), pdy.data(), nullptr, dx2.data(), dw2.data(), db2.data());
              else
                be->Backend::conv2d_relu_pool_backward(through, no_dropout, y1.data(), w2.data(), act.data(),
                                                       py.data(), argmax.data(), pdy.data(), e2.data(), dx2.data(),
                                                       dw2.data(), db2.data());
            }),
            2 * flops_conv(conv2), 0);
      }
      kc::set_pooled_error_read(kc::PooledErrorRead::staged);
      // conv2 is plastic layer 1 of 4.
      const std::vector<kernels::PlasticityCoeffs> rule2(
          std::size_t(P), engine::named_rule("hebb").coeffs(1, 4, 1e-3f, 0, 0.9f, 1e-6f));
      const std::size_t units = std::size_t(P) * conv2.Cout;
      auto gh2 = random_buffer(*be, 2 * conv2.w_size(), rng), gb2 = random_buffer(*be, 2 * units, rng);
      auto theta2 = random_buffer(*be, units, rng), my_2 = random_buffer(*be, units, rng);
      auto my2_2 = random_buffer(*be, units, rng), rows2 = random_buffer(*be, 2 * conv2.y_size(), rng);
      const engine::PooledConvError from_pool{pdy.data(), py.data(), argmax.data(), nullptr, nullptr, act.data()};
      // [g; h] as a pair of products over one pass of the patches (the default), or as stacked tiles (the A/B).
      const std::string as_tiles = "pooled staged, [g; h] as stacked tiles";
      for (const std::string impl : {"pooled staged", as_tiles.c_str(), "pooled gathered", "stored"}) {
        const bool fused = impl != "stored";
        kc::set_pooled_error_read(impl == "pooled gathered" ? kc::PooledErrorRead::gathered
                                                            : kc::PooledErrorRead::staged);
        kc::set_stacked_rows_sum(impl == as_tiles ? kc::StackedRowsSum::tiles : kc::StackedRowsSum::pair);
        row("plastic conv2 dx + [g; h]", impl + at, time_it(*be, "plastic conv2", [&] {
              if (fused) {  // as evolve runs it: the two passes in one call, the error staged once
                be->plastic_conv_backward_pooled(through, from_pool, nullptr, w2.data(), nullptr, nullptr, dx2.data(),
                                                 rule2.data(), y1.data(), act.data(), theta2.data(), nullptr, nullptr,
                                                 gh2.data(), gb2.data(), my_2.data(), my2_2.data());
              } else {
                be->Backend::conv2d_input_grad_pooled(through, from_pool, nullptr, y1.data(), w2.data(), nullptr,
                                                      e2.data(), nullptr, dx2.data());
                be->Backend::plasticity_conv_grads_pooled(conv2, from_pool, rule2.data(), y1.data(), act.data(),
                                                          theta2.data(), e2.data(), rows2.data(), gh2.data(),
                                                          gb2.data(), my_2.data(), my2_2.data());
              }
            }),
            3 * flops_conv(conv2), 0);
      }
      kc::set_pooled_error_read(kc::PooledErrorRead::staged);
      kc::set_stacked_rows_sum(kc::StackedRowsSum::pair);
      // A backprop-like rule (A = s_h = 0) reads no h: its Hebbian rows' tile is written as 0 without the GEMM.
      const std::vector<kernels::PlasticityCoeffs> baseline2(
          std::size_t(P), engine::named_rule("baseline").coeffs(1, 4, 1e-3f, 0, 0.9f, 1e-6f));
      row("plastic conv2 dx + [g] (baseline: no h)", "pooled staged" + at, time_it(*be, "plastic conv2 no h", [&] {
            be->plastic_conv_backward_pooled(through, from_pool, nullptr, w2.data(), nullptr, nullptr, dx2.data(),
                                             baseline2.data(), y1.data(), act.data(), theta2.data(), nullptr, nullptr,
                                             gh2.data(), gb2.data(), my_2.data(), my2_2.data());
          }),
          2 * flops_conv(conv2), 0);
    }
    kc::set_gemm_precision(kc::Precision::fp32);
    if (tiles_only) return 0;

    // The fused plasticity update of fc1: bandwidth-bound.
    const int Out = 128, In = 9216;
    const std::size_t n = std::size_t(P) * Out * In;
    auto gh = random_buffer(*be, 2 * n, rng), w = random_buffer(*be, n, rng), sq = random_buffer(*be, n, rng);
    auto acc = random_buffer(*be, n, rng), om = random_buffer(*be, n, rng);
    auto mx = random_buffer(*be, std::size_t(P) * In, rng), my = random_buffer(*be, std::size_t(P) * Out, rng);
    auto my2 = random_buffer(*be, std::size_t(P) * Out, rng);
    std::vector<kernels::PlasticityCoeffs> coeffs(std::size_t(P), engine::named_rule("hebb").coeffs(0, 2, 1e-3f, 0, 0.9f, 1e-6f));
    row("plasticity update fc1 (fused)", "ours", time_it(*be, "plasticity", [&] {
          be->plasticity_update(P, Out, In, coeffs.data(), gh.data(), mx.data(), my.data(), my2.data(), w.data(),
                                sq.data(), acc.data(), om.data());
        }),
        0, double(n) * 4 * (2 + 4 + 4));  // reads g, h, W, v, u, Ω; writes W, v, u, Ω
    // fc1's whole plasticity step as evolve runs it (fusion on): [g; h] = [e | ŷ]ᵀ·x by the tile kernel, W and its
    // state updated in the GEMM's epilogue (g and h never stored). % of the fp32 SGEMM ceiling.
    auto stacked = random_buffer(*be, std::size_t(P) * N * 2 * Out, rng);
    row("plasticity step fc1 (GEMM+update)", "ours fp32", time_it(*be, "plasticity step", [&] {
          be->plasticity_update_dense(fc1, coeffs.data(), xf.data(), stacked.data(), gh.data(), mx.data(), my.data(),
                                      my2.data(), w.data(), sq.data(), acc.data(), om.data());
        }),
        2.0 * P * N * 2.0 * Out * In, double(n) * 4 * (4 + 4) + double(fc1.x_size()) * 4);
    // ⟨x_patch⟩ (the rule's B·⟨x⟩ term): one read of the layer's input.
    auto mx1 = random_buffer(*be, std::size_t(P) * conv1.Cin * 9, rng);
    auto mx2 = random_buffer(*be, std::size_t(P) * conv2.Cin * 9, rng);
    row("⟨x⟩ conv1 (shared input)", "ours", time_it(*be, "mean x conv1", [&] {
          be->pre_mean_conv(conv1, x1.data(), mx1.data());
        }),
        0, double(conv1.x_size()) * 4);
    row("⟨x⟩ conv2", "ours", time_it(*be, "mean x conv2", [&] { be->pre_mean_conv(conv2, y1.data(), mx2.data()); }),
        0, double(conv2.x_size()) * 4);
    // k-WTA on the fly's expansion layer (5% of 2 000 units kept, normalised),
    // a row per image, after its ReLU (half the units 0, all in one bin of the
    // select's first byte): it works in place, so each run starts from a copy
    // of the same activations, and the copy's own time is taken off. GB/s
    // counts the layer read and written once, the least any selection moves.
    const int units = 2000;
    const std::size_t kwta_n = std::size_t(P) * N * units;
    auto kwta_src = random_buffer(*be, kwta_n, rng);
    be->relu_forward(kwta_n, kwta_src.data(), kwta_src.data());
    engine::Buffer<float> kwta_y(*be, kwta_n), kwta_scale(*be, std::size_t(P) * N);
    const std::vector<kernels::KwtaParams> kwta_params(std::size_t(P), kernels::KwtaParams{units / 20, 1});
    const auto refresh = [&] { be->copy(kwta_y.data(), kwta_src.data(), kwta_n * sizeof(float)); };
    const double t_refresh = time_it(*be, "k-WTA refresh", refresh);
    const double t_kwta = time_it(*be, "k-WTA fly layer", [&] {
      refresh();
      be->kwta_forward(P, N, units, kwta_params.data(), kwta_y.data(), kwta_scale.data());
    });
    row("k-WTA fwd 5% of 2000 (fly)", "ours", t_kwta - t_refresh, 0, double(kwta_n) * 4 * 2);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_kernels: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
