// Every CPU kernel against its naive definition (float, odd shapes, outputs
// poisoned with NaN so an unwritten element fails), and every backward pass
// against central finite differences in float64.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "check.hpp"
#include "kernels/activation.hpp"
#include "kernels/conv.hpp"
#include "kernels/dense.hpp"
#include "kernels/gemm_cpu.hpp"
#include "kernels/loss.hpp"
#include "kernels/optim.hpp"
#include "kernels/pool.hpp"
#include "kernels/rounding.hpp"
#include "naive.hpp"

namespace k = evoplast::kernels::cpu;
using evoplast::kernels::ConvShape;
using evoplast::kernels::DenseShape;
using evoplast::kernels::DropoutParams;
using evoplast::kernels::PoolShape;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

template <typename T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// ∂/∂θ_i of L(θ) = Σ r ⊙ f(θ), by central differences, for every i.
std::vector<double> numeric_gradient(std::vector<double>& theta,
                                     const std::function<double()>& loss, double h = 1e-5) {
  std::vector<double> g(theta.size());
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const double keep = theta[i];
    theta[i] = keep + h;
    const double up = loss();
    theta[i] = keep - h;
    const double down = loss();
    theta[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

const ConvShape kConvShapes[] = {
    {1, 1, 1, 5, 5, 1, 1, false},  {3, 5, 2, 7, 6, 4, 3, false}, {2, 3, 1, 8, 8, 5, 3, true},
    {1, 2, 3, 9, 7, 2, 5, false},  {3, 1, 1, 28, 28, 4, 3, true},
    {2, 40, 8, 28, 28, 3, 5, false},  // 40 images span two im2col chunks
};

}  // namespace

TEST_CASE("gemm gives the same bits with 1, 2 and 3 threads, and matches the naive product") {
  // Records must not depend on the cores (or an MPI rank's share of them).
  std::mt19937 rng(71);
  struct Shape {
    bool ta, tb;
    int M, N, K;
  };
  for (const Shape s : {Shape{false, false, 64, 32, 784}, Shape{true, false, 32, 784, 64},
                        Shape{false, true, 300, 200, 50}, Shape{true, true, 129, 257, 33}}) {
    CAPTURE(s.M);
    const auto A = check::random_vector<float>(std::size_t(s.M) * s.K, rng, -1, 1);
    const auto B = check::random_vector<float>(std::size_t(s.K) * s.N, rng, -1, 1);
    const int lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::vector<std::vector<float>> C;
    for (int threads : {1, 2, 3}) {
      k::set_cpu_threads(threads);
      C.emplace_back(std::size_t(s.M) * s.N, 0.5f);
      k::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.5f, A.data(), lda, B.data(), ldb, 0.25f, C.back().data(), s.N);
      CHECK(k::cpu_threads() == threads);  // OpenBLAS, one thread a call, leaves ours as asked
    }
    k::set_cpu_threads(0);
    CHECK(C[0] == C[1]);
    CHECK(C[0] == C[2]);
    for (int m = 0; m < s.M; m += 37)
      for (int n = 0; n < s.N; n += 29) {
        double want = 0.25 * 0.5;
        for (int q = 0; q < s.K; ++q)
          want += 1.5 * double(s.ta ? A[std::size_t(q) * lda + m] : A[std::size_t(m) * lda + q]) *
                  double(s.tb ? B[std::size_t(n) * ldb + q] : B[std::size_t(q) * ldb + n]);
        CHECK(C[0][std::size_t(m) * s.N + n] == doctest::Approx(want).epsilon(1e-4));
      }
  }
}

