// Every CUDA kernel against the CPU backend on fresh random inputs, at several
// shapes (odd ones included: P = 1 and 3, batches that are no multiple of any
// tile). Outputs start poisoned (NaN, or −7 for integers) so an unwritten
// element fails; guard regions around every buffer catch out-of-bounds
// writes; NaN never passes. Then short end-to-end runs on both backends.
// Reported as skipped (exit 77) where there is no device.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <tuple>

#include "check.hpp"
#include "engine/backend.hpp"
#include "engine/continual.hpp"
#include "engine/cpu_backend.hpp"
#include "engine/device_data.hpp"
#include "engine/errors.hpp"
#include "engine/network.hpp"
#include "engine/optimizer.hpp"
#include "engine/plasticity.hpp"
#include "engine/precision.hpp"
#include "kernels/conv_plan.hpp"
#include "kernels/gemm_plan.hpp"
#include "kernels/rounding.hpp"
#include "kernels/cuda.hpp"
#include "kernels/cuda_check.hpp"
#include "net_independence.hpp"
#include "synthetic.hpp"
#if defined(EVOPLAST_SIMT)
#include "simt.hpp"
#endif

using namespace evoplast;
using namespace evoplast::engine;

namespace {

constexpr std::size_t kGuard = 64;

// The GEMMs' precision is process-wide: a test that switches it puts fp32
// (the default) back when it ends, however it ends.
struct Fp32AtExit {
  ~Fp32AtExit() { kernels::cuda::set_gemm_precision(kernels::cuda::Precision::fp32); }
};

// A test of a fused path or of the steps as CUDA graphs makes its backends
// with what would turn those off put aside — $EVOPLAST_FUSION=0 and
// $EVOPLAST_CUDA_GRAPHS=0 (read when a backend is made), another convolution
// than the implicit GEMM ($EVOPLAST_CONV: process-wide) — and puts them back
// at its end. The rest of the suite follows them, so the suite run with any
// of them tests that path everywhere else (gpu-check runs it with
// EVOPLAST_CONV=cudnn). Its plain GEMMs run on our tile kernel too (not
// cuBLAS in fp32), so a composition sums what a fused kernel sums, in the
// same order, at every precision: the fused paths' tests compare bit for bit.
class FastPathsOn {
 public:
  FastPathsOn() : conv_(kernels::cuda::conv_impl()), gemm_(kernels::cuda::gemm_impl()) {
    for (auto& [name, was] : vars_) {
      if (const char* v = std::getenv(name)) was = v;
      unsetenv(name);
    }
    kernels::cuda::set_conv_impl(kernels::cuda::ConvImpl::implicit_gemm);
    kernels::cuda::set_gemm_impl(kernels::cuda::GemmImpl::tiled);
  }
  ~FastPathsOn() {
    for (auto& [name, was] : vars_)
      if (was)
        setenv(name, was->c_str(), 1);
      else
        unsetenv(name);
    kernels::cuda::set_conv_impl(conv_);
    kernels::cuda::set_gemm_impl(gemm_);
  }
  FastPathsOn(const FastPathsOn&) = delete;
  FastPathsOn& operator=(const FastPathsOn&) = delete;

 private:
  std::pair<const char*, std::optional<std::string>> vars_[2] = {{"EVOPLAST_FUSION", {}},
                                                                  {"EVOPLAST_CUDA_GRAPHS", {}}};
  kernels::cuda::ConvImpl conv_;
  kernels::cuda::GemmImpl gemm_;
};

// body() with each of our convolutions chosen in turn (the implicit GEMM, the
// default, then im2col), the one chosen before put back however it ends.
template <class Body>
void at_conv_impls(Body body) {
  struct Back {
    kernels::cuda::ConvImpl was = kernels::cuda::conv_impl();
    ~Back() { kernels::cuda::set_conv_impl(was); }
  } back;
  for (auto impl : {kernels::cuda::ConvImpl::implicit_gemm, kernels::cuda::ConvImpl::im2col}) {
    kernels::cuda::set_conv_impl(impl);
    const std::string conv = impl == kernels::cuda::ConvImpl::im2col ? "im2col" : "implicit GEMM";
    CAPTURE(conv);
    body();
  }
}

// A buffer with sentinel guards on both sides of its body.
template <typename T>
struct Guarded {
  Backend* be;
  Buffer<T> buf;
  std::size_t n;
  Guarded(Backend& b, const std::vector<T>& body) : be(&b), buf(b, body.size() + 2 * kGuard), n(body.size()) {
    std::vector<T> host(body.size() + 2 * kGuard, sentinel());
    std::copy(body.begin(), body.end(), host.begin() + kGuard);
    buf.upload(host);
  }
  static T sentinel() { return T(12345); }
  T* ptr() { return buf.data() + kGuard; }
  std::vector<T> body() {
    const auto all = buf.download();
    for (std::size_t i = 0; i < kGuard; ++i) {
      REQUIRE_MESSAGE(all[i] == sentinel(), "write before the buffer at " << i);
      REQUIRE_MESSAGE(all[kGuard + n + i] == sentinel(), "write past the buffer at " << i);
    }
    return {all.begin() + kGuard, all.begin() + kGuard + n};
  }
};

template <typename T>
T poison() {
  if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::quiet_NaN();
  else return T(-7);
}

// The same data on the CPU (reference) and the GPU.
template <typename T>
struct Pair {
  Guarded<T> c, g;
  Pair(Backend& cpu, Backend& gpu, const std::vector<T>& v) : c(cpu, v), g(gpu, v) {}
};

struct Harness {
  CpuBackend cpu;
  std::unique_ptr<Backend> gpu = make_backend("cuda");
  std::mt19937 rng{2024};

  Pair<float> in(std::size_t n, double lo = -1, double hi = 1) {
    return Pair<float>(cpu, *gpu, check::random_vector<float>(n, rng, lo, hi));
  }
  template <typename T = float>
  Pair<T> out(std::size_t n) {
    return Pair<T>(cpu, *gpu, std::vector<T>(n, poison<T>()));
  }
  template <typename T>
  Pair<T> from(const std::vector<T>& v) {
    return Pair<T>(cpu, *gpu, v);
  }
  template <typename T>
  void same(Pair<T>& p, double atol, double rtol, const char* what) {
    INFO(std::string(what));
    CHECK_CLOSE_VEC(p.g.body(), p.c.body(), atol, rtol);
  }
};

namespace kc = evoplast::kernels::cuda;
const std::initializer_list<kc::Precision> kTensorPrecisions = {kc::Precision::tf32, kc::Precision::tf32x3,
                                                                kc::Precision::bf16};
// Every precision: the fused paths run at each (fp32 by each lane's FMAs).
const std::initializer_list<kc::Precision> kEveryPrecision = {kc::Precision::fp32, kc::Precision::tf32,
                                                              kc::Precision::tf32x3, kc::Precision::bf16};

// body(precision) with each precision of the list set as the GEMMs' (its
// name captured for the checks' messages); fp32 again after, however it ends.
template <class Body>
void at_precisions(std::initializer_list<kc::Precision> precisions, Body body) {
  const Fp32AtExit back_to_fp32;
  for (kc::Precision precision : precisions) {
    kc::set_gemm_precision(precision);
    const std::string name = kc::precision_name(precision);
    CAPTURE(name);
    body(precision);
  }
}

// The ways the fused backward passes read a conv's error from the pool
// above it (kc::PooledErrorRead): gathered as the tiles load, staged for
// the whole population at once, and staged in two chunks of nets (the
// second the shorter where P is odd).
enum class ErrorRead { gathered, staged, staged_in_two };
const char* read_name(ErrorRead read) {
  return read == ErrorRead::gathered ? "gathered" : read == ErrorRead::staged ? "staged" : "staged in two chunks";
}
// body(read) with each way set; staged with the scratch budget as it was after, however it ends.
// staged_in_two sets the budget only through chunk_in_two, shape by shape.
template <class Body>
void at_pooled_error_reads(Body body) {
  struct Restore {
    std::size_t budget = kernels::conv_scratch_budget();
    ~Restore() {
      kc::set_pooled_error_read(kc::PooledErrorRead::staged);
      kernels::set_conv_scratch_budget(budget);
    }
  } restore;
  for (ErrorRead read : {ErrorRead::gathered, ErrorRead::staged, ErrorRead::staged_in_two}) {
    const std::string name = read_name(read);
    CAPTURE(name);
    kc::set_pooled_error_read(read == ErrorRead::gathered ? kc::PooledErrorRead::gathered
                                                          : kc::PooledErrorRead::staged);
    body(read);
    kernels::set_conv_scratch_budget(restore.budget);
  }
}
// Where read is staged_in_two: the scratch budget that stages s's error in
// chunks of ⌈P/2⌉ nets (checked: a test of chunks must have them).
void chunk_in_two(ErrorRead read, const ConvShape& s) {
  if (read != ErrorRead::staged_in_two) return;
  const int nets = (s.P + 1) / 2;
  kernels::set_conv_scratch_budget(std::size_t(nets) * s.N * s.Cout * s.Ho() * s.Wo() * sizeof(float));
  REQUIRE(kernels::staged_error_nets(s) == nets);
  REQUIRE(nets < s.P);
}

// A GPU buffer of NaNs: an element a kernel writes shows, and one it should not have.
Guarded<float> unwritten(Backend& gpu, std::size_t n) {
  return Guarded<float>(gpu, std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()));
}
bool untouched(Guarded<float>& b) {
  const auto v = b.body();
  return std::all_of(v.begin(), v.end(), [](float f) { return std::isnan(f); });
}

// One half of a plastic layer's row sums [Σe; Σŷ] (P, 2·Out): the error rows' (what is read), or the
// Hebbian rows' (which a fused conv step does not write).
std::vector<float> sums_half(Guarded<float>& sums, int P, int Out, bool hebbian) {
  const auto v = sums.body();
  std::vector<float> half;
  for (int p = 0; p < P; ++p) {
    const auto from = v.begin() + std::ptrdiff_t((2 * p + (hebbian ? 1 : 0)) * Out);
    half.insert(half.end(), from, from + Out);
  }
  return half;
}

// dx over at most 32 input channels by a tile's four warps sharing its rows
// (each pair half the sum), over 40 by the tile's 2 × 2 warps.
const ConvShape kConv[] = {{1, 1, 1, 5, 5, 1, 1, false},  {3, 5, 2, 7, 6, 4, 3, false},
                           {3, 7, 1, 28, 28, 32, 3, true}, {2, 3, 3, 9, 7, 2, 5, false},
                           {3, 70, 4, 12, 12, 8, 3, false}, {2, 2, 32, 7, 6, 5, 3, false},
                           {2, 2, 40, 6, 5, 3, 3, false},
                           // Forward and input-gradient sums past a period of the patch-row table (1 008 rows)
                           {1, 2, 120, 6, 5, 115, 3, false}};


// Forward and backward of one layer (Shape: ConvShape or DenseShape, with
// its Backend members) on both backends, compared; dw's tolerance is the
// caller's (a conv's dw sums N·Ho·Wo products per weight).
template <typename Shape>
void check_layer_matches(Harness& h, const Shape& s,
                         void (Backend::*forward)(const Shape&, const float*, const float*, const float*, float*),
                         void (Backend::*backward)(const Shape&, const float*, const float*, const float*, float*,
                                                   float*, float*),
                         double dw_atol) {
  CAPTURE(s.P); CAPTURE(s.N); CAPTURE(s.shared_input);
  auto x = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size()), y = h.out(s.y_size());
  (h.cpu.*forward)(s, x.c.ptr(), w.c.ptr(), b.c.ptr(), y.c.ptr());
  ((*h.gpu).*forward)(s, x.g.ptr(), w.g.ptr(), b.g.ptr(), y.g.ptr());
  h.same(y, 1e-4, 1e-4, "y");
  auto dy = h.in(s.y_size()), dw = h.out(s.w_size()), db = h.out(s.b_size());
  auto dx = h.out(s.shared_input ? 1 : s.x_size());
  (h.cpu.*backward)(s, x.c.ptr(), w.c.ptr(), dy.c.ptr(), s.shared_input ? nullptr : dx.c.ptr(), dw.c.ptr(),
                    db.c.ptr());
  ((*h.gpu).*backward)(s, x.g.ptr(), w.g.ptr(), dy.g.ptr(), s.shared_input ? nullptr : dx.g.ptr(), dw.g.ptr(),
                       db.g.ptr());
  h.same(dw, dw_atol, 1e-4, "dw");
  h.same(db, dw_atol, 1e-4, "db");
  if (!s.shared_input) h.same(dx, 1e-4, 1e-4, "dx");
}

void check_conv_matches(Harness& h, const ConvShape& s) {
  CAPTURE(s.Cin); CAPTURE(s.Cout); CAPTURE(s.K);
  check_layer_matches(h, s, &Backend::conv2d_forward, &Backend::conv2d_backward, 1e-3);
}

}  // namespace

// The fp32-level precisions, whatever $EVOPLAST_PRECISION says: the CPU
// comparisons below hold them to 1e-4; tf32 and bf16 are held to their own
// error bounds ("… stay within each precision's error bound").
const std::initializer_list<kc::Precision> kFp32Level = {kc::Precision::fp32, kc::Precision::tf32x3};

TEST_CASE("cuda: conv2d forward and backward match the CPU") {
  Harness h;
  at_precisions(kFp32Level, [&](kc::Precision) {
    at_conv_impls([&] {
      for (const ConvShape& s : kConv) check_conv_matches(h, s);
    });
  });
}

// The implicit GEMM finds patch rows in a table (kernels/conv_plan.hpp's
// patch_table_period): an input gradient over windows of more than 64
// elements (K > 8) is past it, refused in one line naming the way that takes
// it (im2col, where the shape matches the CPU), before any launch; the
// forward and dW of that shape are not.
TEST_CASE("cuda: an input gradient past the patch-row table is refused in one line; im2col takes it") {
  Harness h;
  const ConvShape s{1, 2, 2, 11, 10, 3, 9, false};
  at_conv_impls([&] {
    if (kernels::cuda::conv_impl() == kernels::cuda::ConvImpl::im2col) return check_conv_matches(h, s);
    auto x = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size()), y = h.out(s.y_size());
    h.cpu.conv2d_forward(s, x.c.ptr(), w.c.ptr(), b.c.ptr(), y.c.ptr());
    h.gpu->conv2d_forward(s, x.g.ptr(), w.g.ptr(), b.g.ptr(), y.g.ptr());
    h.same(y, 1e-4, 1e-4, "y");
    auto dy = h.in(s.y_size()), dx = h.out(s.x_size()), dw = h.out(s.w_size()), db = h.out(s.b_size());
    CHECK_THROWS_WITH_AS(
        h.gpu->conv2d_backward(s, x.g.ptr(), w.g.ptr(), dy.g.ptr(), dx.g.ptr(), dw.g.ptr(), db.g.ptr()),
        doctest::Contains("input gradient: a 9×9 kernel over 11×10 images is past the implicit GEMM's patch-row table"),
        std::invalid_argument);
    CHECK_THROWS_WITH_AS(
        h.gpu->conv2d_backward(s, x.g.ptr(), w.g.ptr(), dy.g.ptr(), dx.g.ptr(), dw.g.ptr(), db.g.ptr()),
        doctest::Contains("set EVOPLAST_CONV=im2col"), std::invalid_argument);
    h.cpu.conv2d_backward(s, x.c.ptr(), w.c.ptr(), dy.c.ptr(), nullptr, dw.c.ptr(), db.c.ptr());
    h.gpu->conv2d_backward(s, x.g.ptr(), w.g.ptr(), dy.g.ptr(), nullptr, dw.g.ptr(), db.g.ptr());
    h.same(dw, 1e-3, 1e-4, "dw");
    h.same(db, 1e-3, 1e-4, "db");
  });
}

TEST_CASE("cuda: dense forward and backward match the CPU") {
  Harness h;
  at_precisions(kFp32Level, [&](kc::Precision) {
    for (DenseShape s : {DenseShape{1, 1, 1, 1, false}, DenseShape{3, 65, 33, 10, false},
                         DenseShape{3, 7, 784, 40, true}, DenseShape{2, 129, 130, 17, false}}) {
      CAPTURE(s.In); CAPTURE(s.Out);
      check_layer_matches(h, s, &Backend::dense_forward, &Backend::dense_backward, 1e-4);
    }
  });
}

// A forward whose sum is long and whose outputs are few (fc1's shape, small):
// our tiled GEMM splits the sum over blocks (kernels/gemm_plan.hpp), the
// whole batch in one launch or, within a budget that small, one net a launch.
TEST_CASE("cuda: a dense layer whose sum the tiled GEMM splits matches the CPU") {
  Harness h;
  const kc::GemmImpl impl = kc::gemm_impl();
  kc::set_gemm_impl(kc::GemmImpl::tiled);
  const std::size_t budget = kernels::conv_scratch_budget();
  at_precisions(kFp32Level, [&](kc::Precision) {
    for (DenseShape s : {DenseShape{3, 5, 2100, 9, false}, DenseShape{2, 66, 3000, 17, true}}) {
      CAPTURE(s.N); CAPTURE(s.In); CAPTURE(s.Out);
      REQUIRE(kernels::gemm_k_splits(s.N, s.Out, s.In) == 3);
      for (std::size_t limit : {budget, std::size_t(1)}) {
        CAPTURE(limit);
        kernels::set_conv_scratch_budget(limit);
        CHECK(kernels::gemm_split_batch(s.N, s.Out, s.In, s.P) == (limit == 1 ? 1 : s.P));
        check_layer_matches(h, s, &Backend::dense_forward, &Backend::dense_backward, 1e-4);
      }
      kernels::set_conv_scratch_budget(budget);
    }
  });
  kc::set_gemm_impl(impl);
}

// Dense layers with every GEMM on tensor cores: each output within the
// precision's error bound of the exact (double) value. With u = 2^-24 and
// mag = |b| + Σ_k |a_k·b_k| for the output's K-term sum:
//   tf32:   each operand rounded to 10 mantissa bits (rna: relative error
//           ≤ 2^-11), so a product is off by ≤ (2^-10 + 2^-22)·|a·b|; K
//           fp32 additions add ≤ 2u each (2u, not u: the tensor core's
//           accumulation is not guaranteed round-to-nearest);
//   tf32x3: x = big + small, both tf32, leaves ≤ 2^-22·|x|; the three
//           products miss ≤ 3·2^-22·|a·b| (small·small and both remainders);
//           3K additions at ≤ 2u;
//   bf16:   each operand rounded to 7 mantissa bits (rn: relative error
//           ≤ 2^-8), so a product is off by ≤ (2^-7 + 2^-16)·|a·b| (the
//           product itself is exact in fp32); K additions at ≤ 2u.
// Plus 4u·mag for the bias and α/β steps. The test also requires tf32's and
// bf16's largest errors to show their rounding (above 2^-16·mag and
// 2^-12·mag somewhere: the tensor path ran at that precision) and tf32x3's to
// stay below 2^-20·mag: fp32-level, as promised (an fp32 sum rounded to
// nearest of these shapes' terms stays below about 2^-23·mag). With the
// three mmas chained into one accumulator an H200 gave 1.09e-6 (2^-19.8) and
// the simulator 3.4e-6: the tensor core cuts its sums toward zero
// (kernels/mma.cuh); summed per k-step and added in fp32, 2.4e-7 here.
double tensor_bound(kernels::cuda::Precision precision, double K) {
  const double u = std::ldexp(1.0, -24);
  switch (precision) {
    case kernels::cuda::Precision::tf32x3: return 3 * std::ldexp(1.0, -22) + 6.0 * K * u + 4 * u;
    case kernels::cuda::Precision::bf16: return std::ldexp(1.0, -7) + std::ldexp(1.0, -16) + 2.0 * K * u + 4 * u;
    default: return std::ldexp(1.0, -10) + std::ldexp(1.0, -22) + 2.0 * K * u + 4 * u;
  }
}

TEST_CASE("cuda: dense layers on tensor cores stay within each precision's error bound") {
  Harness h;
  const Fp32AtExit back_to_fp32;  // make_backend below sets the precision too
  // The backend takes the precision by name, and says it.
  CHECK(make_backend("cuda", "tf32")->name().find("GEMM tensor cores tf32") != std::string::npos);
  CHECK(kc::gemm_precision() == kc::Precision::tf32);
  CHECK(make_backend("cuda", "bf16")->name().find("GEMM tensor cores bf16") != std::string::npos);
  CHECK(kc::gemm_precision() == kc::Precision::bf16);
  CHECK_THROWS_WITH_AS(make_backend("cuda", "fp16"), doctest::Contains("choose fp32, tf32, tf32x3 or bf16"),
                       EngineError);
  at_precisions(kTensorPrecisions, [&](kc::Precision precision) {
    const auto bound = [&](int K) { return tensor_bound(precision, K); };
    double worst = 0;  // the largest error / mag seen
    const auto check_sum = [&](double got, double exact, double mag, int K, const char* what) {
      const double err = std::fabs(got - exact);
      worst = std::max(worst, err / std::max(mag, 1e-30));
      if (!(err <= bound(K) * mag)) FAIL_CHECK(std::string(what) << ": |" << got << " − " << exact << "| > " << bound(K) * mag);
    };
    for (DenseShape s : {DenseShape{2, 37, 70, 45, false}, DenseShape{3, 65, 784, 40, true}}) {
      CAPTURE(s.P); CAPTURE(s.N); CAPTURE(s.In); CAPTURE(s.Out);
      auto x = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size()), y = h.out(s.y_size());
      auto dy = h.in(s.y_size()), dw = h.out(s.w_size()), db = h.out(s.b_size());
      auto dx = h.out(s.shared_input ? 1 : s.x_size());
      h.gpu->dense_forward(s, x.g.ptr(), w.g.ptr(), b.g.ptr(), y.g.ptr());
      h.gpu->dense_backward(s, x.g.ptr(), w.g.ptr(), dy.g.ptr(), s.shared_input ? nullptr : dx.g.ptr(), dw.g.ptr(),
                            db.g.ptr());
      const auto X = x.c.body(), W = w.c.body(), B = b.c.body(), DY = dy.c.body();  // the inputs, from the host copy
      const auto Y = y.g.body(), DW = dw.g.body(), DX = s.shared_input ? std::vector<float>() : dx.g.body();
      for (int p = 0; p < s.P; ++p) {
        const auto xi = [&](int n, int i) {
          return double(X[(std::size_t(s.shared_input ? 0 : p) * s.N + n) * s.In + i]);
        };
        const auto wi = [&](int o, int i) { return double(W[(std::size_t(p) * s.Out + o) * s.In + i]); };
        const auto dyi = [&](int n, int o) { return double(DY[(std::size_t(p) * s.N + n) * s.Out + o]); };
        for (int n = 0; n < s.N; ++n)
          for (int o = 0; o < s.Out; ++o) {  // y = x·Wᵀ + b, K = In
            double exact = B[std::size_t(p) * s.Out + o], mag = std::fabs(exact);
            for (int i = 0; i < s.In; ++i) exact += xi(n, i) * wi(o, i), mag += std::fabs(xi(n, i) * wi(o, i));
            check_sum(Y[(std::size_t(p) * s.N + n) * s.Out + o], exact, mag, s.In, "y");
          }
        for (int o = 0; o < s.Out; ++o)
          for (int i = 0; i < s.In; ++i) {  // dW = dyᵀ·x, K = N
            double exact = 0, mag = 0;
            for (int n = 0; n < s.N; ++n) exact += dyi(n, o) * xi(n, i), mag += std::fabs(dyi(n, o) * xi(n, i));
            check_sum(DW[(std::size_t(p) * s.Out + o) * s.In + i], exact, mag, s.N, "dw");
          }
        if (!s.shared_input)
          for (int n = 0; n < s.N; ++n)
            for (int i = 0; i < s.In; ++i) {  // dx = dy·W, K = Out
              double exact = 0, mag = 0;
              for (int o = 0; o < s.Out; ++o) exact += dyi(n, o) * wi(o, i), mag += std::fabs(dyi(n, o) * wi(o, i));
              check_sum(DX[(std::size_t(p) * s.N + n) * s.In + i], exact, mag, s.Out, "dx");
            }
      }
    }
    MESSAGE(std::string(kc::precision_name(precision)) << ": largest error " << worst << " of Σ|a·b|");
    if (precision == kc::Precision::tf32x3) CHECK(worst < std::ldexp(1.0, -20));
    else CHECK(worst > std::ldexp(1.0, precision == kc::Precision::bf16 ? -12 : -16));
  });
}

// The switches the kernels read as the process starts (EVOPLAST_CONV, …)
// run the default for a value they do not know: the backend refuses such a
// value in one line naming it, and takes the known ones and empty ones.
TEST_CASE("cuda: a switch set to a value it does not know is refused in one line naming it") {
  const auto with = [](const char* name, const char* value, auto body) {
    const char* was = std::getenv(name);
    const std::optional<std::string> saved = was ? std::optional<std::string>(was) : std::nullopt;
    setenv(name, value, 1);
    body();
    if (saved) setenv(name, saved->c_str(), 1);
    else unsetenv(name);
  };
  const std::pair<const char*, const char*> bad[] = {{"EVOPLAST_CONV", "im2co1"}, {"EVOPLAST_FUSION", "off"},
                                                     {"EVOPLAST_PRECISION", "fp16"}, {"EVOPLAST_GEMM", "cuBLAS"},
                                                     {"EVOPLAST_CUDA_GRAPHS", "no"},
                                                     {"EVOPLAST_POOLED_ERROR", "gather"}};
  for (const auto& [name, value] : bad) {
    CAPTURE(name);
    const std::string said = std::string(name) + "=" + value + ": choose";
    with(name, value, [&] {
      CHECK_THROWS_WITH_AS(make_backend("cuda"), doctest::Contains(said.c_str()), EngineError);
    });
  }
  // The engine's precision names (the config's and the switch's list) are the kernels' names, each way.
  for (const std::string& p : evoplast::engine::kPrecisions) {
    CAPTURE(p);
    const auto parsed = kc::parse_precision(p.c_str());
    REQUIRE(parsed);
    CHECK(kc::precision_name(*parsed) == p);
    with("EVOPLAST_PRECISION", p.c_str(),
         [] { CHECK(make_backend("cuda")->name().find("cuda") != std::string::npos); });
  }
  for (const kc::Precision p : kEveryPrecision) CHECK(evoplast::engine::valid_precision(kc::precision_name(p)));
  with("EVOPLAST_CONV", "im2col", [] { CHECK(make_backend("cuda")->name().find("cuda") != std::string::npos); });
  with("EVOPLAST_CONV", "", [] { CHECK(make_backend("cuda")->name().find("cuda") != std::string::npos); });
  if (!kc::cudnn_built())  // the simulator never has cuDNN
    with("EVOPLAST_CONV", "cudnn", [] {
      CHECK_THROWS_WITH_AS(make_backend("cuda"), doctest::Contains("this build has no cuDNN"), EngineError);
    });
}

// The implicit-GEMM convolution on tensor cores, forward and backward: each
// output within the same per-precision bound as the dense layers above (K =
// the length of its sum: Cin·K² for y, N·Ho·Wo for dW, Cout·K² for dx; db is
// an fp32 sum), over shapes with a shared input, odd sizes and more than one
// 64-row tile.
TEST_CASE("cuda: convolutions on tensor cores stay within each precision's error bound") {
  Harness h;
  const double u = std::ldexp(1.0, -24);
  at_precisions(kTensorPrecisions, [&](kc::Precision precision) {
    for (const ConvShape& s : {ConvShape{3, 5, 2, 7, 6, 4, 3, false}, ConvShape{2, 3, 1, 28, 28, 32, 3, true},
                               ConvShape{2, 3, 3, 9, 7, 70, 5, false},
                               ConvShape{2, 2, 16, 6, 7, 5, 3, false},      // W's rows in 16-byte runs (144)
                               ConvShape{1, 9, 1, 28, 28, 4, 3, false}}) {  // dW's sum in 2 splits
      CAPTURE(s.P); CAPTURE(s.N); CAPTURE(s.Cin); CAPTURE(s.Cout); CAPTURE(s.K);
      const int KK = s.Cin * s.K * s.K, Ho = s.Ho(), Wo = s.Wo();
      const double bound = tensor_bound(precision, KK);
      auto x = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size()), y = h.out(s.y_size());
      h.gpu->conv2d_forward(s, x.g.ptr(), w.g.ptr(), b.g.ptr(), y.g.ptr());
      const auto X = x.c.body(), W = w.c.body(), B = b.c.body(), Y = y.g.body();
      for (int p = 0; p < s.P; ++p)
        for (int n = 0; n < s.N; ++n)
          for (int co = 0; co < s.Cout; ++co)
            for (int oy = 0; oy < Ho; ++oy)
              for (int ox = 0; ox < Wo; ++ox) {
                double exact = B[std::size_t(p) * s.Cout + co], mag = std::fabs(exact);
                for (int ci = 0; ci < s.Cin; ++ci)
                  for (int ky = 0; ky < s.K; ++ky)
                    for (int kx = 0; kx < s.K; ++kx) {
                      const double xv = X[((std::size_t(s.shared_input ? 0 : p) * s.N + n) * s.Cin + ci) * s.H * s.W +
                                          std::size_t(oy + ky) * s.W + ox + kx];
                      const double wv = W[((std::size_t(p) * s.Cout + co) * s.Cin + ci) * s.K * s.K + ky * s.K + kx];
                      exact += xv * wv;
                      mag += std::fabs(xv * wv);
                    }
                const double got = Y[((std::size_t(p) * s.N + n) * s.Cout + co) * Ho * Wo + std::size_t(oy) * Wo + ox];
                if (!(std::fabs(got - exact) <= bound * mag))
                  FAIL_CHECK("y[" << p << "][" << n << "][" << co << "][" << oy << "][" << ox << "] = " << got
                                  << ", exact " << exact << ", bound " << bound * mag);
              }
      // Backward: dw (a split sum over N·Ho·Wo), dx (over Cout·K², not for a shared input), db (fp32 sums).
      const auto bound_for = [&](double terms) { return tensor_bound(precision, terms); };
      auto dy = h.in(s.y_size()), dw = h.out(s.w_size()), db = h.out(s.b_size());
      auto dx = h.out(s.shared_input ? 1 : s.x_size());
      h.gpu->conv2d_backward(s, x.g.ptr(), w.g.ptr(), dy.g.ptr(), s.shared_input ? nullptr : dx.g.ptr(), dw.g.ptr(),
                             db.g.ptr());
      const auto DY = dy.c.body(), DW = dw.g.body(), DB = db.g.body();
      const auto DX = s.shared_input ? std::vector<float>() : dx.g.body();
      const auto xat = [&](int p, int n, int ci, int iy, int ix) {
        return double(X[((std::size_t(s.shared_input ? 0 : p) * s.N + n) * s.Cin + ci) * s.H * s.W +
                        std::size_t(iy) * s.W + ix]);
      };
      const auto dyat = [&](int p, int n, int co, int oy, int ox) {
        return double(DY[((std::size_t(p) * s.N + n) * s.Cout + co) * Ho * Wo + std::size_t(oy) * Wo + ox]);
      };
      const auto wat = [&](int p, int co, int ci, int ky, int kx) {
        return double(W[((std::size_t(p) * s.Cout + co) * s.Cin + ci) * s.K * s.K + ky * s.K + kx]);
      };
      for (int p = 0; p < s.P; ++p) {
        for (int co = 0; co < s.Cout; ++co) {
          double exact_b = 0, mag_b = 0;
          for (int n = 0; n < s.N; ++n)
            for (int oy = 0; oy < Ho; ++oy)
              for (int ox = 0; ox < Wo; ++ox) exact_b += dyat(p, n, co, oy, ox), mag_b += std::fabs(dyat(p, n, co, oy, ox));
          const double got_b = DB[std::size_t(p) * s.Cout + co];
          if (!(std::fabs(got_b - exact_b) <= 2.0 * s.N * Ho * Wo * u * mag_b + 1e-30))
            FAIL_CHECK("db[" << p << "][" << co << "] = " << got_b << ", exact " << exact_b);
          for (int ci = 0; ci < s.Cin; ++ci)
            for (int ky = 0; ky < s.K; ++ky)
              for (int kx = 0; kx < s.K; ++kx) {
                double exact = 0, mag = 0;
                for (int n = 0; n < s.N; ++n)
                  for (int oy = 0; oy < Ho; ++oy)
                    for (int ox = 0; ox < Wo; ++ox) {
                      const double t = dyat(p, n, co, oy, ox) * xat(p, n, ci, oy + ky, ox + kx);
                      exact += t, mag += std::fabs(t);
                    }
                const double got = DW[((std::size_t(p) * s.Cout + co) * s.Cin + ci) * s.K * s.K + ky * s.K + kx];
                if (!(std::fabs(got - exact) <= bound_for(s.N * Ho * Wo) * mag))
                  FAIL_CHECK("dw[" << p << "][" << co << "][" << ci << "][" << ky << "][" << kx << "] = " << got
                                   << ", exact " << exact);
              }
        }
        if (s.shared_input) continue;
        for (int n = 0; n < s.N; ++n)
          for (int ci = 0; ci < s.Cin; ++ci)
            for (int iy = 0; iy < s.H; ++iy)
              for (int ix = 0; ix < s.W; ++ix) {
                double exact = 0, mag = 0;
                for (int co = 0; co < s.Cout; ++co)
                  for (int ky = 0; ky < s.K; ++ky)
                    for (int kx = 0; kx < s.K; ++kx) {
                      const int oy = iy - ky, ox = ix - kx;
                      if (oy < 0 || oy >= Ho || ox < 0 || ox >= Wo) continue;
                      const double t = wat(p, co, ci, ky, kx) * dyat(p, n, co, oy, ox);
                      exact += t, mag += std::fabs(t);
                    }
                const double got = DX[((std::size_t(p) * s.N + n) * s.Cin + ci) * s.H * s.W + std::size_t(iy) * s.W + ix];
                if (!(std::fabs(got - exact) <= bound_for(s.Cout * s.K * s.K) * mag + 1e-30))
                  FAIL_CHECK("dx[" << p << "][" << n << "][" << ci << "][" << iy << "][" << ix << "] = " << got
                                   << ", exact " << exact);
              }
      }
    }
  });
}