TEST_CASE("tf32 rounds to nearest with ties away from zero, bf16 with ties to even, as the PTX conversions") {
  using evoplast::kernels::bf16_rounded;
  using evoplast::kernels::tf32_rounded;
  const float ulp_tf32 = std::ldexp(1.0f, -10), ulp_bf16 = std::ldexp(1.0f, -7);  // of [1, 2)
  CHECK(tf32_rounded(1.0f + ulp_tf32 / 2) == 1.0f + ulp_tf32);  // a tie, away from zero
  CHECK(tf32_rounded(-(1.0f + ulp_tf32 / 2)) == -(1.0f + ulp_tf32));
  CHECK(tf32_rounded(std::nextafter(1.0f + ulp_tf32 / 2, 1.0f)) == 1.0f);
  CHECK(tf32_rounded(1.0f + 3 * ulp_tf32 / 2) == 1.0f + 2 * ulp_tf32);
  CHECK(bf16_rounded(1.0f + ulp_bf16 / 2) == 1.0f);  // a tie, to the even 1
  CHECK(bf16_rounded(1.0f + 3 * ulp_bf16 / 2) == 1.0f + 2 * ulp_bf16);
  CHECK(bf16_rounded(std::nextafter(1.0f + ulp_bf16 / 2, 2.0f)) == 1.0f + ulp_bf16);
  CHECK(std::isinf(bf16_rounded(std::numeric_limits<float>::max())));
  CHECK(std::isnan(tf32_rounded(kNaN)));
  CHECK(std::isnan(bf16_rounded(kNaN)));
  CHECK(tf32_rounded(-std::numeric_limits<float>::infinity()) == -std::numeric_limits<float>::infinity());
  std::mt19937 rng(5);
  for (float x : check::random_vector<float>(1000, rng, -100, 100)) {  // within half an ulp of 10 or 7 bits
    CHECK(std::abs(tf32_rounded(x) - x) <= std::abs(x) * std::ldexp(1.0f, -11));
    CHECK(std::abs(bf16_rounded(x) - x) <= std::abs(x) * std::ldexp(1.0f, -8));
  }
}

TEST_CASE("gemm under an operand rounding is the fp32 product of the rounded operands, C not rounded") {
  using evoplast::kernels::OperandRounding;
  std::mt19937 rng(72);
  struct Shape {
    bool ta, tb;
    int M, N, K;
  };
  for (const OperandRounding r : {OperandRounding::tf32, OperandRounding::bf16})
    for (const Shape s : {Shape{false, false, 37, 21, 50}, Shape{true, false, 21, 37, 9},
                          Shape{false, true, 300, 7, 33}, Shape{true, true, 5, 140, 64}}) {
      CAPTURE(s.M);
      CAPTURE(int(r));
      // Stored with leading dimensions past their rows (a view into a wider matrix, as the conv's chunks are).
      const int a_rows = s.ta ? s.K : s.M, a_cols = s.ta ? s.M : s.K, lda = a_cols + 3;
      const int b_rows = s.tb ? s.N : s.K, b_cols = s.tb ? s.K : s.N, ldb = b_cols + 5;
      const auto A = check::random_vector<float>(std::size_t(a_rows) * lda, rng, -1, 1);
      const auto B = check::random_vector<float>(std::size_t(b_rows) * ldb, rng, -1, 1);
      const auto C0 = check::random_vector<float>(std::size_t(s.M) * s.N, rng, -1, 1);
      const auto round = [&](std::vector<float> v) {
        for (float& x : v) x = evoplast::kernels::operand_rounded(r, x);
        return v;
      };
      std::vector<float> rounded = C0, want = C0, exact = C0;
      {
        const k::ScopedOperandRounding scope(r);
        k::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 1.0f, rounded.data(), s.N);
      }
      const auto Ar = round(A), Br = round(B);
      k::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, Ar.data(), lda, Br.data(), ldb, 1.0f, want.data(), s.N);
      k::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 1.0f, exact.data(), s.N);
      CHECK(rounded == want);   // the scope's rounding, and only the operands' (C0 enters unrounded)
      CHECK(rounded != exact);  // it rounded: the products of unrounded operands differ
    }
}

TEST_CASE("conv2d_forward matches the naive convolution") {
  std::mt19937 rng(11);
  for (const ConvShape& s : kConvShapes) {
    CAPTURE(s.P); CAPTURE(s.N); CAPTURE(s.Cin); CAPTURE(s.Cout); CAPTURE(s.K); CAPTURE(s.shared_input);
    const auto x = check::random_vector<float>(s.x_size(), rng);
    const auto w = check::random_vector<float>(s.w_size(), rng);
    const auto b = check::random_vector<float>(s.b_size(), rng);
    std::vector<float> y(s.y_size(), kNaN);
    k::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    const auto ref = naive::conv2d(s, to_double(x), to_double(w), to_double(b));
    CHECK_CLOSE_VEC(y, ref, 1e-5, 1e-4);
  }
}