// A layer's y, dW and dx from one forward and backward pass.
struct LayerOutputs {
  std::vector<float> y, dw, dx;
};

// run(x, w, dy) (device pointers, s's shapes) on operands as drawn and on
// the same operands rounded to TF32 on the host: the same bits.
template <class Shape, class Run>
void check_rounded_operands_change_nothing(Harness& h, const Shape& s, const Run& run) {
  auto x = h.in(s.x_size()), w = h.in(s.w_size()), dy = h.in(s.y_size());
  const auto rounded = [&](Pair<float>& v) {
    std::vector<float> r = v.c.body();
    for (float& e : r) e = evoplast::kernels::tf32_rounded(e);  // as cvt.rna.tf32.f32 rounds it
    return h.from(r);
  };
  auto xr = rounded(x), wr = rounded(w), dyr = rounded(dy);
  const LayerOutputs drawn = run(x.g.ptr(), w.g.ptr(), dy.g.ptr()), as_tf32 = run(xr.g.ptr(), wr.g.ptr(), dyr.g.ptr());
  CHECK(drawn.y == as_tf32.y);
  CHECK(drawn.dw == as_tf32.dw);
  CHECK(drawn.dx == as_tf32.dx);
}

// At tf32 every mma operand is rounded to nearest once, wherever the kernels
// round it (a fragment as a warp reads it, or a share as it is stored): the
// same layers run on operands rounded beforehand give the same bits. The
// error bounds above cannot tell that rounding from the tensor core's own
// cut of an unrounded operand's low 13 bits; this test can. (The biases are
// not mma operands: the same in both runs.)
TEST_CASE("cuda: tf32 rounds each operand to nearest once: operands rounded beforehand give the same bits") {
  Harness h;
  at_precisions({kc::Precision::tf32}, [&](kc::Precision) {
    for (const DenseShape& s : {DenseShape{2, 37, 70, 45, false}, DenseShape{3, 65, 100, 40, true}}) {
      CAPTURE(s.P); CAPTURE(s.In); CAPTURE(s.Out);
      auto b = h.in(s.b_size());
      check_rounded_operands_change_nothing(h, s, [&](const float* x, const float* w, const float* dy) {
        auto y = h.out(s.y_size()), dw = h.out(s.w_size()), db = h.out(s.b_size());
        auto dx = h.out(s.shared_input ? 1 : s.x_size());
        h.gpu->dense_forward(s, x, w, b.g.ptr(), y.g.ptr());
        h.gpu->dense_backward(s, x, w, dy, s.shared_input ? nullptr : dx.g.ptr(), dw.g.ptr(), db.g.ptr());
        return LayerOutputs{y.g.body(), dw.g.body(), s.shared_input ? std::vector<float>() : dx.g.body()};
      });
    }
    for (const ConvShape& s : {ConvShape{2, 3, 3, 9, 7, 70, 5, false}, ConvShape{2, 3, 1, 28, 28, 32, 3, true},
                               ConvShape{1, 2, 32, 12, 12, 64, 3, false}}) {
      CAPTURE(s.P); CAPTURE(s.Cin); CAPTURE(s.Cout); CAPTURE(s.K);
      auto b = h.in(s.b_size());
      check_rounded_operands_change_nothing(h, s, [&](const float* x, const float* w, const float* dy) {
        auto y = h.out(s.y_size()), dw = h.out(s.w_size()), db = h.out(s.b_size());
        auto dx = h.out(s.shared_input ? 1 : s.x_size());
        h.gpu->conv2d_forward(s, x, w, b.g.ptr(), y.g.ptr());
        h.gpu->conv2d_backward(s, x, w, dy, s.shared_input ? nullptr : dx.g.ptr(), dw.g.ptr(), db.g.ptr());
        return LayerOutputs{y.g.body(), dw.g.body(), s.shared_input ? std::vector<float>() : dx.g.body()};
      });
    }
  });
}

TEST_CASE("cuda: max-pool, ReLU, dropout and fill match the CPU") {
  Harness h;
  for (PoolShape s : {PoolShape{1, 2, 2, 2}, PoolShape{3 * 5 * 4, 24, 24, 2}, PoolShape{7, 9, 7, 3}}) {
    CAPTURE(s.planes);
    auto x = h.in(s.x_size()), y = h.out(s.y_size());
    auto arg = h.out<std::int32_t>(s.y_size());
    h.cpu.maxpool2d_forward(s, x.c.ptr(), y.c.ptr(), arg.c.ptr());
    h.gpu->maxpool2d_forward(s, x.g.ptr(), y.g.ptr(), arg.g.ptr());
    h.same(y, 0, 0, "y");
    h.same(arg, 0, 0, "argmax");
    auto dy = h.in(s.y_size()), dx = h.out(s.x_size());
    h.cpu.maxpool2d_backward(s, dy.c.ptr(), arg.c.ptr(), dx.c.ptr());
    h.gpu->maxpool2d_backward(s, dy.g.ptr(), arg.g.ptr(), dx.g.ptr());
    h.same(dx, 0, 0, "dx");
  }
  // The pool's backward with the ReLU's before it: the CPU composes the two, the GPU reads the ReLU's sign
  // from the pooled output. A ReLU's output (windows wholly at zero too), then a dropout after the pool:
  // every third output dropped with its error, the rest scaled by 2.
  for (PoolShape s : {PoolShape{3 * 5 * 4, 24, 24, 2}, PoolShape{7, 9, 7, 3}}) {
    CAPTURE(s.planes);
    std::vector<float> relu_out = check::random_vector<float>(s.x_size(), h.rng, -1, 0.3);
    for (float& v : relu_out) v = v > 0 ? v : 0.0f;
    auto r = h.from(relu_out), y = h.out(s.y_size());
    auto arg = h.out<std::int32_t>(s.y_size());
    h.cpu.maxpool2d_forward(s, r.c.ptr(), y.c.ptr(), arg.c.ptr());
    h.gpu->maxpool2d_forward(s, r.g.ptr(), y.g.ptr(), arg.g.ptr());
    std::vector<float> Y = y.c.body(), DY = check::random_vector<float>(s.y_size(), h.rng, -1, 1);
    for (std::size_t i = 0; i < Y.size(); ++i) (i % 3 == 0 ? (Y[i] = DY[i] = 0.0f) : (Y[i] *= 2.0f));
    CHECK(std::count(Y.begin(), Y.end(), 0.0f) > std::ptrdiff_t(Y.size() / 3) + 1);  // windows at zero too
    auto dropped = h.from(Y), dy = h.from(DY), dx = h.out(s.x_size());
    h.cpu.maxpool2d_relu_backward(s, dy.c.ptr(), arg.c.ptr(), dropped.c.ptr(), r.c.ptr(), dx.c.ptr());
    h.gpu->maxpool2d_relu_backward(s, dy.g.ptr(), arg.g.ptr(), dropped.g.ptr(), r.g.ptr(), dx.g.ptr());
    h.same(dx, 0, 0, "pool and ReLU dx");
  }
  const std::size_t n = 100003;
  auto x = h.in(n), y = h.out(n), dy = h.in(n), dx = h.out(n);
  h.cpu.relu_forward(n, x.c.ptr(), y.c.ptr());
  h.gpu->relu_forward(n, x.g.ptr(), y.g.ptr());
  h.same(y, 0, 0, "relu y");
  h.cpu.relu_backward(n, y.c.ptr(), dy.c.ptr(), dx.c.ptr());
  h.gpu->relu_backward(n, y.g.ptr(), dy.g.ptr(), dx.g.ptr());
  h.same(dx, 0, 0, "relu dx");
  const DropoutParams d{0.3f, 11, 4, 77};
  auto dy2 = h.out(n - 1), dx2 = h.out(n - 1);
  h.cpu.dropout_forward(3, (n - 1) / 3, d, x.c.ptr(), dy2.c.ptr());
  h.gpu->dropout_forward(3, (n - 1) / 3, d, x.g.ptr(), dy2.g.ptr());
  h.same(dy2, 1e-7, 1e-6, "dropout forward (same counter-based mask)");
  h.cpu.dropout_backward(3, (n - 1) / 3, d, dy.c.ptr(), dx2.c.ptr());
  h.gpu->dropout_backward(3, (n - 1) / 3, d, dy.g.ptr(), dx2.g.ptr());
  h.same(dx2, 1e-7, 1e-6, "dropout backward");
  auto f = h.out(1001);
  h.cpu.fill(f.c.ptr(), 1001, 0.25f);
  h.gpu->fill(f.g.ptr(), 1001, 0.25f);
  h.same(f, 0, 0, "fill");
}

TEST_CASE("cuda: loss, accuracy counts and optimisers match the CPU") {
  Harness h;
  for (auto [P, N, C] : {std::tuple{1, 1, 10}, std::tuple{3, 65, 10}, std::tuple{2, 300, 2}}) {
    CAPTURE(P); CAPTURE(N);
    std::vector<std::int32_t> lab(static_cast<std::size_t>(N));
    for (auto& l : lab) l = std::int32_t(h.rng() % unsigned(C));
    auto labels = h.from(lab);
    auto z = h.in(std::size_t(P) * N * C, -5, 5), logp = h.out(std::size_t(P) * N * C), loss = h.out(std::size_t(P));
    h.cpu.log_softmax_nll_forward(P, N, C, z.c.ptr(), labels.c.ptr(), logp.c.ptr(), loss.c.ptr());
    h.gpu->log_softmax_nll_forward(P, N, C, z.g.ptr(), labels.g.ptr(), logp.g.ptr(), loss.g.ptr());
    h.same(logp, 1e-5, 1e-5, "logp");
    h.same(loss, 1e-5, 1e-5, "loss");
    auto dz = h.out(std::size_t(P) * N * C);
    h.cpu.log_softmax_nll_backward(P, N, C, logp.c.ptr(), labels.c.ptr(), dz.c.ptr());
    h.gpu->log_softmax_nll_backward(P, N, C, logp.g.ptr(), labels.g.ptr(), dz.g.ptr());
    h.same(dz, 1e-7, 1e-5, "dlogits");
    auto hits = h.out<std::int64_t>(std::size_t(P));
    h.cpu.count_correct(P, N, C, z.c.ptr(), labels.c.ptr(), hits.c.ptr());
    h.gpu->count_correct(P, N, C, z.g.ptr(), labels.g.ptr(), hits.g.ptr());
    h.same(hits, 0, 0, "correct");
  }
  const int P = 3;
  const std::size_t per = 5001;
  const float lr[P] = {1.0f, 0.5f, 0.0f};
  auto w = h.in(P * per), g = h.in(P * per), v = h.in(P * per, 0, 1), u = h.in(P * per, 0, 1e-3);
  h.cpu.adadelta_step(P, per, lr, 0.9f, 1e-6f, w.c.ptr(), g.c.ptr(), v.c.ptr(), u.c.ptr());
  h.gpu->adadelta_step(P, per, lr, 0.9f, 1e-6f, w.g.ptr(), g.g.ptr(), v.g.ptr(), u.g.ptr());
  h.same(w, 1e-7, 1e-6, "adadelta w");
  h.same(v, 1e-7, 1e-6, "adadelta v");
  h.same(u, 1e-9, 1e-5, "adadelta u");
  h.cpu.sgd_step(P, per, lr, w.c.ptr(), g.c.ptr());
  h.gpu->sgd_step(P, per, lr, w.g.ptr(), g.g.ptr());
  h.same(w, 1e-7, 1e-6, "sgd w");
}

TEST_CASE("cuda: the plasticity kernels match the CPU for every named rule") {
  Harness h;
  const int P = 10, N = 37, Out = 19, In = 23, S = 1;
  std::vector<PlasticityCoeffs> coeffs;
  for (const auto& name : named_rules()) {
    // The readout's coefficients (plastic index 1 of 2): fly's label gating and row bound.
    PlasticityCoeffs c = named_rule(name).coeffs(1, 2, 1.0f, 1, 0.9f, 1e-6f);
    c.omega = c.omega == 0 ? 0.001f : c.omega;  // exercise every term
    coeffs.push_back(c);
  }
  // The fly's fixed hidden layer (plastic index 0 of 2): no term moves W, so neither it nor its state changes.
  coeffs.push_back(named_rule("fly").coeffs(0, 2, 1.0f, 1, 0.9f, 1e-6f));
  REQUIRE_FALSE(kernels::moves_weights(coeffs.back()));
  coeffs[3].w_max = 0.3f;
  coeffs[5].frozen = 1;
  coeffs[2].label_mix = 0.25f;  // a mix of label and output
  coeffs[2].w_norm = 0.5f;
  coeffs[5].w_norm = 0.5f;      // frozen: left alone all the same
  REQUIRE(int(coeffs.size()) == P);
  REQUIRE(coeffs[8].label_mix == 1.0f);  // fly
  auto e = h.in(std::size_t(P) * N * Out * S), y = h.in(std::size_t(P) * N * Out * S, 0, 2);
  auto theta = h.in(std::size_t(P) * Out, 0, 1), z = h.out(std::size_t(P) * N * 2 * Out * S);
  auto my = h.out(std::size_t(P) * Out), my2 = h.out(std::size_t(P) * Out);
  std::vector<std::int32_t> label_values(N);
  for (auto& l : label_values) l = std::int32_t(h.rng() % Out);
  auto labels = h.from(label_values);
  h.cpu.stack_error_and_hebb(P, N, Out, S, coeffs.data(), e.c.ptr(), y.c.ptr(), labels.c.ptr(), theta.c.ptr(),
                             z.c.ptr(), my.c.ptr(), my2.c.ptr());
  h.gpu->stack_error_and_hebb(P, N, Out, S, coeffs.data(), e.g.ptr(), y.g.ptr(), labels.g.ptr(), theta.g.ptr(),
                              z.g.ptr(), my.g.ptr(), my2.g.ptr());
  h.same(z, 1e-6, 1e-5, "z");
  h.same(my, 1e-6, 1e-5, "mean y");
  h.same(my2, 1e-6, 1e-5, "mean y²");
  h.same(theta, 1e-6, 1e-5, "θ");
  const DenseShape ds{P, N, In, Out, false};
  auto x = h.in(ds.x_size()), mx = h.out(std::size_t(P) * In);
  h.cpu.pre_mean_dense(ds, x.c.ptr(), mx.c.ptr());
  h.gpu->pre_mean_dense(ds, x.g.ptr(), mx.g.ptr());
  // ⟨x⟩ is summed in the CPU's order (images first, then the patch's window over that plane): bit for bit.
  h.same(mx, 0, 0, "mean x (dense)");
  for (const ConvShape& cs : kConv) {
    CAPTURE(cs.P); CAPTURE(cs.N); CAPTURE(cs.Cin); CAPTURE(cs.H); CAPTURE(cs.K); CAPTURE(cs.shared_input);
    auto xc = h.in(cs.x_size()), mxc = h.out(std::size_t(cs.P) * cs.Cin * cs.K * cs.K);
    h.cpu.pre_mean_conv(cs, xc.c.ptr(), mxc.c.ptr());
    h.gpu->pre_mean_conv(cs, xc.g.ptr(), mxc.g.ptr());
    h.same(mxc, 0, 0, "mean x (conv)");
  }
  auto big = h.out(std::size_t(2) * 65 * 64);
  CHECK_THROWS_AS(h.gpu->pre_mean_conv(ConvShape{1, 2, 1, 65, 64, 1, 3, true}, big.g.ptr(), big.g.ptr()),
                  std::invalid_argument);  // a plane larger than a block holds: refused, not overrun
  auto gh = h.in(std::size_t(P) * 2 * Out * In), w = h.in(std::size_t(P) * Out * In);
  auto sq = h.in(std::size_t(P) * Out * In, 0, 1), acc = h.in(std::size_t(P) * Out * In, 0, 1e-3);
  auto om = h.in(std::size_t(P) * Out * In, 0, 1e-3);
  h.cpu.plasticity_update(P, Out, In, coeffs.data(), gh.c.ptr(), mx.c.ptr(), my.c.ptr(), my2.c.ptr(), w.c.ptr(),
                          sq.c.ptr(), acc.c.ptr(), om.c.ptr());
  h.gpu->plasticity_update(P, Out, In, coeffs.data(), gh.g.ptr(), mx.g.ptr(), my.g.ptr(), my2.g.ptr(), w.g.ptr(),
                           sq.g.ptr(), acc.g.ptr(), om.g.ptr());
  h.same(w, 1e-6, 1e-5, "W");
  h.same(sq, 1e-7, 1e-5, "Adadelta v");
  h.same(acc, 1e-9, 1e-5, "Adadelta u");
  h.same(om, 1e-7, 1e-5, "Ω");
  // [g; h] and the update in one call, from the same stacked rows and statistics on both backends: the GPU's
  // GEMM-then-update in fp32, and its fused kernel on tensor cores in split TF32. g and h are sums of N = 37
  // products in another order (split TF32: within 2^-20 of Σ|a·b|, see the tensor-core tests), so W and its
  // state agree to a few fp32 ulps relative, and Adadelta's √ ratio can grow that tenfold: 1e-5 absolute, 1e-4 relative.
  {
    namespace kc = evoplast::kernels::cuda;
    const Fp32AtExit back_to_fp32;
    auto stacked = h.from(z.c.body()), mean_y = h.from(my.c.body()), mean_y2 = h.from(my2.c.body());
    auto mean_x = h.from(mx.c.body());
    for (kc::Precision precision : {kc::Precision::fp32, kc::Precision::tf32x3}) {
      kc::set_gemm_precision(precision);
      const std::string name = kc::precision_name(precision);
      CAPTURE(name);
      auto w2 = h.in(std::size_t(P) * Out * In), sq2 = h.in(std::size_t(P) * Out * In, 0, 1);
      auto acc2 = h.in(std::size_t(P) * Out * In, 0, 1e-3), om2 = h.in(std::size_t(P) * Out * In, 0, 1e-3);
      auto scratch = h.out(std::size_t(P) * 2 * Out * In);
      h.cpu.plasticity_update_dense(ds, coeffs.data(), x.c.ptr(), stacked.c.ptr(), scratch.c.ptr(), mean_x.c.ptr(),
                                    mean_y.c.ptr(), mean_y2.c.ptr(), w2.c.ptr(), sq2.c.ptr(), acc2.c.ptr(),
                                    om2.c.ptr());
      h.gpu->plasticity_update_dense(ds, coeffs.data(), x.g.ptr(), stacked.g.ptr(), scratch.g.ptr(), mean_x.g.ptr(),
                                     mean_y.g.ptr(), mean_y2.g.ptr(), w2.g.ptr(), sq2.g.ptr(), acc2.g.ptr(),
                                     om2.g.ptr());
      h.same(w2, 1e-5, 1e-4, "W ([g; h] and the update together)");
      h.same(sq2, 1e-6, 1e-4, "Adadelta v ([g; h] and the update together)");
      h.same(acc2, 1e-9, 1e-4, "Adadelta u ([g; h] and the update together)");
      h.same(om2, 1e-6, 1e-4, "Ω ([g; h] and the update together)");
    }
  }
  // Each net's hidden error by its feedback mode, and each net's W or B, in one pass each.
  {
    using kernels::HiddenError;
    std::vector<HiddenError> mode(static_cast<std::size_t>(P));
    std::vector<std::uint8_t> use_b(static_cast<std::size_t>(P));
    for (int p = 0; p < P; ++p) mode[std::size_t(p)] = HiddenError(p % 3), use_b[std::size_t(p)] = p % 2;
    const std::size_t per_net = std::size_t(Out) * 5;
    auto e = h.in(std::size_t(P) * per_net), dfa = h.in(std::size_t(P) * per_net), y = h.in(std::size_t(P) * per_net);
    for (bool relu_after : {false, true}) {
      h.cpu.route_hidden_error(P, per_net, mode.data(), dfa.c.ptr(), y.c.ptr(), relu_after, e.c.ptr());
      h.gpu->route_hidden_error(P, per_net, mode.data(), dfa.g.ptr(), y.g.ptr(), relu_after, e.g.ptr());
      h.same(e, 0, 0, relu_after ? "hidden error routed (ReLU after)" : "hidden error routed");
    }
    auto picked = h.out(std::size_t(P) * per_net);
    h.cpu.pick_per_net(P, per_net, use_b.data(), e.c.ptr(), dfa.c.ptr(), picked.c.ptr());
    h.gpu->pick_per_net(P, per_net, use_b.data(), e.g.ptr(), dfa.g.ptr(), picked.g.ptr());
    h.same(picked, 0, 0, "W or B picked per net");
  }
  h.cpu.plasticity_bound_rows(P, Out, In, coeffs.data(), w.c.ptr());
  h.gpu->plasticity_bound_rows(P, Out, In, coeffs.data(), w.g.ptr());
  h.same(w, 1e-6, 1e-5, "W after the row bound");
  auto gb = h.in(std::size_t(P) * 2 * Out), b = h.in(std::size_t(P) * Out);
  auto sqb = h.in(std::size_t(P) * Out, 0, 1), accb = h.in(std::size_t(P) * Out, 0, 1e-3);
  h.cpu.plasticity_bias_update(P, Out, coeffs.data(), gb.c.ptr(), my.c.ptr(), b.c.ptr(), sqb.c.ptr(), accb.c.ptr());
  h.gpu->plasticity_bias_update(P, Out, coeffs.data(), gb.g.ptr(), my.g.ptr(), b.g.ptr(), sqb.g.ptr(), accb.g.ptr());
  h.same(b, 1e-6, 1e-5, "b");
  // EWC, head masks, divergence flags.
  const float strength[P] = {0, 1, 10, 0, 1e6f, 0.5f, 0, 2, 3};
  auto f = h.in(std::size_t(P) * In, 0, 1), anchor = h.in(std::size_t(P) * In), wv = h.in(std::size_t(P) * In);
  auto gsq = h.in(std::size_t(P) * In);
  h.cpu.ewc_accumulate_fisher(P, In, 0.5f, gsq.c.ptr(), f.c.ptr());
  h.gpu->ewc_accumulate_fisher(P, In, 0.5f, gsq.g.ptr(), f.g.ptr());
  h.same(f, 1e-7, 1e-6, "Fisher");
  h.cpu.ewc_proximal_step(P, In, strength, f.c.ptr(), anchor.c.ptr(), wv.c.ptr());
  h.gpu->ewc_proximal_step(P, In, strength, f.g.ptr(), anchor.g.ptr(), wv.g.ptr());
  h.same(wv, 1e-6, 1e-5, "EWC proximal");
  std::vector<std::uint8_t> allowed(std::size_t(N) * 10);
  for (auto& a : allowed) a = std::uint8_t(h.rng() % 2);
  auto mask = h.from(allowed);
  auto logits = h.in(std::size_t(P) * N * 10);
  h.cpu.mask_logits(P, N, 10, mask.c.ptr(), logits.c.ptr());
  h.gpu->mask_logits(P, N, 10, mask.g.ptr(), logits.g.ptr());
  h.same(logits, 0, 0, "masked logits");
  // Divergence flags: per_net 100 (net 2 with three non-finite values, each
  // seen by its own thread), 1 (the loss check), 5 (a block of 8 threads, less
  // than a warp: block_sum's tree) and 1 000 (more values than a block's
  // threads, the bad one last).
  const auto flagged = [&](std::size_t per_net, const std::vector<std::size_t>& bad) {
    std::vector<float> vals(std::size_t(P) * per_net, 1.0f);
    for (std::size_t i : bad) vals[i] = i % 2 ? INFINITY : NAN;
    auto v = h.from(vals);
    auto flags = h.from(std::vector<std::uint8_t>(std::size_t(P), 0));
    h.cpu.flag_nonfinite(P, per_net, v.c.ptr(), flags.c.ptr());
    h.gpu->flag_nonfinite(P, per_net, v.g.ptr(), flags.g.ptr());
    const auto fg = flags.g.body();
    CHECK(fg == flags.c.body());
    return fg;
  };
  CHECK(flagged(100, {250, 251, 299, 777}) == std::vector<std::uint8_t>{0, 0, 1, 0, 0, 0, 0, 1, 0, 0});
  CHECK(flagged(1, {1, 4}) == std::vector<std::uint8_t>{0, 1, 0, 0, 1, 0, 0, 0, 0, 0});
  CHECK(flagged(5, {14, 45}) == std::vector<std::uint8_t>{0, 0, 1, 0, 0, 0, 0, 0, 0, 1});
  CHECK(flagged(1000, {1999, 9000}) == std::vector<std::uint8_t>{0, 1, 0, 0, 0, 0, 0, 0, 0, 1});
}

TEST_CASE("cuda: k-winners-take-all forward and backward match the CPU, ties and k = 100% included") {
  Harness h;
  struct Case {
    int P, N, units;
    std::vector<KwtaParams> params;
    bool ties;
  };
  const Case cases[] = {
      {3, 5, 37, {{5, 0}, {1, 1}, {37, 0}}, true},             // fewer units than threads
      {2, 3, 2000, {{100, 0}, {100, 1}}, false},                 // the fly's layer: 5% of 2000
      {2, 4, 700, {{1 << 30, 1}, {350, 0}}, true},               // k = 100% normalised; ties at the median
      {1, 70, 257, {{64, 1}}, true},                              // a unit past a power of two
  };
  for (const Case& c : cases) {
    CAPTURE(c.units);
    const std::size_t n = std::size_t(c.P) * c.N * c.units;
    std::vector<float> values(n);
    for (auto& v : values) v = c.ties ? float(h.rng() % 4) * 0.5f : float(h.rng() % 100000) * 1e-5f;
    auto y = h.from(values);
    auto scale = h.out(std::size_t(c.P) * c.N);
    h.cpu.kwta_forward(c.P, c.N, c.units, c.params.data(), y.c.ptr(), scale.c.ptr());
    h.gpu->kwta_forward(c.P, c.N, c.units, c.params.data(), y.g.ptr(), scale.g.ptr());
    h.same(scale, 1e-6, 1e-5, "k-WTA scale");
    const auto yc = y.c.body(), yg = y.g.body();
    for (std::size_t i = 0; i < n; ++i) REQUIRE_MESSAGE((yc[i] == 0) == (yg[i] == 0), "winner set differs at " << i);
    CHECK_CLOSE_VEC(yg, yc, 1e-6, 1e-5);
    auto dy = h.in(n), dx = h.out(n);
    h.cpu.kwta_backward(c.P, c.N, c.units, c.params.data(), y.c.ptr(), scale.c.ptr(), dy.c.ptr(), dx.c.ptr());
    h.gpu->kwta_backward(c.P, c.N, c.units, c.params.data(), y.g.ptr(), scale.g.ptr(), dy.g.ptr(), dx.g.ptr());
    h.same(dx, 1e-6, 1e-5, "k-WTA dx");
    // In place (dx aliasing dy), as the network calls it.
    h.cpu.kwta_backward(c.P, c.N, c.units, c.params.data(), y.c.ptr(), scale.c.ptr(), dy.c.ptr(), dy.c.ptr());
    h.gpu->kwta_backward(c.P, c.N, c.units, c.params.data(), y.g.ptr(), scale.g.ptr(), dy.g.ptr(), dy.g.ptr());
    h.same(dy, 1e-6, 1e-5, "k-WTA dx in place");
  }
  // Keys of both signs, with the values a diverged net holds (±0, ±Inf, NaN)
  // tied many times over: unnormalised, a winner keeps its value and a loser
  // is +0, so the two sides must agree bit for bit.
  const int P = 2, N = 3, units = 300;
  const std::vector<KwtaParams> params = {{30, 0}, {150, 0}};
  const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f};
  const std::size_t n = std::size_t(P) * N * units;
  std::vector<float> values(n);
  for (std::size_t i = 0; i < n; ++i)
    values[i] = i % 7 == 0 ? specials[h.rng() % 5] : float(int(h.rng() % 200001) - 100000) * 1e-3f;
  auto y = h.from(values);
  auto scale = h.out(std::size_t(P) * N);
  h.cpu.kwta_forward(P, N, units, params.data(), y.c.ptr(), scale.c.ptr());
  h.gpu->kwta_forward(P, N, units, params.data(), y.g.ptr(), scale.g.ptr());
  const auto yc = y.c.body(), yg = y.g.body();
  std::size_t differ = 0, nonzero = 0;
  for (std::size_t i = 0; i < n; ++i) {
    differ += std::bit_cast<std::uint32_t>(yc[i]) != std::bit_cast<std::uint32_t>(yg[i]);
    nonzero += yg[i] != 0.0f;  // NaN too
  }
  CHECK(differ == 0);
  // Every winner but a ±0 one is nonzero: at least keep of each row, less the row's zeros.
  const auto zeros = std::size_t(std::count(values.begin(), values.end(), 0.0f));
  CHECK(nonzero + zeros >= std::size_t(N) * (30 + 150));
}

TEST_CASE("cuda: the stacking statistics of a conv layer (S > 1 positions) match the CPU") {
  Harness h;
  const int P = 3, N = 5, Out = 4, S = 36;
  std::vector<PlasticityCoeffs> coeffs(P, named_rule("bcm").coeffs(0, 2, 1.0f, 0, 0.9f, 1e-6f));
  auto e = h.in(std::size_t(P) * N * Out * S), y = h.in(std::size_t(P) * N * Out * S, 0, 2);
  auto theta = h.in(std::size_t(P) * Out, 0, 1), z = h.out(std::size_t(P) * N * 2 * Out * S);
  auto my = h.out(std::size_t(P) * Out), my2 = h.out(std::size_t(P) * Out);
  h.cpu.stack_error_and_hebb(P, N, Out, S, coeffs.data(), e.c.ptr(), y.c.ptr(), nullptr, theta.c.ptr(), z.c.ptr(),
                             my.c.ptr(), my2.c.ptr());
  h.gpu->stack_error_and_hebb(P, N, Out, S, coeffs.data(), e.g.ptr(), y.g.ptr(), nullptr, theta.g.ptr(), z.g.ptr(),
                              my.g.ptr(), my2.g.ptr());
  h.same(z, 1e-6, 1e-5, "z");
  h.same(my, 1e-6, 1e-5, "mean y");
  h.same(my2, 1e-6, 1e-5, "mean y²");
  h.same(theta, 1e-6, 1e-5, "θ");
}

TEST_CASE("cuda: device-resident minibatches match the CPU's for every protocol") {
  CpuBackend cpu;
  auto gpu = make_backend("cuda");
  for (const char* name : {"split-task", "permuted3", "split-domain"}) {
    CAPTURE(name);
    const synthetic::Protocol sp(name);
    const Protocol& p = sp.protocol;
    DeviceData a(cpu, p, 64), b(*gpu, p, 64);
    std::vector<Sample> samples;
    for (std::size_t t = 0; t < p.tasks.size(); ++t)
      for (std::size_t i = 0; i < 5; ++i) samples.push_back({std::int32_t(t), p.tasks[t].train[i]});
    const int N = int(samples.size());
    a.load(samples.data(), N, Split::train);
    b.load(samples.data(), N, Split::train);
    std::vector<float> xa(std::size_t(N) * a.pixels()), xb(xa.size());
    cpu.to_host(xa.data(), a.x(), xa.size() * 4);
    gpu->to_host(xb.data(), b.x(), xb.size() * 4);
    CHECK(xa == xb);
    std::vector<std::int32_t> ya(static_cast<std::size_t>(N)), yb(ya.size());
    cpu.to_host(ya.data(), a.y(), ya.size() * 4);
    gpu->to_host(yb.data(), b.y(), yb.size() * 4);
    CHECK(ya == yb);
  }
}

TEST_CASE("cuda: the device shuffle draws the CPU's order") {
  CpuBackend cpu;
  auto gpu = make_backend("cuda");
  for (std::size_t n : {std::size_t(1), std::size_t(1000), std::size_t(60000)}) {
    std::vector<std::int32_t> a(n);
    Buffer<std::int32_t> d(*gpu, n);
    cpu.shuffle_order(n, 12345, a.data());
    gpu->shuffle_order(n, 12345, d.data());
    CHECK(d.download() == a);
  }
}

// 12×12 images: in the simulator the convolutions' tiles run every thread
// as a fiber, and 16×16 took three minutes under the sanitizers.
TEST_CASE("cuda: a short backprop training on the GPU follows the CPU's loss curve") {
  CpuBackend cpu;
  auto gpu = make_backend("cuda");
  const NetSpec spec = NetSpec::parse("cnn").adapted(12, 12, 10);
  std::vector<std::vector<float>> curves;
  for (Backend* be : {static_cast<Backend*>(&cpu), gpu.get()}) {
    PopulationNet net(*be, spec, 3, 32);
    net.init_params(4, false);
    Optimizer opt(*be, net, {});
    std::mt19937 rng(6);
    Buffer<float> x(*be, 32 * 144);
    Buffer<std::int32_t> y(*be, 32);
    std::vector<float> curve;
    for (int step = 0; step < 20; ++step) {
      x.upload(check::random_vector<float>(32 * 144, rng, -1, 2));
      std::vector<std::int32_t> yl(32);
      for (int n = 0; n < 32; ++n) yl[std::size_t(n)] = n % 10;
      y.upload(yl);
      net.forward(x.data(), 32, true, 1, std::uint64_t(step));
      const auto loss = net.backward(y.data(), 32);
      opt.step({1.0f, 1.0f, 1.0f});
      curve.insert(curve.end(), loss.begin(), loss.end());
    }
    curves.push_back(curve);
  }
  // Stated tolerance: 1e-3 absolute + 1e-2 relative over 20 steps (fp32 sums in another order).
  CHECK_CLOSE_VEC(curves[1], curves[0], 1e-3, 1e-2);
}