TEST_CASE("conv2d_backward matches finite differences in float64") {
  std::mt19937 rng(12);
  for (ConvShape s : {ConvShape{2, 2, 2, 6, 5, 3, 3, false}, ConvShape{3, 2, 1, 5, 6, 2, 2, true},
                      ConvShape{1, 3, 2, 4, 4, 2, 1, false}}) {
    CAPTURE(s.P); CAPTURE(s.shared_input); CAPTURE(s.K);
    auto x = check::random_vector<double>(s.x_size(), rng);
    auto w = check::random_vector<double>(s.w_size(), rng);
    auto b = check::random_vector<double>(s.b_size(), rng);
    const auto r = check::random_vector<double>(s.y_size(), rng);  // L = Σ r ⊙ y, so dy = r
    std::vector<double> y(s.y_size());
    const auto loss = [&] {
      k::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
      return dot(r, y);
    };
    std::vector<double> dx(s.shared_input ? 0 : s.x_size(), NAN), dw(s.w_size(), NAN),
        db(s.b_size(), NAN);
    k::conv2d_backward(s, x.data(), w.data(), r.data(), s.shared_input ? nullptr : dx.data(),
                       dw.data(), db.data());
    CHECK_CLOSE_VEC(dw, numeric_gradient(w, loss), 1e-7, 1e-6);
    CHECK_CLOSE_VEC(db, numeric_gradient(b, loss), 1e-7, 1e-6);
    if (!s.shared_input) CHECK_CLOSE_VEC(dx, numeric_gradient(x, loss), 1e-7, 1e-6);
  }
}

// ConvShape::input_relu: x = relu(z), and the input gradient comes out with respect to z.
TEST_CASE("conv2d_backward through the ReLU below it matches finite differences of conv(relu(z))") {
  std::mt19937 rng(13);
  ConvShape s{2, 2, 3, 6, 5, 2, 3, false};
  s.input_relu = true;
  auto z = check::random_vector<double>(s.x_size(), rng);
  const auto w = check::random_vector<double>(s.w_size(), rng);
  const auto b = check::random_vector<double>(s.b_size(), rng);
  const auto r = check::random_vector<double>(s.y_size(), rng);  // L = Σ r ⊙ conv(relu(z))
  std::vector<double> x(s.x_size()), y(s.y_size());
  const auto relu = [&] {
    for (std::size_t i = 0; i < z.size(); ++i) x[i] = z[i] > 0 ? z[i] : 0;
  };
  const auto loss = [&] {
    relu();
    k::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    return dot(r, y);
  };
  const auto expected = numeric_gradient(z, loss);
  relu();
  std::vector<double> dz(s.x_size(), NAN);
  k::conv2d_backward<double>(s, x.data(), w.data(), r.data(), dz.data(), nullptr, nullptr);
  CHECK(std::count(dz.begin(), dz.end(), 0.0) > 0);
  CHECK_CLOSE_VEC(dz, expected, 1e-7, 1e-6);
}

TEST_CASE("dense_forward matches the naive product") {
  std::mt19937 rng(21);
  for (DenseShape s : {DenseShape{1, 1, 1, 1, false}, DenseShape{3, 5, 7, 4, false},
                       DenseShape{2, 65, 33, 10, true}, DenseShape{4, 3, 130, 17, false}}) {
    CAPTURE(s.P); CAPTURE(s.N); CAPTURE(s.In); CAPTURE(s.Out); CAPTURE(s.shared_input);
    const auto x = check::random_vector<float>(s.x_size(), rng);
    const auto w = check::random_vector<float>(s.w_size(), rng);
    const auto b = check::random_vector<float>(s.b_size(), rng);
    std::vector<float> y(s.y_size(), kNaN);
    k::dense_forward(s, x.data(), w.data(), b.data(), y.data());
    CHECK_CLOSE_VEC(y, naive::dense(s, to_double(x), to_double(w), to_double(b)), 1e-5, 1e-4);
  }
}

// With as many nets as threads the nets are shared among the threads (for_each_net), with fewer each GEMM's
// blocks are: either way the bits of one thread's run. 300 outputs make 3 blocks of gemm's split.
TEST_CASE("dense layers give one thread's bits whether the nets or each GEMM's blocks are shared") {
  std::mt19937 rng(24);
  const DenseShape s{3, 64, 300, 200, false};
  const auto x = check::random_vector<float>(s.x_size(), rng), w = check::random_vector<float>(s.w_size(), rng);
  const auto b = check::random_vector<float>(s.b_size(), rng), dy = check::random_vector<float>(s.y_size(), rng);
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3, 4}) {  // 3: the nets shared; 4: the blocks
    k::set_cpu_threads(threads);
    std::vector<float> y(s.y_size()), dx(s.x_size()), dw(s.w_size()), db(s.b_size());
    k::dense_forward(s, x.data(), w.data(), b.data(), y.data());
    k::dense_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    for (auto* v : {&dx, &dw, &db}) y.insert(y.end(), v->begin(), v->end());
    runs.push_back(y);
  }
  k::set_cpu_threads(0);
  for (std::size_t i = 1; i < runs.size(); ++i) CHECK(runs[i] == runs[0]);
}