TEST_CASE("cuda: evolve eval's accuracy matrix on a small protocol matches the CPU's") {
  const synthetic::Protocol sp("split-class", 1200, 300, 200);
  const Protocol& proto = sp.protocol;
  ContinualConfig cc;
  cc.net = "mlp32x1";
  cc.batch = 16;
  Rule fa = named_rule("finetune");
  fa.feedback = Feedback::fa;
  const std::vector<Rule> rules = {named_rule("finetune"), named_rule("hebb"), named_rule("local"), named_rule("si"),
                                   named_rule("dfa"), fa};
  CpuBackend cpu;
  auto gpu = make_backend("cuda");
  const auto a = run_continual(cpu, proto, rules, {0, 0, 0, 0, 0, 0}, cc);
  const auto b = run_continual(*gpu, proto, rules, {0, 0, 0, 0, 0, 0}, cc);
  for (std::size_t p = 0; p < rules.size(); ++p) {
    CAPTURE(rules[p].name);
    // Stated tolerance: 2 percentage points per entry.
    for (std::size_t i = 0; i < a.nets[p].R_test.size(); ++i)
      CHECK_CLOSE_VEC(b.nets[p].R_test[i], a.nets[p].R_test[i], 0.02, 0.0);
  }
}

TEST_CASE("cuda: shuffled device minibatches, with their allowed outputs, match the CPU's") {
  CpuBackend cpu;
  auto gpu = make_backend("cuda");
  const synthetic::Protocol sp("split-task");  // per-task heads: an allowed mask per sample
  const Protocol& p = sp.protocol;
  DeviceData a(cpu, p, 32), b(*gpu, p, 32);
  std::vector<Sample> phase;
  for (std::size_t t = 0; t < p.tasks.size(); ++t)
    for (std::size_t i = 0; i < 9; ++i) phase.push_back({std::int32_t(t), p.tasks[t].train[i]});
  a.set_phase(phase);
  b.set_phase(phase);
  a.shuffle(99);
  b.shuffle(99);
  const int N = 20;
  a.load_shuffled(7, N);  // a slice of the order, not its start
  b.load_shuffled(7, N);
  std::vector<float> xa(std::size_t(N) * a.pixels()), xb(xa.size());
  cpu.to_host(xa.data(), a.x(), xa.size() * 4);
  gpu->to_host(xb.data(), b.x(), xb.size() * 4);
  CHECK(xa == xb);
  std::vector<std::int32_t> ya(N), yb(N);
  cpu.to_host(ya.data(), a.y(), ya.size() * 4);
  gpu->to_host(yb.data(), b.y(), yb.size() * 4);
  CHECK(ya == yb);
  REQUIRE(a.head_mask() != nullptr);
  REQUIRE(b.head_mask() != nullptr);
  std::vector<std::uint8_t> ma(std::size_t(N) * 10), mb(ma.size());
  cpu.to_host(ma.data(), a.head_mask(), ma.size());
  gpu->to_host(mb.data(), b.head_mask(), mb.size());
  CHECK(ma == mb);
  CHECK(std::count(ma.begin(), ma.end(), 1) == 2 * N);  // two classes per task
  const auto sa = a.shuffled_samples(std::size_t(N)), sb = b.shuffled_samples(std::size_t(N));
  REQUIRE(sa.size() == sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    CHECK(sa[i].task == sb[i].task);
    CHECK(sa[i].index == sb[i].index);
  }
}

TEST_CASE("cuda: add_scaled matches the CPU") {
  Harness h;
  const std::size_t n = 7777;
  auto x = h.in(n), acc = h.in(n);
  h.cpu.add_scaled(n, -0.37f, x.c.ptr(), acc.c.ptr());
  h.gpu->add_scaled(n, -0.37f, x.g.ptr(), acc.g.ptr());
  h.same(acc, 1e-7, 1e-6, "acc += scale · x");
}

TEST_CASE("cuda: with the block cap at 2, grid-stride loops still cover every element") {
  Harness h;
  kernels::cuda::set_max_blocks(2);  // 512 threads for every elementwise launch
  const std::size_t n = 5003;
  auto x = h.in(n), y = h.out(n);
  h.cpu.relu_forward(n, x.c.ptr(), y.c.ptr());
  h.gpu->relu_forward(n, x.g.ptr(), y.g.ptr());
  h.same(y, 0, 0, "relu");
  const ConvShape s{2, 3, 2, 9, 8, 4, 3, false};
  auto cx = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size()), cy = h.out(s.y_size());
  h.cpu.conv2d_forward(s, cx.c.ptr(), w.c.ptr(), b.c.ptr(), cy.c.ptr());
  h.gpu->conv2d_forward(s, cx.g.ptr(), w.g.ptr(), b.g.ptr(), cy.g.ptr());
  h.same(cy, 1e-4, 1e-4, "conv y (im2col and scatter, capped)");
  auto mx = h.out(std::size_t(s.P) * s.Cin * s.K * s.K);  // 4 planes on 2 blocks: each block takes two in turn
  h.cpu.pre_mean_conv(s, cx.c.ptr(), mx.c.ptr());
  h.gpu->pre_mean_conv(s, cx.g.ptr(), mx.g.ptr());
  h.same(mx, 0, 0, "mean x (conv, capped)");
  const int P = 3;
  const std::size_t per = 2001;
  const float lr[P] = {1.0f, 0.5f, 0.25f};
  auto pw = h.in(P * per), g = h.in(P * per), v = h.in(P * per, 0, 1), u = h.in(P * per, 0, 1e-3);
  h.cpu.adadelta_step(P, per, lr, 0.9f, 1e-6f, pw.c.ptr(), g.c.ptr(), v.c.ptr(), u.c.ptr());
  h.gpu->adadelta_step(P, per, lr, 0.9f, 1e-6f, pw.g.ptr(), g.g.ptr(), v.g.ptr(), u.g.ptr());
  h.same(pw, 1e-7, 1e-6, "adadelta w");
  kernels::cuda::set_max_blocks(65535u * 32u);
}

// The pool's error staged for a conv's backward (stage_error_kernel: planes
// down the grid's y, a plane's pixels across x) with the block cap at 2: one
// block row walks all 16 planes and each thread more than one pixel of the
// 24 × 24 planes (576 > 512 threads); the fused backward still gives the
// composition's bits.
TEST_CASE("cuda: the pool's error staged with the block cap at 2 still covers every plane and pixel") {
  const FastPathsOn fast_paths;
  Harness h;
  struct Restore {
    ~Restore() {
      kernels::cuda::set_max_blocks(65535u * 32u);
      kc::set_pooled_error_read(kc::PooledErrorRead::staged);
    }
  } restore;
  kc::set_pooled_error_read(kc::PooledErrorRead::staged);
  kernels::cuda::set_max_blocks(2);
  const ConvShape s{2, 2, 3, 26, 26, 4, 3, false};
  const std::size_t pooled = std::size_t(s.P) * s.N * s.Cout * (s.Ho() / 2) * (s.Wo() / 2);
  const DropoutParams no_dropout{};
  auto x = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size(), -0.3, 0.3), dy = h.in(pooled);
  Guarded<float> dy1(*h.gpu, dy.g.body()), dy2(*h.gpu, dy.g.body());
  const auto gpu = [&](std::size_t n) { return unwritten(*h.gpu, n); };
  auto conv_out = gpu(s.y_size()), conv_grad = gpu(s.y_size()), unused_grad = gpu(s.y_size());
  auto y = gpu(pooled), dw1 = gpu(s.w_size()), dw2 = gpu(s.w_size()), db1 = gpu(s.b_size()), db2 = gpu(s.b_size());
  auto dx1 = gpu(s.x_size()), dx2 = gpu(s.x_size());
  Guarded<std::int32_t> argmax(*h.gpu, std::vector<std::int32_t>(pooled, -7));
  h.gpu->Backend::conv2d_relu_pool_forward(s, no_dropout, x.g.ptr(), w.g.ptr(), b.g.ptr(), conv_out.ptr(), y.ptr(),
                                           argmax.ptr());
  h.gpu->Backend::conv2d_relu_pool_backward(s, no_dropout, x.g.ptr(), w.g.ptr(), conv_out.ptr(), y.ptr(),
                                            argmax.ptr(), dy1.ptr(), conv_grad.ptr(), dx1.ptr(), dw1.ptr(), db1.ptr());
  h.gpu->conv2d_relu_pool_backward(s, no_dropout, x.g.ptr(), w.g.ptr(), conv_out.ptr(), y.ptr(), argmax.ptr(),
                                   dy2.ptr(), unused_grad.ptr(), dx2.ptr(), dw2.ptr(), db2.ptr());
  CHECK(dx2.body() == dx1.body());
  CHECK(dw2.body() == dw1.body());
  CHECK(db2.body() == db1.body());
}

TEST_CASE("cuda: with scratch poisoned at every use, no kernel reads scratch it did not write") {
  Harness h;
  kernels::cuda::set_poison_scratch(true);
  for (const ConvShape& s : {ConvShape{3, 5, 2, 7, 6, 4, 3, false}, ConvShape{2, 4, 1, 10, 10, 3, 3, true}})
    check_conv_matches(h, s);
  std::vector<std::int32_t> lab(33);
  for (auto& l : lab) l = std::int32_t(h.rng() % 10u);
  auto labels = h.from(lab);
  auto z = h.in(2 * 33 * 10, -4, 4), logp = h.out(2 * 33 * 10), loss = h.out(2);
  h.cpu.log_softmax_nll_forward(2, 33, 10, z.c.ptr(), labels.c.ptr(), logp.c.ptr(), loss.c.ptr());
  h.gpu->log_softmax_nll_forward(2, 33, 10, z.g.ptr(), labels.g.ptr(), logp.g.ptr(), loss.g.ptr());
  h.same(loss, 1e-5, 1e-5, "loss");
  kernels::cuda::set_poison_scratch(false);
}

// The scratch arena (engine/cuda_backend.cpp) grows a region while kernels
// queued before still read its old buffer, which goes back in stream order;
// a growth the card cannot hold throws OutOfDeviceMemory, frees nothing
// twice, and leaves the backend usable. The loss's per-row scratch (P·N
// floats, one region) is the region grown here.
TEST_CASE("cuda: the scratch arena grows behind queued kernels; a growth the card cannot hold fails cleanly") {
#if defined(EVOPLAST_SIMT)
  const std::size_t free_beside_a_backend = make_backend("cuda")->memory_available();
#endif
  {
    const int C = 10;
    Harness h;
    struct Loss {
      Pair<float> z, logp, loss;
      Pair<std::int32_t> labels;
    };
    auto loss_inputs = [&](int P, int N) {
      std::vector<std::int32_t> lab(static_cast<std::size_t>(N));
      for (auto& l : lab) l = std::int32_t(h.rng() % unsigned(C));
      return Loss{h.in(std::size_t(P) * N * C, -4, 4), h.out(std::size_t(P) * N * C), h.out(std::size_t(P)),
                  h.from(lab)};
    };
    auto queue = [&](int P, int N, Loss& l) {
      h.cpu.log_softmax_nll_forward(P, N, C, l.z.c.ptr(), l.labels.c.ptr(), l.logp.c.ptr(), l.loss.c.ptr());
      h.gpu->log_softmax_nll_forward(P, N, C, l.z.g.ptr(), l.labels.g.ptr(), l.logp.g.ptr(), l.loss.g.ptr());
    };
    auto same = [&](Loss& l) {
      h.same(l.loss, 1e-5, 1e-5, "loss");
      h.same(l.logp, 1e-5, 1e-5, "log-probabilities");
    };
    Loss small = loss_inputs(2, 33), large = loss_inputs(3, 500), again = loss_inputs(3, 500),
         huge = loss_inputs(3, 20000);
    const std::size_t free_before = h.gpu->memory_available();
    // Queued back to back, nothing waited for in between: the large call grows
    // the region the small call's reduction has yet to read.
    queue(2, 33, small);
    queue(3, 500, large);
    same(small);
    same(large);
#if defined(EVOPLAST_SIMT)
    // The simulated card counts bytes exactly: the old region was given back.
    CHECK(free_before - h.gpu->memory_available() == 3 * 500 * sizeof(float));
    // A card with 1 KiB more than is now in use: the huge call's region (240 000 bytes) cannot fit.
    std::size_t free = 0, total = 0;
    REQUIRE(cudaMemGetInfo(&free, &total) == cudaSuccess);
    {
      struct CardSizeBack {  // the card's size again however the check ends
        std::size_t total;
        ~CardSizeBack() { simt::set_device_memory(total); }
      } back{total};
      simt::set_device_memory(total - free + 1024);
      CHECK_THROWS_AS(queue(3, 20000, huge), OutOfDeviceMemory);
    }
    CHECK(cudaGetLastError() == cudaSuccess);  // the failed allocation's error was taken, not left for the next check
    // The region is empty now (its old buffer gone before the allocation was tried); it is allocated again.
    CHECK(free_before - h.gpu->memory_available() == 0);
#endif
    queue(3, 500, again);
    same(again);
#if defined(EVOPLAST_SIMT)
    CHECK(free_before - h.gpu->memory_available() == 3 * 500 * sizeof(float));
#endif
  }
#if defined(EVOPLAST_SIMT)
  // The backend is gone: each region was freed once (a second free is refused
  // with an error left here) and none was left behind.
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(make_backend("cuda")->memory_available() == free_beside_a_backend);
#endif
}

// Per net: backprop (Adadelta), the hebb rule, hebb with feedback alignment,
// and the local rule: every path of the plasticity engine, dense and conv.
std::vector<Rule> four_learning_paths() {
  Rule fa = named_rule("hebb");
  fa.feedback = Feedback::fa;
  return {named_rule("finetune"), named_rule("hebb"), fa, named_rule("local")};
}

// A population of 4 (four_learning_paths) trained 6 steps of 16 images on
// be: its loss curve (every net's loss at each step) and its weights after.
struct Trained {
  std::vector<float> curve, weights;
};
Trained train_four_paths(Backend& be, const NetSpec& spec) {
  const int N = 16;
  PopulationNet net(be, spec, 4, N);
  net.init_params(9, false);
  Plasticity learn(be, net, four_learning_paths(), 5);
  std::mt19937 rng(8);
  Buffer<float> x(be, std::size_t(N) * 144);
  Buffer<std::int32_t> y(be, N);
  Trained t;
  for (int step = 0; step < 6; ++step) {
    x.upload(check::random_vector<float>(std::size_t(N) * 144, rng, -1, 2));
    std::vector<std::int32_t> yl(N);
    for (int n = 0; n < N; ++n) yl[std::size_t(n)] = (n * 3 + step) % 10;
    y.upload(yl);
    net.forward(x.data(), N, true, 1, std::uint64_t(step));
    const auto loss = learn.step(y.data(), N, 1.0f, 0);
    t.curve.insert(t.curve.end(), loss.begin(), loss.end());
  }
  CHECK(std::all_of(learn.diverged().begin(), learn.diverged().end(), [](auto d) { return d == 0; }));
  for (auto& prm : net.params()) {
    const auto v = prm.value.download();
    t.weights.insert(t.weights.end(), v.begin(), v.end());
  }
  return t;
}

// √(mean (a[i] − b[i])²).
double rms_difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(sum / double(a.size()));
}

TEST_CASE("cuda: populations of 4 learning by backprop, hebb and feedback alignment follow the CPU") {
  for (const char* name : {"mlp48x1", "cnn"}) {
    CAPTURE(name);
    const NetSpec spec = NetSpec::parse(name).adapted(12, 12, 10);
    CpuBackend cpu;
    auto gpu = make_backend("cuda");
    const Trained on_cpu = train_four_paths(cpu, spec), on_gpu = train_four_paths(*gpu, spec);
    // Stated tolerance, as for the backprop curve: 1e-3 absolute + 1e-2 relative (fp32 sums in another order).
    CHECK_CLOSE_VEC(on_gpu.curve, on_cpu.curve, 1e-3, 1e-2);
    CHECK_CLOSE_VEC(on_gpu.weights, on_cpu.weights, 1e-4, 1e-3);
  }
}

// The CPU's emulation of tf32 and bf16 (its GEMMs' operands rounded as a
// tensor core's, products summed in fp32) is what a study of those
// precisions without a card rests on: the GPU's tensor cores must train as
// it does, far closer than as the CPU's fp32 does. The MLP's sums are short:
// there the GPU follows the emulation to the fp32 test's tolerance (in the
// simulator, 370× closer than to fp32 by RMS in tf32, 13 000× in bf16). The
// CNN's conv sums (1 600 products) are long, and the tensor core cuts each
// partial sum toward zero (tests/simt/warp.cpp): its layers then differ from
// the emulation by ~3e-5 of their values, and six steps through ReLUs and
// pool windows (a near tie flips) spread that; still 5.5× (tf32) and 3.2×
// (bf16) closer than to fp32. A tensor path that cut its operands instead
// of rounding them, or left one unrounded, would be about as far from both.
TEST_CASE("cuda: tf32 and bf16 populations of 4 follow the CPU's emulation of them, not its fp32") {
  const Fp32AtExit back_to_fp32;
  for (const std::string precision : {"tf32", "bf16"})
    for (const std::string name : {"mlp48x1", "cnn"}) {
      CAPTURE(precision);
      CAPTURE(name);
      const NetSpec spec = NetSpec::parse(name).adapted(12, 12, 10);
      CpuBackend fp32, emulated(precision);
      auto gpu = make_backend("cuda", precision);
      const Trained exact = train_four_paths(fp32, spec), on_cpu = train_four_paths(emulated, spec),
                    on_gpu = train_four_paths(*gpu, spec);
      const double to_emulation = rms_difference(on_gpu.weights, on_cpu.weights),
                   to_fp32 = rms_difference(on_gpu.weights, exact.weights);
      MESSAGE(precision << ", " << name << ": RMS weight difference to the emulation " << to_emulation << ", to fp32 "
                        << to_fp32);
      if (name == "cnn") {
        CHECK(2 * to_emulation < to_fp32);
      } else {
        CHECK_CLOSE_VEC(on_gpu.curve, on_cpu.curve, 1e-3, 1e-2);
        CHECK_CLOSE_VEC(on_gpu.weights, on_cpu.weights, 1e-4, 1e-3);
        CHECK(50 * to_emulation < to_fp32);
      }
    }
}

// Nets share launches, tiles and scratch here: a NaN or an overflow in one
// must stay in its own rows.
TEST_CASE("cuda: a diverging rule marks only its own net — the others' results are unchanged") {
  auto gpu = make_backend("cuda");
  check_divergence_stays_in_its_net(*gpu, "mlp16x1");
  check_divergence_stays_in_its_net(*gpu, "cnn", 150);  // fewer images: a CNN is minutes in the simulator
}

// What MPI ranks on GPUs rely on: a rank's slice gives its nets' records bit
// for bit.
TEST_CASE("cuda: a slice of the population trains exactly as inside the whole") {
  auto gpu = make_backend("cuda");
  // Fewer images than on the CPU: the six nets' runs are minutes in the simulator.
  check_slices_train_as_the_whole(*gpu, "mlp16x1", 150, 50);
  check_slices_train_as_the_whole(*gpu, "cnn", 60, 20);
}

// Skipped where every launch synchronises (EVOPLAST_CUDA_SYNC=1, read once
// per process): no step is captured there.
TEST_CASE("cuda: training steps replayed from CUDA graphs give the weights of steps launched directly" *
          doctest::skip(kc::sync_after_launch())) {
  // Backprop on the CNN (convolutions, pooling, dropout, Adadelta) and a
  // plastic population (backprop, hebb, FA, DFA) on an MLP. The learning rate
  // changes after two steps, so its table is uploaded again and the graph
  // made anew. A graph changes how the work is launched, not what runs:
  // the weights must agree bit for bit.
  const FastPathsOn fast_paths;
  ::setenv("EVOPLAST_CUDA_GRAPHS", "0", 1);
  auto direct = make_backend("cuda");
  ::unsetenv("EVOPLAST_CUDA_GRAPHS");
  auto graphs = make_backend("cuda");
  CHECK_FALSE(direct->captures_steps());
  REQUIRE(graphs->captures_steps());
  CHECK(graphs->name().find("steps as CUDA graphs") != std::string::npos);
#if defined(EVOPLAST_SIMT)
  const std::size_t graphs_before = simt::graph_launches();
#endif
  Rule fa = named_rule("hebb");
  fa.feedback = Feedback::fa;
  const std::vector<Rule> rules = {named_rule("finetune"), named_rule("hebb"), fa, named_rule("dfa")};
  for (const std::string name : {"cnn", "mlp48x1"}) {
    CAPTURE(name);
    const bool backprop = name == "cnn";
    const NetSpec spec = NetSpec::parse(name).adapted(12, 12, 10);
    std::vector<std::vector<float>> weights;
    for (Backend* be : {direct.get(), graphs.get()}) {
      const int N = 16, P = 4;
      PopulationNet net(*be, spec, P, N);
      net.init_params(9, false);
      std::optional<Optimizer> opt;
      std::optional<Plasticity> learn;
      if (backprop) opt.emplace(*be, net, OptimizerConfig{});
      else learn.emplace(*be, net, rules, 5);
      std::mt19937 rng(8);
      Buffer<float> x(*be, std::size_t(N) * 144);
      Buffer<std::int32_t> y(*be, N);
      for (int step = 0; step < 5; ++step) {
        x.upload(check::random_vector<float>(std::size_t(N) * 144, rng, -1, 2));
        std::vector<std::int32_t> yl(N);
        for (int n = 0; n < N; ++n) yl[std::size_t(n)] = (n * 3 + step) % 10;
        y.upload(yl);
        const float lr = step < 2 ? 1.0f : 0.5f;
        be->run_step(N, [&] {
          net.forward(x.data(), N, true, 1, std::uint64_t(step));
          if (backprop) {
            net.backward_async(y.data(), N);
            opt->step(std::vector<float>(P, lr));
          } else {
            learn->step_async(y.data(), N, lr, 0);
          }
        });
      }
      std::vector<float> all;
      for (auto& prm : net.params()) {
        const auto v = prm.value.download();
        all.insert(all.end(), v.begin(), v.end());
      }
      weights.push_back(all);
    }
    REQUIRE(weights[1].size() == weights[0].size());
    CHECK(std::memcmp(weights[1].data(), weights[0].data(), weights[0].size() * sizeof(float)) == 0);
  }
#if defined(EVOPLAST_SIMT)
  // The graph path ran: four of the five steps of each population were graphs.
  CHECK(simt::graph_launches() >= graphs_before + 8);
#endif
}

// conv → ReLU → 2×2 max-pool fused (the CUDA backend's override) against the
// three layers one by one (Backend's composition), both on the GPU at each
// precision: the same values, bit for bit, since every output
// sums the same products in the same order (the fused GEMM only orders its
// columns by pool window), and the full-size output and error are never
// written unless asked for. Odd sizes (a last row and column outside every
// window), a shared input and more than one 64-row tile; biases small enough
// that whole windows fall below zero (the ReLU's ties); with and without a
// dropout after the pool (its mask drawn in the forward epilogue, its scale
// applied as the backward reads the error). The ReLU's output kept for the
// plasticity rules is the composition's, written by the fused kernel at even
// sizes (the backend composes at odd ones, where it would miss a row).
TEST_CASE("cuda: conv → ReLU → 2×2 pool fused gives what the three layers give one by one") {
  const FastPathsOn fast_paths;
  Harness h;
  at_precisions(kEveryPrecision, [&](kc::Precision) { at_pooled_error_reads([&](ErrorRead read) {
    const std::pair<ConvShape, float> cases[] = {{ConvShape{2, 3, 2, 9, 9, 5, 3, false}, 0.25f},
                                                 {ConvShape{2, 2, 1, 12, 12, 32, 3, true}, 0.0f},
                                                 {ConvShape{1, 2, 16, 14, 14, 70, 3, false}, 0.5f}};  // W in runs
    for (const auto& [s, rate] : cases) {
      CAPTURE(s.H); CAPTURE(s.W); CAPTURE(s.Cout); CAPTURE(s.shared_input); CAPTURE(rate);
      if (read == ErrorRead::staged_in_two && s.P == 1) continue;  // one net: one chunk
      chunk_in_two(read, s);
      const DropoutParams dropout{rate, 9, 4, 2, 1};  // seed, layer, step, first net
      const std::size_t pooled = std::size_t(s.P) * s.N * s.Cout * (s.Ho() / 2) * (s.Wo() / 2);
      auto x = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size(), -0.3, 0.3), dy = h.in(pooled);
      // The composition runs dropout's backward on dy in place: the fused step gets its own copy.
      Guarded<float> dy1(*h.gpu, dy.g.body()), dy2(*h.gpu, dy.g.body());
      const auto gpu = [&](std::size_t n) { return unwritten(*h.gpu, n); };
      auto conv_out = gpu(s.y_size()), conv_grad = gpu(s.y_size()), unused_out = gpu(s.y_size()),
           unused_grad = gpu(s.y_size());
      auto y1 = gpu(pooled), y2 = gpu(pooled), dw1 = gpu(s.w_size()), dw2 = gpu(s.w_size());
      auto db1 = gpu(s.b_size()), db2 = gpu(s.b_size()), dx1 = gpu(s.x_size()), dx2 = gpu(s.x_size());
      Guarded<std::int32_t> a1(*h.gpu, std::vector<std::int32_t>(pooled, -7)), a2(*h.gpu, a1.body());
      h.gpu->Backend::conv2d_relu_pool_forward(s, dropout, x.g.ptr(), w.g.ptr(), b.g.ptr(), conv_out.ptr(), y1.ptr(),
                                               a1.ptr());
      h.gpu->conv2d_relu_pool_forward(s, dropout, x.g.ptr(), w.g.ptr(), b.g.ptr(), nullptr, y2.ptr(), a2.ptr());
      const auto Y = y2.body();
      CHECK(Y == y1.body());
      CHECK(a2.body() == a1.body());
      auto kept = gpu(s.y_size()), y3 = gpu(pooled);  // the ReLU's output asked for, as the rules ask
      Guarded<std::int32_t> a3(*h.gpu, a1.body());
      h.gpu->conv2d_relu_pool_forward(s, dropout, x.g.ptr(), w.g.ptr(), b.g.ptr(), kept.ptr(), y3.ptr(), a3.ptr());
      CHECK(kept.body() == conv_out.body());
      CHECK(y3.body() == Y);
      CHECK(a3.body() == a1.body());
      CHECK(std::count(Y.begin(), Y.end(), 0.0f) > 0);  // some windows wholly below zero (or dropped)
      if (rate > 0) {  // scaled survivors: some value is no product of a window's maximum alone
        const auto C = conv_out.body();
        std::size_t scaled = 0;
        for (float v : Y) scaled += v > 0 && std::find(C.begin(), C.end(), v) == C.end();
        CHECK(scaled > 0);
      }
      float* dx_one = s.shared_input ? nullptr : dx1.ptr();
      float* dx_fused = s.shared_input ? nullptr : dx2.ptr();
      h.gpu->Backend::conv2d_relu_pool_backward(s, dropout, x.g.ptr(), w.g.ptr(), conv_out.ptr(), y1.ptr(), a1.ptr(),
                                                dy1.ptr(), conv_grad.ptr(), dx_one, dw1.ptr(), db1.ptr());
      h.gpu->conv2d_relu_pool_backward(s, dropout, x.g.ptr(), w.g.ptr(), unused_out.ptr(), y2.ptr(), a2.ptr(),
                                       dy2.ptr(), unused_grad.ptr(), dx_fused, dw2.ptr(), db2.ptr());
      CHECK(dy2.body() == dy.g.body());  // the fused step leaves its input alone
      CHECK(dw2.body() == dw1.body());
      CHECK(db2.body() == db1.body());
      if (!s.shared_input) CHECK(dx2.body() == dx1.body());
      for (Guarded<float>* never : {&unused_out, &unused_grad}) {
        CHECK(untouched(*never));
      }
    }
  }); });
}

// conv → ReLU with the ReLU applied as y is written equals the two layers
// one by one, bit for bit: at every precision the implicit GEMM (the ReLU in
// the tile's store) and im2col (the ReLU in the scatter), with biases that
// leave outputs on both sides of zero.
TEST_CASE("cuda: conv → ReLU written in one pass gives what the two layers give one by one") {
  const FastPathsOn fast_paths;
  Harness h;
  at_precisions(kEveryPrecision, [&](kc::Precision) {
    at_conv_impls([&] {
      for (const ConvShape& s : {ConvShape{2, 3, 1, 9, 8, 5, 3, true}, ConvShape{3, 2, 3, 10, 9, 70, 3, false}}) {
        CAPTURE(s.Cout); CAPTURE(s.shared_input);
        auto x = h.in(s.x_size()), w = h.in(s.w_size()), b = h.in(s.b_size(), -0.3, 0.3);
        auto y1 = unwritten(*h.gpu, s.y_size()), y2 = unwritten(*h.gpu, s.y_size());
        h.gpu->Backend::conv2d_relu_forward(s, x.g.ptr(), w.g.ptr(), b.g.ptr(), y1.ptr());
        h.gpu->conv2d_relu_forward(s, x.g.ptr(), w.g.ptr(), b.g.ptr(), y2.ptr());
        const auto Y = y2.body();
        CHECK(Y == y1.body());
        CHECK(std::count(Y.begin(), Y.end(), 0.0f) > 0);
        CHECK(std::count_if(Y.begin(), Y.end(), [](float v) { return v > 0; }) > 0);
      }
    });
  });
}

// A conv's input gradient written through the ReLU whose output its input is
// (ConvShape::input_relu) equals, bit for bit, the gradient followed by that
// ReLU's own pass, at every precision: the implicit GEMM (the tile's store),
// im2col (col2im), and the fused conv → ReLU → pool backward; x holds zeros
// and negatives, Cin spans more than one 64-row tile.
TEST_CASE("cuda: a conv's input gradient written through the ReLU below it gives what the ReLU's pass gives") {
  const FastPathsOn fast_paths;
  Harness h;
  at_precisions(kEveryPrecision, [&](kc::Precision) {
    at_conv_impls([&] {
      for (ConvShape s : {ConvShape{2, 3, 2, 8, 9, 5, 3, false}, ConvShape{2, 2, 70, 6, 6, 4, 3, false}}) {
        CAPTURE(s.Cin);
        auto x_host = check::random_vector<float>(s.x_size(), h.rng, -1, 1);
        for (std::size_t i = 0; i < x_host.size(); i += 7) x_host[i] = 0.0f;  // a ReLU's output: zeros, then clipped
        for (float& v : x_host) v = std::max(v, 0.0f);
        auto x = h.from(x_host), w = h.in(s.w_size()), dy = h.in(s.y_size());
        auto dx1 = unwritten(*h.gpu, s.x_size()), dx2 = unwritten(*h.gpu, s.x_size());
        h.gpu->conv2d_backward(s, x.g.ptr(), w.g.ptr(), dy.g.ptr(), dx1.ptr(), nullptr, nullptr);
        h.gpu->relu_backward(s.x_size(), x.g.ptr(), dx1.ptr(), dx1.ptr());
        ConvShape through = s;
        through.input_relu = true;
        h.gpu->conv2d_backward(through, x.g.ptr(), w.g.ptr(), dy.g.ptr(), dx2.ptr(), nullptr, nullptr);
        const auto DX = dx2.body();
        CHECK(DX == dx1.body());
        CHECK(std::count(DX.begin(), DX.end(), 0.0f) > 0);
        CHECK(std::count_if(DX.begin(), DX.end(), [](float v) { return v != 0.0f; }) > 0);
        if (kc::conv_impl() != kc::ConvImpl::implicit_gemm) continue;  // the fused steps are implicit GEMMs
        // The fused step's backward (dropout off): its dx through the same ReLU.
        const std::size_t pooled = std::size_t(s.P) * s.N * s.Cout * (s.Ho() / 2) * (s.Wo() / 2);
        const auto gpu = [&](std::size_t n) { return unwritten(*h.gpu, n); };
        auto unused = gpu(s.y_size()), y = gpu(pooled), dw = gpu(s.w_size()), db = gpu(s.b_size());
        auto b = h.in(s.b_size(), -0.3, 0.3), dyp = h.in(pooled);
        Guarded<std::int32_t> argmax(*h.gpu, std::vector<std::int32_t>(pooled, -7));
        h.gpu->conv2d_relu_pool_forward(s, DropoutParams{}, x.g.ptr(), w.g.ptr(), b.g.ptr(), nullptr, y.ptr(),
                                        argmax.ptr());
        Guarded<float> dyp1(*h.gpu, dyp.g.body()), dyp2(*h.gpu, dyp.g.body());
        auto dx3 = gpu(s.x_size()), dx4 = gpu(s.x_size());
        h.gpu->conv2d_relu_pool_backward(s, DropoutParams{}, x.g.ptr(), w.g.ptr(), unused.ptr(), y.ptr(),
                                         argmax.ptr(), dyp1.ptr(), unused.ptr(), dx3.ptr(), dw.ptr(), db.ptr());
        h.gpu->relu_backward(s.x_size(), x.g.ptr(), dx3.ptr(), dx3.ptr());
        h.gpu->conv2d_relu_pool_backward(through, DropoutParams{}, x.g.ptr(), w.g.ptr(), unused.ptr(), y.ptr(),
                                         argmax.ptr(), dyp2.ptr(), unused.ptr(), dx4.ptr(), dw.ptr(), db.ptr());
        CHECK(dx4.body() == dx3.body());
      }
    });
  });
}