TEST_CASE("dense_backward matches finite differences in float64") {
  std::mt19937 rng(22);
  for (DenseShape s : {DenseShape{3, 4, 6, 5, false}, DenseShape{2, 3, 5, 2, true}}) {
    CAPTURE(s.shared_input);
    auto x = check::random_vector<double>(s.x_size(), rng);
    auto w = check::random_vector<double>(s.w_size(), rng);
    auto b = check::random_vector<double>(s.b_size(), rng);
    const auto r = check::random_vector<double>(s.y_size(), rng);
    std::vector<double> y(s.y_size());
    const auto loss = [&] {
      k::dense_forward(s, x.data(), w.data(), b.data(), y.data());
      return dot(r, y);
    };
    std::vector<double> dx(s.shared_input ? 0 : s.x_size(), NAN), dw(s.w_size(), NAN),
        db(s.b_size(), NAN);
    k::dense_backward(s, x.data(), w.data(), r.data(), s.shared_input ? nullptr : dx.data(),
                      dw.data(), db.data());
    CHECK_CLOSE_VEC(dw, numeric_gradient(w, loss), 1e-7, 1e-6);
    CHECK_CLOSE_VEC(db, numeric_gradient(b, loss), 1e-7, 1e-6);
    if (!s.shared_input) CHECK_CLOSE_VEC(dx, numeric_gradient(x, loss), 1e-7, 1e-6);
  }
}

TEST_CASE("maxpool2d forward matches the naive maximum — backward matches finite differences") {
  std::mt19937 rng(31);
  for (PoolShape s : {PoolShape{1, 2, 2, 2}, PoolShape{6, 7, 5, 2}, PoolShape{4, 9, 9, 3},
                      PoolShape{3 * 5 * 4, 24, 24, 2}}) {
    CAPTURE(s.planes); CAPTURE(s.H); CAPTURE(s.W); CAPTURE(s.k);
    const auto x = check::random_vector<float>(s.x_size(), rng);
    std::vector<float> y(s.y_size(), kNaN);
    std::vector<std::int32_t> arg(s.y_size(), -1);
    k::maxpool2d_forward(s, x.data(), y.data(), arg.data());
    CHECK_CLOSE_VEC(y, naive::maxpool2d(s, to_double(x)), 0.0, 0.0);
    // Ties in most windows (ReLU's zeros, values rounded to halves) and NaN,
    // which never wins a comparison: the argmax is the first element, in row
    // order, above every one before it — what the GPU's kernels choose too.
    auto tied = x;
    for (std::size_t i = 0; i < tied.size(); ++i)
      tied[i] = i % 17 == 5 ? kNaN : std::max(std::round(tied[i] * 2) / 2, 0.0f);
    k::maxpool2d_forward(s, tied.data(), y.data(), arg.data());
    const auto first = naive::maxpool2d_argmax(s, tied);
    REQUIRE(arg == first);
    for (std::size_t o = 0; o < y.size(); ++o) {
      const float* plane = tied.data() + std::size_t(o / (s.Ho() * s.Wo())) * s.H * s.W;
      REQUIRE(std::bit_cast<std::uint32_t>(y[o]) == std::bit_cast<std::uint32_t>(plane[first[o]]));
    }
  }
  // Backward, in float64; random inputs have no ties, so the max is differentiable.
  const PoolShape s{3, 7, 6, 2};
  auto x = check::random_vector<double>(s.x_size(), rng);
  const auto r = check::random_vector<double>(s.y_size(), rng);
  std::vector<double> y(s.y_size());
  std::vector<std::int32_t> arg(s.y_size());
  const auto loss = [&] {
    k::maxpool2d_forward(s, x.data(), y.data(), arg.data());
    return dot(r, y);
  };
  loss();
  std::vector<double> dx(s.x_size(), NAN);
  k::maxpool2d_backward(s, r.data(), arg.data(), dx.data());
  CHECK_CLOSE_VEC(dx, numeric_gradient(x, loss), 1e-7, 1e-6);
}

TEST_CASE("relu forward · in place too · and backward against finite differences") {
  std::mt19937 rng(41);
  auto x = check::random_vector<float>(1001, rng);
  std::vector<float> y(x.size(), kNaN);
  k::relu_forward(x.size(), x.data(), y.data());
  CHECK_CLOSE_VEC(y, naive::relu(to_double(x)), 0.0, 0.0);
  auto inplace = x;
  k::relu_forward(inplace.size(), inplace.data(), inplace.data());
  CHECK_CLOSE_VEC(inplace, y, 0.0, 0.0);

  // Keep inputs away from the kink at 0 so finite differences are exact.
  auto xd = check::random_vector<double>(200, rng, 0.1, 1.0);
  for (std::size_t i = 0; i < xd.size(); i += 2) xd[i] = -xd[i];
  const auto r = check::random_vector<double>(xd.size(), rng);
  std::vector<double> yd(xd.size());
  const auto loss = [&] {
    k::relu_forward(xd.size(), xd.data(), yd.data());
    return dot(r, yd);
  };
  loss();
  std::vector<double> dx(xd.size(), NAN);
  k::relu_backward(xd.size(), yd.data(), r.data(), dx.data());
  CHECK_CLOSE_VEC(dx, numeric_gradient(xd, loss), 1e-8, 1e-7);
}

TEST_CASE("dropout keeps 1 − rate of each net's elements · scaled · and backward uses the same mask") {
  const int P = 3;
  const std::size_t n = 100000;
  const DropoutParams d{0.25f, 7, 5, 42};
  std::vector<float> x(P * n, 2.0f), y(P * n, kNaN);
  k::dropout_forward(P, n, d, x.data(), y.data());
  std::vector<std::size_t> kept(P, 0);
  std::size_t same_mask = 0;
  for (int p = 0; p < P; ++p)
    for (std::size_t i = 0; i < n; ++i) {
      const float v = y[p * n + i];
      REQUIRE((v == 0.0f || v == doctest::Approx(2.0f / 0.75f)));
      kept[p] += v != 0.0f;
      if (p > 0) same_mask += (v != 0.0f) == (y[i] != 0.0f);
    }
  for (int p = 0; p < P; ++p) CHECK(double(kept[p]) / n == doctest::Approx(0.75).epsilon(0.01));
  // Nets draw independent masks: agreement ≈ 0.75² + 0.25² = 0.625, not 1.
  CHECK(double(same_mask) / (2 * n) == doctest::Approx(0.625).epsilon(0.02));

  // Backward: gradient flows exactly where the forward kept the element.
  std::vector<float> dy(P * n, 1.0f), dx(P * n, kNaN);
  k::dropout_backward(P, n, d, dy.data(), dx.data());
  for (std::size_t i = 0; i < P * n; ++i) REQUIRE(dx[i] == y[i] / 2.0f);

  // Another step draws another mask; rate 0 is the identity.
  std::vector<float> y2(P * n);
  k::dropout_forward(P, n, DropoutParams{0.25f, 7, 5, 43}, x.data(), y2.data());
  CHECK(y2 != y);
  k::dropout_forward(P, n, DropoutParams{0.0f, 7, 5, 42}, x.data(), y2.data());
  CHECK(y2 == x);

  // A slice of the population (nets 1… as first_net 1) draws the whole's masks.
  std::vector<float> tail((P - 1) * n, kNaN);
  DropoutParams slice = d;
  slice.first_net = 1;
  k::dropout_forward(P - 1, n, slice, x.data() + n, tail.data());
  CHECK(std::equal(tail.begin(), tail.end(), y.begin() + std::ptrdiff_t(n)));
}