// A dense layer's backward with its weights' Adadelta step in the
// weight-gradient GEMM's epilogue equals, bit for bit, the gradient stored
// and then stepped (the same tiles and sums, the one adadelta_delta): at
// each precision, a shared input and a per-net one with Out and
// In over one 64-wide tile, each net at its own rate, state in progress.
// dx comes from the weights before they move; dw is never touched.
TEST_CASE("cuda: a dense backward stepping Adadelta in the weight-gradient epilogue gives the stored gradient's step") {
  const FastPathsOn fast_paths;
  Harness h;
  at_precisions(kEveryPrecision, [&](kc::Precision) {
    for (const DenseShape& s : {DenseShape{3, 5, 70, 67, false}, DenseShape{2, 9, 20, 10, true}}) {
      CAPTURE(s.Out); CAPTURE(s.shared_input);
      const std::vector<float> lr = {1.0f, 0.5f, 0.25f};
      auto x = h.in(s.x_size()), dy = h.in(s.y_size());
      const auto w0 = check::random_vector<float>(s.w_size(), h.rng, -1, 1);
      const auto sq0 = check::random_vector<float>(s.w_size(), h.rng, 0, 0.1);
      const auto acc0 = check::random_vector<float>(s.w_size(), h.rng, 0, 0.1);
      const auto gpu = [&](const std::vector<float>& v) { return Guarded<float>(*h.gpu, v); };
      auto w1 = gpu(w0), w2 = gpu(w0), sq1 = gpu(sq0), sq2 = gpu(sq0), acc1 = gpu(acc0), acc2 = gpu(acc0);
      auto dw1 = unwritten(*h.gpu, s.w_size()), dw2 = unwritten(*h.gpu, s.w_size());
      auto db1 = unwritten(*h.gpu, s.b_size()), db2 = unwritten(*h.gpu, s.b_size());
      auto dx1 = unwritten(*h.gpu, s.x_size()), dx2 = unwritten(*h.gpu, s.x_size());
      float* dx_one = s.shared_input ? nullptr : dx1.ptr();
      float* dx_fused = s.shared_input ? nullptr : dx2.ptr();
      h.gpu->Backend::dense_backward_adadelta(s, lr.data(), 0.9f, 1e-6f, x.g.ptr(), w1.ptr(), dy.g.ptr(), dx_one,
                                              dw1.ptr(), db1.ptr(), sq1.ptr(), acc1.ptr());
      h.gpu->dense_backward_adadelta(s, lr.data(), 0.9f, 1e-6f, x.g.ptr(), w2.ptr(), dy.g.ptr(), dx_fused, dw2.ptr(),
                                     db2.ptr(), sq2.ptr(), acc2.ptr());
      CHECK(w2.body() == w1.body());
      CHECK(w2.body() != w0);
      CHECK(sq2.body() == sq1.body());
      CHECK(acc2.body() == acc1.body());
      CHECK(db2.body() == db1.body());
      if (!s.shared_input) CHECK(dx2.body() == dx1.body());
      CHECK(untouched(dw2));
    }
  });
}

// Feedback alignment in a mixed population: dx through each net's own W or
// its fixed B read where they lie equals, bit for bit, the pass over a copy
// picked first (the same tiles and sums): dense and conv, at each
// precision; the copy's buffer is not needed (null). A dense
// layer's nets on DFA or none get no dx (nothing reads it), and with no
// picks every net passes its error through its own W.
TEST_CASE("cuda: a mixed population's error through W or B read where they lie equals the picked copy's") {
  const FastPathsOn fast_paths;
  Harness h;
  const std::vector<std::uint8_t> use_fb = {1, 0, 1};
  using kernels::HiddenError;
  const std::vector<HiddenError> modes = {HiddenError::keep, HiddenError::dfa, HiddenError::none};
  at_precisions(kEveryPrecision, [&](kc::Precision) {
    const auto gpu = [&](std::size_t n) { return unwritten(*h.gpu, n); };
    const DenseShape d{3, 5, 70, 67, false};
    auto x = h.in(d.x_size()), w = h.in(d.w_size()), fb = h.in(d.w_size()), dy = h.in(d.y_size());
    auto picked = gpu(d.w_size()), dx1 = gpu(d.x_size()), dx2 = gpu(d.x_size());
    h.gpu->Backend::dense_input_grad_picked(d, nullptr, use_fb.data(), x.g.ptr(), w.g.ptr(), fb.g.ptr(), dy.g.ptr(),
                                            picked.ptr(), dx1.ptr());
    h.gpu->dense_input_grad_picked(d, nullptr, use_fb.data(), x.g.ptr(), w.g.ptr(), fb.g.ptr(), dy.g.ptr(), nullptr,
                                   dx2.ptr());
    CHECK(dx2.body() == dx1.body());
    auto routed = gpu(d.x_size());
    h.gpu->dense_input_grad_picked(d, modes.data(), use_fb.data(), x.g.ptr(), w.g.ptr(), fb.g.ptr(), dy.g.ptr(),
                                   nullptr, routed.ptr());
    const auto R = routed.body(), DX1 = dx1.body();
    const auto dense_net = std::ptrdiff_t(d.x_size() / std::size_t(d.P));
    CHECK(std::equal(R.begin(), R.begin() + dense_net, DX1.begin()));  // net 0 keeps its error
    CHECK(std::all_of(R.begin() + dense_net, R.end(), [](float v) { return std::isnan(v); }));
    auto own_picked = gpu(d.x_size()), own_dense = gpu(d.x_size());
    h.gpu->dense_input_grad_picked(d, nullptr, nullptr, x.g.ptr(), w.g.ptr(), fb.g.ptr(), dy.g.ptr(), nullptr,
                                   own_picked.ptr());
    h.gpu->dense_backward(d, x.g.ptr(), w.g.ptr(), dy.g.ptr(), own_dense.ptr(), nullptr, nullptr);
    CHECK(own_picked.body() == own_dense.body());
    const ConvShape c{3, 2, 3, 8, 9, 5, 3, false};
    auto cx = h.in(c.x_size()), cw = h.in(c.w_size()), cfb = h.in(c.w_size()), cdy = h.in(c.y_size());
    auto cpicked = gpu(c.w_size()), cdx1 = gpu(c.x_size()), cdx2 = gpu(c.x_size()), own = gpu(c.x_size());
    h.gpu->Backend::conv2d_input_grad_picked(c, use_fb.data(), cx.g.ptr(), cw.g.ptr(), cfb.g.ptr(), cdy.g.ptr(),
                                             cpicked.ptr(), cdx1.ptr());
    h.gpu->conv2d_input_grad_picked(c, use_fb.data(), cx.g.ptr(), cw.g.ptr(), cfb.g.ptr(), cdy.g.ptr(), nullptr,
                                    cdx2.ptr());
    const auto DX = cdx2.body();
    CHECK(DX == cdx1.body());
    // Net 1 passes its error through its own W: what conv2d_backward gives it.
    h.gpu->conv2d_backward(c, cx.g.ptr(), cw.g.ptr(), cdy.g.ptr(), own.ptr(), nullptr, nullptr);
    const auto OWN = own.body();
    const std::size_t x_net = c.x_size() / 3;
    CHECK(std::equal(DX.begin() + x_net, DX.begin() + 2 * x_net, OWN.begin() + x_net));
    CHECK_FALSE(std::equal(DX.begin(), DX.begin() + x_net, OWN.begin()));  // net 0's through B
  });
}

// A conv plastic layer's [g; h] with the stacked rows [e | ŷ/(N·S)] made as
// the weight-gradient GEMM reads them equals, bit for bit, the pass over the
// rows stored by stack_error_and_hebb (the same products in the same order;
// the rows' values by one expression, hebb_post, built without FMA
// contraction): at each precision, a shared input and a per-net
// one with 2·Out over one 64-row tile, BCM shares 0, ½ and 1 against a
// non-zero θ. The statistics and θ's move too; the rows' buffer is never
// touched. Nets whose rule reads g and h, g only (A = 0) and h only (α = 0):
// the half a rule does not read is 0. The 2·70 rows, over a tile, are summed
// both ways (kc::StackedRowsSum): as a pair of products over one pass of the
// patches (a half not read is neither loaded nor multiplied), and as stacked
// tiles (a tile of rows all in such a half is written without the GEMM: g
// rows 0–63 and h rows 76–139; a tile across the border, a pass zeroes).
TEST_CASE("cuda: a conv plastic layer's [g; h] from stacked rows made as they are read equals the stored rows' pass") {
  const FastPathsOn fast_paths;
  struct Restore {
    ~Restore() { kc::set_stacked_rows_sum(kc::StackedRowsSum::pair); }
  } restore;
  Harness h;
  at_precisions(kEveryPrecision, [&](kc::Precision) {
    struct Case {
      ConvShape s;
      kc::StackedRowsSum sum;
    };
    const ConvShape shared{3, 3, 1, 9, 8, 5, 3, true}, wide{3, 4, 3, 12, 11, 70, 3, false};
    for (const Case& c : {Case{shared, kc::StackedRowsSum::pair}, Case{wide, kc::StackedRowsSum::pair},
                          Case{wide, kc::StackedRowsSum::tiles}}) {
      const ConvShape& s = c.s;
      kc::set_stacked_rows_sum(c.sum);
      CAPTURE(s.Cout); CAPTURE(s.shared_input); CAPTURE(c.sum == kc::StackedRowsSum::pair);
      REQUIRE(h.gpu->fuses_conv_steps());
      std::vector<PlasticityCoeffs> coeffs(std::size_t(s.P));
      for (int p = 0; p < s.P; ++p) {
        PlasticityCoeffs& c = coeffs[std::size_t(p)];
        c.bcm = 0.5f * float(p % 3);
        c.alpha = p == 2 ? 0.0f : 1.0f;
        c.A = p == 1 ? 0.0f : 1.0f;
      }
      const std::size_t units = std::size_t(s.P) * s.Cout, S = std::size_t(s.Ho()) * s.Wo();
      auto x = h.in(s.x_size()), e = h.in(s.y_size()), y = h.in(s.y_size(), 0, 2), theta = h.in(units, 0, 1);
      Guarded<float> theta1(*h.gpu, theta.g.body()), theta2(*h.gpu, theta.g.body());
      const auto gpu = [&](std::size_t n) { return unwritten(*h.gpu, n); };
      const std::size_t gh = std::size_t(s.P) * 2 * s.Cout * s.Cin * s.K * s.K;
      auto rows = gpu(std::size_t(s.P) * s.N * 2 * s.Cout * S), unused_rows = gpu(rows.n);
      auto g1 = gpu(gh), g2 = gpu(gh), b1 = gpu(2 * units), b2 = gpu(2 * units);
      auto m1 = gpu(units), m2 = gpu(units), q1 = gpu(units), q2 = gpu(units);
      h.gpu->Backend::plasticity_conv_grads(s, coeffs.data(), x.g.ptr(), e.g.ptr(), y.g.ptr(), theta1.ptr(),
                                            rows.ptr(), g1.ptr(), b1.ptr(), m1.ptr(), q1.ptr());
      h.gpu->plasticity_conv_grads(s, coeffs.data(), x.g.ptr(), e.g.ptr(), y.g.ptr(), theta2.ptr(),
                                   unused_rows.ptr(), g2.ptr(), b2.ptr(), m2.ptr(), q2.ptr());
      CHECK(g2.body() == g1.body());
      CHECK(sums_half(b2, s.P, s.Cout, false) == sums_half(b1, s.P, s.Cout, false));
      const auto unwritten_half = sums_half(b2, s.P, s.Cout, true);  // read by nothing
      CHECK(std::all_of(unwritten_half.begin(), unwritten_half.end(), [](float v) { return std::isnan(v); }));
      CHECK(m2.body() == m1.body());
      CHECK(q2.body() == q1.body());
      CHECK(theta2.body() == theta1.body());
      CHECK(theta2.body() != theta.g.body());  // θ moved
      CHECK(untouched(unused_rows));
      const auto G = g2.body();  // net 0 has g and h, net 1 g and a zero h, net 2 a zero g and h
      const std::size_t half = gh / std::size_t(2 * s.P);
      const auto zeros = [&](int p, int part) {
        const auto from = G.begin() + std::ptrdiff_t((2 * std::size_t(p) + std::size_t(part)) * half);
        return std::count(from, from + std::ptrdiff_t(half), 0.0f);
      };
      CHECK(zeros(0, 0) == 0);
      CHECK(zeros(0, 1) == 0);
      CHECK(zeros(1, 0) == 0);
      CHECK(zeros(1, 1) == std::ptrdiff_t(half));
      CHECK(zeros(2, 0) == std::ptrdiff_t(half));
      CHECK(zeros(2, 1) == 0);
    }
  });
}

// A conv plastic layer's error made from the pool above it as the kernels
// read it (PooledConvError) equals, bit for bit, the error stored first by
// maxpool2d_relu_backward and route_hidden_error: the input gradient
// (through each net's own W, and a mixed population's W or B) and [g; h]
// with their sums and statistics, at each precision; nets that
// keep the pool's error, take the DFA projection or none, and a population
// whose nets all keep theirs (no modes). An odd output size leaves a last
// row outside every window. The stored error's buffer is never touched, and
// nor is the dx of a net on DFA or none (nothing reads it); a net on none
// gets its g as 0 without the GEMM where its error rows fill a tile. With
// a dropout after the pool (the second shape), its scale applied as the
// error is read equals dropout_backward run on the pool's error first.
TEST_CASE("cuda: a conv plastic layer's error read from the pool above it equals the routed error stored first") {
  const FastPathsOn fast_paths;
  Harness h;
  using kernels::HiddenError;
  const std::vector<HiddenError> modes = {HiddenError::keep, HiddenError::dfa, HiddenError::none};
  const std::vector<std::uint8_t> use_fb = {1, 0, 0};
  at_precisions(kEveryPrecision, [&](kc::Precision) { at_pooled_error_reads([&](ErrorRead read) {
    // 64 outputs: the none net's error rows fill a tile, whose g is written as 0 without the GEMM.
    for (const ConvShape& s : {ConvShape{3, 2, 3, 10, 10, 5, 3, false, true}, ConvShape{3, 1, 1, 9, 8, 64, 3, false}}) {
      CAPTURE(s.H);
      REQUIRE(h.gpu->fuses_conv_steps());
      chunk_in_two(read, s);  // nets 0 and 1 (keep, DFA), then 2 (none)
      const int Hp = s.Ho() / 2, Wp = s.Wo() / 2;
      const std::size_t pooled = std::size_t(s.P) * s.N * s.Cout * Hp * Wp, units = std::size_t(s.P) * s.Cout;
      auto x = h.in(s.x_size(), -0.5, 1), w = h.in(s.w_size()), fb = h.in(s.w_size()), dy = h.in(pooled);
      auto y = h.in(pooled, -0.5, 1), act = h.in(s.y_size(), -0.5, 1), dfa = h.in(s.y_size());
      auto theta = h.in(units, 0, 1);
      // The dropout after the pool, in place: y its output; the composition reads the error of its input.
      const DropoutParams dropout{s.Cout == 64 ? 0.25f : 0.0f, 11, 5, 3, 0};
      auto dropped_dy = unwritten(*h.gpu, pooled);
      if (dropout.rate > 0) {
        h.gpu->dropout_forward(s.P, pooled / std::size_t(s.P), dropout, y.g.ptr(), y.g.ptr());
        h.gpu->dropout_backward(s.P, pooled / std::size_t(s.P), dropout, dy.g.ptr(), dropped_dy.ptr());
      }
      std::vector<std::int32_t> where(pooled);  // each window's maximum: any of its four outputs
      for (std::size_t j = 0; j < pooled; ++j) {
        const int pw = int(j % std::size_t(Wp)), ph = int(j / std::size_t(Wp) % std::size_t(Hp));
        const int slot = int(h.rng() % 4);
        where[j] = (2 * ph + slot / 2) * s.Wo() + 2 * pw + slot % 2;
      }
      Guarded<std::int32_t> argmax(*h.gpu, where);
      std::vector<PlasticityCoeffs> coeffs(std::size_t(s.P));
      for (int p = 0; p < s.P; ++p) {
        coeffs[std::size_t(p)].bcm = 0.5f * float(p);
        coeffs[std::size_t(p)].alpha = coeffs[std::size_t(p)].A = 1;  // g and h read (else their rows are 0)
      }
      const auto gpu = [&](std::size_t n) { return unwritten(*h.gpu, n); };
      for (const HiddenError* mode : {modes.data(), static_cast<const HiddenError*>(nullptr)}) {
        CAPTURE(mode != nullptr);
        // composed: the dropout's backward run first; fused: its scale as the error is read.
        const PooledConvError err{dropout.rate > 0 ? dropped_dy.ptr() : dy.g.ptr(),
                                  y.g.ptr(),
                                  argmax.ptr(),
                                  mode,
                                  mode ? dfa.g.ptr() : nullptr,
                                  act.g.ptr()};
        PooledConvError fused = err;
        if (dropout.rate > 0) fused.dy = dy.g.ptr(), fused.dropout = dropout;
        auto e = gpu(s.y_size()), unused_e = gpu(s.y_size()), picked = gpu(s.w_size());
        for (const std::uint8_t* picks : {static_cast<const std::uint8_t*>(nullptr), use_fb.data()}) {
          CAPTURE(picks != nullptr);
          auto dx1 = gpu(s.x_size()), dx2 = gpu(s.x_size());
          h.gpu->Backend::conv2d_input_grad_pooled(s, err, picks, x.g.ptr(), w.g.ptr(), fb.g.ptr(), e.ptr(),
                                                   picked.ptr(), dx1.ptr());
          h.gpu->conv2d_input_grad_pooled(s, fused, picks, x.g.ptr(), w.g.ptr(), fb.g.ptr(), unused_e.ptr(), nullptr,
                                          dx2.ptr());
          const auto DX1 = dx1.body(), DX2 = dx2.body();
          const std::size_t x_net = s.x_size() / std::size_t(s.P);
          if (mode) {  // net 0 keeps its error; nets 1 (DFA) and 2 (none) get no dx, nothing reading it
            CHECK(std::equal(DX2.begin(), DX2.begin() + x_net, DX1.begin()));
            CHECK(std::all_of(DX2.begin() + x_net, DX2.end(), [](float v) { return std::isnan(v); }));
          } else {
            CHECK(DX2 == DX1);
          }
          CHECK(untouched(unused_e));
        }
        const auto E = e.body();  // the routed error as stored: some of each kind
        CHECK(std::count(E.begin(), E.end(), 0.0f) > 0);
        CHECK(std::count_if(E.begin(), E.end(), [](float v) { return v != 0.0f; }) > 0);
        Guarded<float> theta1(*h.gpu, theta.g.body()), theta2(*h.gpu, theta.g.body());
        const std::size_t gh = std::size_t(s.P) * 2 * s.Cout * s.Cin * s.K * s.K;
        auto rows = gpu(2 * s.y_size());  // the stacked rows, stored by the composition
        auto g1 = gpu(gh), g2 = gpu(gh), b1 = gpu(2 * units), b2 = gpu(2 * units);
        auto m1 = gpu(units), m2 = gpu(units), q1 = gpu(units), q2 = gpu(units);
        h.gpu->Backend::plasticity_conv_grads_pooled(s, err, coeffs.data(), x.g.ptr(), act.g.ptr(), theta1.ptr(),
                                                     e.ptr(), rows.ptr(), g1.ptr(), b1.ptr(), m1.ptr(), q1.ptr());
        h.gpu->plasticity_conv_grads_pooled(s, fused, coeffs.data(), x.g.ptr(), act.g.ptr(), theta2.ptr(),
                                            unused_e.ptr(), nullptr, g2.ptr(), b2.ptr(), m2.ptr(), q2.ptr());
        if (dropout.rate > 0)  // the composition does not read the dropout's mask: it refuses the dropout
          CHECK_THROWS_AS(h.gpu->Backend::plasticity_conv_grads_pooled(s, fused, coeffs.data(), x.g.ptr(),
                                                                       act.g.ptr(), theta1.ptr(), e.ptr(), rows.ptr(),
                                                                       g1.ptr(), b1.ptr(), m1.ptr(), q1.ptr()),
                          std::invalid_argument);
        // [g; h], the sums read (the error half), ⟨y⟩, ⟨y²⟩ and θ as one pass left them.
        const auto plastic_outputs = [&](Guarded<float>& g, Guarded<float>& b, Guarded<float>& m, Guarded<float>& q,
                                         Guarded<float>& th) {
          return std::tuple{g.body(), sums_half(b, s.P, s.Cout, false), m.body(), q.body(), th.body()};
        };
        CHECK(plastic_outputs(g2, b2, m2, q2, theta2) == plastic_outputs(g1, b1, m1, q1, theta1));
        CHECK(untouched(unused_e));
        // Both passes in one call, the error made once for both: the two calls' dx (the same bits, unwritten
        // where they left it so) and [g; h], sums and θ; without dx, [g; h] alone.
        for (const std::uint8_t* picks : {static_cast<const std::uint8_t*>(nullptr), use_fb.data()}) {
          for (const bool with_dx : {true, false}) {
            CAPTURE(picks != nullptr); CAPTURE(with_dx);
            auto dx2 = gpu(s.x_size()), dx3 = gpu(s.x_size());
            h.gpu->conv2d_input_grad_pooled(s, fused, picks, x.g.ptr(), w.g.ptr(), fb.g.ptr(), unused_e.ptr(),
                                            nullptr, dx2.ptr());
            Guarded<float> theta3(*h.gpu, theta.g.body());
            auto g3 = gpu(gh), b3 = gpu(2 * units), m3 = gpu(units), q3 = gpu(units);
            h.gpu->plastic_conv_backward_pooled(s, fused, picks, w.g.ptr(), fb.g.ptr(), nullptr,
                                                with_dx ? dx3.ptr() : nullptr, coeffs.data(), x.g.ptr(), act.g.ptr(),
                                                theta3.ptr(), unused_e.ptr(), nullptr, g3.ptr(), b3.ptr(), m3.ptr(),
                                                q3.ptr());
            const auto DX2 = dx2.body(), DX3 = dx3.body();
            if (with_dx) CHECK(std::memcmp(DX3.data(), DX2.data(), DX2.size() * sizeof(float)) == 0);
            else CHECK(untouched(dx3));
            CHECK(plastic_outputs(g3, b3, m3, q3, theta3) == plastic_outputs(g2, b2, m2, q2, theta2));
            CHECK(untouched(unused_e));
          }
        }
      }
    }
  }); });
}

// The plasticity engine's wiring: a CNN whose nets learn by hebb, bcm, and
// hebb by feedback alignment, by DFA and with no hidden error, follows the
// same weights, bit for bit, with its conv layers' stacked rows made as
// they are read (TF32) or stored first ($EVOPLAST_FUSION=0), conv2's error
// read from the pool's as it is made or stored (and routed) first, θ
// moving after the rows used it in both, the
// mixed population's error passed down through each net's W or B read
// where it lies or picked into a copy, and conv2 → ReLU → pool run as one
// step that writes the activation the rules read (in training forwards; an
// evaluation forward leaves it alone) or layer by layer; the evaluation's
// logits too.
TEST_CASE("cuda: a CNN learning by rules follows the same weights with its conv steps fused or composed") {
  const Fp32AtExit back_to_fp32;
  const FastPathsOn fast_paths;
  const NetSpec spec = NetSpec::parse("cnn").adapted(8, 8, 10);
  std::vector<std::vector<float>> weights;
  for (bool fused : {true, false}) {
    if (!fused) setenv("EVOPLAST_FUSION", "0", 1);  // read when the backend is made
    auto gpu = make_backend("cuda", "tf32");
    REQUIRE(gpu->fuses_conv_steps() == fused);
    const int P = 5, N = 4;
    PopulationNet net(*gpu, spec, P, N);
    net.init_params(4, false);
    std::vector<Rule> rules = {named_rule("hebb"), named_rule("bcm"), named_rule("hebb"), named_rule("hebb"),
                               named_rule("hebb")};
    rules[2].feedback = Feedback::fa;
    rules[3].feedback = Feedback::dfa;
    rules[4].feedback = Feedback::none;
    Plasticity learn(*gpu, net, rules, 1, 0.9f, 1e-6f, N);
    std::mt19937 rng(8);
    Buffer<float> x(*gpu, N * 64);
    Buffer<std::int32_t> y(*gpu, N);
    for (int step = 0; step < 2; ++step) {
      x.upload(check::random_vector<float>(N * 64, rng, -1, 2));
      std::vector<std::int32_t> yl(N);
      for (int n = 0; n < N; ++n) yl[std::size_t(n)] = (n + step) % 10;
      y.upload(yl);
      net.forward(x.data(), N, true, 1, std::uint64_t(step));
      learn.step(y.data(), N, 1.0f, 0);
    }
    std::vector<float> all;
    for (auto& prm : net.params()) {
      const auto v = prm.value.download();
      all.insert(all.end(), v.begin(), v.end());
    }
    CHECK(std::all_of(all.begin(), all.end(), [](float f) { return std::isfinite(f); }));
    const auto& conv2 = net.layers()[2];  // conv, ReLU, conv (then ReLU and pool)
    const auto activation = [&] {
      std::vector<float> a(std::size_t(P) * N * conv2.out_per_image());
      gpu->to_host(a.data(), net.activation(conv2.act_out), a.size() * sizeof(float));
      return a;
    };
    const auto trained = activation();
    x.upload(check::random_vector<float>(N * 64, rng, -1, 2));
    const float* logits = net.forward(x.data(), N, false, 1, 0);
    CHECK((activation() == trained) == fused);  // the fused evaluation does without it
    std::vector<float> out(std::size_t(P) * N * 10);
    gpu->to_host(out.data(), logits, out.size() * sizeof(float));
    all.insert(all.end(), out.begin(), out.end());
    weights.push_back(all);
  }
  CHECK(weights[1] == weights[0]);
}

// The network's switch: a CNN trained with each conv → ReLU → pool as one
// step follows, bit for bit, the same net run layer by layer: on the CPU
// (which composes the layers) and on the GPU in TF32 (the fused kernels;
// the dropout after the pool rescales the pooled output the fused
// backward reads its ReLU from), the fused run also stepping the dense
// layers' weights by Adadelta in their weight-gradient GEMM
// (Optimizer::backward_and_step, as evolve train). The GPU's fused net holds
// no full-size conv2 output (its slot is null: a kernel that read it would
// fault). The plasticity engine keeps the activation for its rules, and the
// slot comes back.
TEST_CASE("cuda: a CNN trained with conv → ReLU → pool fused follows the weights of one run layer by layer") {
  namespace kc = evoplast::kernels::cuda;
  const Fp32AtExit back_to_fp32;
  const NetSpec spec = NetSpec::parse("cnn").adapted(8, 8, 10);
  const FastPathsOn fast_paths;
  CpuBackend cpu;
  auto gpu = make_backend("cuda", "tf32");
  for (Backend* be : {static_cast<Backend*>(&cpu), gpu.get()}) {
    const std::string name = be->name();
    CAPTURE(name);
    std::vector<std::vector<float>> weights, curves;
    for (bool fused : {false, true}) {
      const int P = 2, N = 8;
      PopulationNet net(*be, spec, P, N, fused ? ConvReluPool::fused : ConvReluPool::layered);
      const int conv2_slot = net.layers()[2].act_out;  // conv, ReLU, conv (fused with the ReLU and pool after it)
      CHECK((net.activation(conv2_slot) == nullptr) == (fused && be == gpu.get()));
      net.init_params(4, false);
      Optimizer opt(*be, net, {});
      std::mt19937 rng(6);
      Buffer<float> x(*be, N * 64);
      Buffer<std::int32_t> y(*be, N);
      std::vector<float> curve;
      for (int step = 0; step < 2; ++step) {
        x.upload(check::random_vector<float>(N * 64, rng, -1, 2));
        std::vector<std::int32_t> yl(N);
        for (int n = 0; n < N; ++n) yl[std::size_t(n)] = (n + step) % 10;
        y.upload(yl);
        net.forward(x.data(), N, true, 1, std::uint64_t(step));
        const std::vector<float> lr(P, 1.0f);
        std::vector<float> loss(P);
        if (fused) {
          opt.backward_and_step(y.data(), N, lr);
          be->to_host(loss.data(), net.loss_buffer(), P * sizeof(float));
        } else {
          loss = net.backward(y.data(), N);
          opt.step(lr);
        }
        curve.insert(curve.end(), loss.begin(), loss.end());
      }
      std::vector<float> all;
      for (auto& prm : net.params()) {
        const auto v = prm.value.download();
        all.insert(all.end(), v.begin(), v.end());
      }
      weights.push_back(all);
      curves.push_back(curve);
      if (fused) {
        Plasticity learn(*be, net, std::vector<Rule>(P, named_rule("hebb")), 1);
        CHECK(net.conv_relu_pool_fusion() == ConvReluPool::fused_keeping_activation);
        CHECK(net.activation(conv2_slot) != nullptr);
        CHECK((net.gradient(conv2_slot) == nullptr) == be->fuses_conv_steps());  // its error is read from the pool's
      }
    }
    CHECK(curves[1] == curves[0]);
    CHECK(weights[1] == weights[0]);
  }
}

TEST_CASE("cuda: a step a capture cannot hold runs directly, and so do the steps after it" *
          doctest::skip(kc::sync_after_launch())) {
  const FastPathsOn fast_paths;
  auto be = make_backend("cuda");
  REQUIRE(be->captures_steps());
  Buffer<float> one(*be, 4), sum(*be, 4);
  be->fill(one.data(), 4, 1.0f);
  be->fill(sum.data(), 4, 0.0f);
  be->run_step(4, [&] { be->add_scaled(4, 1.0f, one.data(), sum.data()); });  // the first runs directly
  // A wait inside the step: refused by the capture, so the captured work is
  // dropped unrun, and the step runs directly (once: the sum shows it).
  be->run_step(4, [&] {
    be->add_scaled(4, 1.0f, one.data(), sum.data());
    be->synchronize();
  });
  CHECK_FALSE(be->captures_steps());
  be->run_step(4, [&] { be->add_scaled(4, 1.0f, one.data(), sum.data()); });
  CHECK(sum.download() == std::vector<float>(4, 3.0f));
}

// An MPI rank trains a slice of the population, so a net's gradients must not
// depend on the nets beside it. A conv's weight gradient sums N·Ho·Wo terms in
// parts (their partial sums in scratch, added in order after); here the
// scratch budget holds the partial sums of a slice of 2 nets but not of all 6,
// and the slice's dW must still be the whole's, bit for bit.
TEST_CASE("cuda: a net's conv weight gradient has the same bits in a slice of the population as in the whole") {
  auto gpu = make_backend("cuda");
  const kc::ConvImpl conv = kc::conv_impl();
  kc::set_conv_impl(kc::ConvImpl::implicit_gemm);
  const std::size_t saved = kernels::conv_scratch_budget();
  const ConvShape whole{6, 16, 2, 28, 28, 4, 5, false};  // N·Ho·Wo = 9 216 terms: 3 parts
  ConvShape slice = whole;
  slice.P = 2;
  kernels::set_conv_scratch_budget(3 * slice.w_size() * sizeof(float));  // 3 parts of 2 nets' dW, not of 6
  std::mt19937 rng(7);
  const auto x = check::random_vector<float>(whole.x_size(), rng, -1, 1);
  const auto w = check::random_vector<float>(whole.w_size(), rng, -1, 1);
  const auto dy = check::random_vector<float>(whole.y_size(), rng, -1, 1);
  // dW and db of the nets [first, first + s.P) of the whole population, computed as a population of s.P.
  const auto gradients_of = [&](const ConvShape& s, std::size_t first) {
    const auto nets = [&](const std::vector<float>& v, std::size_t per_net) {
      return std::span<const float>(v).subspan(first * per_net, s.P * per_net);
    };
    Buffer<float> xb(*gpu, s.x_size()), wb(*gpu, s.w_size()), dyb(*gpu, s.y_size());
    Buffer<float> dw(*gpu, s.w_size()), db(*gpu, s.b_size());
    xb.upload(nets(x, whole.x_size() / whole.P));
    wb.upload(nets(w, whole.w_size() / whole.P));
    dyb.upload(nets(dy, whole.y_size() / whole.P));
    gpu->conv2d_backward(s, xb.data(), wb.data(), dyb.data(), nullptr, dw.data(), db.data());
    std::vector<float> out = dw.download();
    for (float v : db.download()) out.push_back(v);
    return out;
  };
  const std::vector<float> all = gradients_of(whole, 0), part = gradients_of(slice, 2);
  const std::size_t w_net = whole.w_size() / whole.P, b_net = whole.b_size() / whole.P;
  std::vector<float> want(all.begin() + 2 * w_net, all.begin() + 4 * w_net);
  want.insert(want.end(), all.begin() + whole.w_size() + 2 * b_net, all.begin() + whole.w_size() + 4 * b_net);
  CHECK_CLOSE_VEC(part, want, 0.0, 0.0);  // no tolerance: the same values
  kernels::set_conv_scratch_budget(saved);
  kc::set_conv_impl(conv);
}

TEST_CASE("cuda: a convolution split into chunks of nets matches the CPU") {
  Harness h;
  const kc::ConvImpl conv = kc::conv_impl();
  kc::set_conv_impl(kc::ConvImpl::im2col);  // the implicit GEMM needs no scratch to split
  const std::size_t saved = kernels::conv_scratch_budget();
  kernels::set_conv_scratch_budget(16 << 10);  // 16 KiB: one or two nets per chunk
  for (const ConvShape& s : {ConvShape{5, 3, 2, 9, 8, 3, 3, false}, ConvShape{5, 4, 1, 10, 10, 3, 3, true}}) {
    CHECK(kernels::conv_scratch(s, true, false, false).nets_per_chunk < s.P);
    check_conv_matches(h, s);
  }
  kernels::set_conv_scratch_budget(saved);
  kc::set_conv_impl(conv);
}