TEST_CASE("log_softmax_nll matches the definition — backward matches finite differences") {
  std::mt19937 rng(51);
  const int P = 3, N = 7, C = 10;
  const auto z = check::random_vector<float>(std::size_t(P) * N * C, rng, -4, 4);
  std::vector<std::int32_t> labels(N);
  for (int n = 0; n < N; ++n) labels[n] = (n * 3) % C;
  std::vector<float> logp(z.size(), kNaN), loss(P, kNaN);
  k::log_softmax_nll_forward(P, N, C, z.data(), labels.data(), logp.data(), loss.data());
  std::vector<double> ref_logp, ref_loss;
  naive::log_softmax_nll(P, N, C, to_double(z), labels, ref_logp, ref_loss);
  CHECK_CLOSE_VEC(logp, ref_logp, 1e-5, 1e-5);
  CHECK_CLOSE_VEC(loss, ref_loss, 1e-5, 1e-5);

  // Large logits must not overflow.
  std::vector<float> big(z.size(), 1000.0f), big_logp(z.size()), big_loss(P);
  k::log_softmax_nll_forward(P, N, C, big.data(), labels.data(), big_logp.data(), big_loss.data());
  for (float l : big_loss) CHECK(l == doctest::Approx(std::log(10.0)));

  // Backward in float64: the gradient of Σ_p loss[p] with respect to the logits.
  auto zd = to_double(z);
  std::vector<double> lp(zd.size()), ls(P);
  const auto total = [&] {
    k::log_softmax_nll_forward(P, N, C, zd.data(), labels.data(), lp.data(), ls.data());
    double s = 0;
    for (double v : ls) s += v;
    return s;
  };
  total();
  std::vector<double> dz(zd.size(), NAN);
  k::log_softmax_nll_backward(P, N, C, lp.data(), labels.data(), dz.data());
  CHECK_CLOSE_VEC(dz, numeric_gradient(zd, total), 1e-8, 1e-6);
}

TEST_CASE("count_correct counts argmax hits per net · first maximum on ties") {
  const int P = 2, N = 3, C = 3;
  const std::vector<float> scores = {
      0, 1, 0,   5, 1, 1,   2, 2, 1,   // net 0: argmax 1, 0, 0 (tie → first)
      1, 0, 0,   0, 0, 9,   0, 3, 1};  // net 1: argmax 0, 2, 1
  const std::vector<std::int32_t> labels = {1, 0, 1};
  std::vector<std::int64_t> correct(P, -1);
  k::count_correct(P, N, C, scores.data(), labels.data(), correct.data());
  CHECK(correct[0] == 2);
  CHECK(correct[1] == 1);
}

TEST_CASE("Adadelta matches hand-computed steps (torch.optim.Adadelta · ρ 0.9 · ε 1e-6)") {
  // Net 0 follows gradients 0.5, −0.25, 0.1 from w = 1 with lr 1; values
  // computed by hand from the update rule. Net 1 has lr 0 and must not move.
  const float lr[2] = {1.0f, 0.0f};
  std::vector<double> w = {1.0, 1.0}, v = {0, 0}, u = {0, 0};
  const double want_w[3] = {0.9968377855834876, 0.9989228726112789, 0.9979908309069295};
  const double want_v[3] = {0.025, 0.02875, 0.026875};
  const double want_u[3] = {9.99960001599936e-07, 1.3347227927863166e-06, 1.2881206873723343e-06};
  const double grads[3] = {0.5, -0.25, 0.1};
  for (int t = 0; t < 3; ++t) {
    std::vector<double> g = {grads[t], grads[t]};
    k::adadelta_step(2, 1, lr, 0.9f, 1e-6f, w.data(), g.data(), v.data(), u.data());
    CHECK(w[0] == doctest::Approx(want_w[t]).epsilon(1e-9));
    CHECK(v[0] == doctest::Approx(want_v[t]).epsilon(1e-6));
    CHECK(u[0] == doctest::Approx(want_u[t]).epsilon(1e-6));
    CHECK(w[1] == 1.0);
  }
  // The float version agrees with the double one.
  std::vector<float> wf = {1.0f}, vf = {0}, uf = {0}, gf = {0.5f};
  k::adadelta_step(1, 1, lr, 0.9f, 1e-6f, wf.data(), gf.data(), vf.data(), uf.data());
  CHECK(wf[0] == doctest::Approx(want_w[0]).epsilon(1e-6));
}

TEST_CASE("SGD applies each net's own learning rate") {
  const float lr[3] = {0.1f, 0.0f, 2.0f};
  std::vector<float> w = {1, 2, 1, 2, 1, 2}, g = {1, -1, 1, -1, 1, -1};
  k::sgd_step(3, 2, lr, w.data(), g.data());
  CHECK(w == std::vector<float>{0.9f, 2.1f, 1.0f, 2.0f, -1.0f, 4.0f});
}
