// k-winners-take-all (kernels/sparsity.hpp), the label-gated Hebbian term and
// the row bound (kernels/plasticity.hpp), against their definitions; then the
// `fly` rule on a class-incremental protocol.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "check.hpp"
#include "engine/continual.hpp"
#include "engine/cpu_backend.hpp"
#include "engine/network.hpp"
#include "engine/plasticity.hpp"
#include "kernels/plasticity.hpp"
#include "kernels/sparsity.hpp"
#include "synthetic.hpp"

using namespace evoplast;
using namespace evoplast::engine;
namespace k = evoplast::kernels::cpu;
using kernels::KwtaParams;
using kernels::PlasticityCoeffs;

namespace {

// The winners by the definition: sort (value desc, index asc), take `keep`.
std::vector<char> winners_by_sorting(const std::vector<float>& row, int keep) {
  std::vector<int> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return row[std::size_t(a)] > row[std::size_t(b)]; });
  std::vector<char> won(row.size(), 0);
  for (int i = 0; i < keep && i < int(row.size()); ++i) won[std::size_t(idx[std::size_t(i)])] = 1;
  return won;
}

}  // namespace

TEST_CASE("k-WTA keeps exactly the keep largest units per sample, ties to the lower index") {
  const int P = 3, N = 4, units = 37;
  const KwtaParams params[P] = {{5, 0}, {1, 0}, {36, 0}};
  std::mt19937 rng(7);
  std::vector<float> y(std::size_t(P) * N * units);
  // Values on a coarse grid (0, 0.25, …, 1): many ties at every k-th value.
  for (auto& v : y) v = float(rng() % 5) * 0.25f;
  const auto in = y;
  std::vector<float> scale(std::size_t(P) * N, -1);
  k::kwta_forward(P, N, units, params, y.data(), scale.data());
  for (int p = 0; p < P; ++p)
    for (int n = 0; n < N; ++n) {
      const std::size_t off = (std::size_t(p) * N + n) * units;
      const std::vector<float> row(in.begin() + long(off), in.begin() + long(off + units));
      const auto won = winners_by_sorting(row, params[p].keep);
      int kept = 0;
      for (int i = 0; i < units; ++i) {
        CHECK(y[off + std::size_t(i)] == (won[std::size_t(i)] ? row[std::size_t(i)] : 0.0f));
        kept += won[std::size_t(i)];
      }
      CHECK(kept == params[p].keep);
      CHECK(scale[std::size_t(p) * N + n] == 1.0f);
    }
}

TEST_CASE("k-WTA at k = 100% is the identity, and its backward passes every nonzero unit's gradient") {
  const int P = 2, N = 3, units = 11;
  const KwtaParams params[P] = {{units, 0}, {1 << 30, 0}};
  std::mt19937 rng(3);
  auto y = check::random_vector<float>(std::size_t(P) * N * units, rng, 0, 1);
  y[5] = 0;
  const auto in = y;
  std::vector<float> scale(std::size_t(P) * N);
  k::kwta_forward(P, N, units, params, y.data(), scale.data());
  CHECK(y == in);
  const auto dy = check::random_vector<float>(y.size(), rng);
  std::vector<float> dx(y.size(), NAN);
  k::kwta_backward(P, N, units, params, y.data(), scale.data(), dy.data(), dx.data());
  for (std::size_t i = 0; i < y.size(); ++i) CHECK(dx[i] == (i == 5 ? 0.0f : dy[i]));
}

TEST_CASE("k-WTA orders every bit pattern: NaN, infinities and −0 select without breaking") {
  const int units = 6;
  const KwtaParams params[1] = {{3, 0}};
  std::vector<float> y = {-0.0f, 0.0f, INFINITY, -INFINITY, 1.0f, -1.0f}, scale(1);
  k::kwta_forward(1, 1, units, params, y.data(), scale.data());
  CHECK(y[2] == INFINITY);
  CHECK(y[4] == 1.0f);
  CHECK(std::signbit(y[1]) == false);  // +0 outranks −0
  CHECK(y[3] == 0.0f);
  std::vector<float> bad = {NAN, 2.0f, 1.0f, 0.5f, 0.25f, 0.0f};
  k::kwta_forward(1, 1, units, params, bad.data(), scale.data());
  int nonzero = 0;
  for (float v : bad) nonzero += v != 0.0f;  // NaN counts as kept or not, but exactly 3 survive
  CHECK(nonzero == 3);
}

TEST_CASE("normalised k-WTA: winners at unit RMS, and the backward pass is the exact gradient") {
  const int P = 2, N = 3, units = 9;
  const KwtaParams params[P] = {{4, 1}, {units, 1}};
  std::mt19937 rng(11);
  // Distinct positive values, so a small nudge never changes the winners.
  std::vector<double> r(std::size_t(P) * N * units);
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = 0.2 + 0.1 * double(i % units) + 0.013 * double(rng() % 7);
  const auto forward = [&](std::vector<double> in) {
    std::vector<double> s(std::size_t(P) * N);
    k::kwta_forward(P, N, units, params, in.data(), s.data());
    return std::pair{in, s};
  };
  const auto [y, s] = forward(r);
  for (int p = 0; p < P; ++p)
    for (int n = 0; n < N; ++n) {
      double sq = 0;
      int active = 0;
      for (int i = 0; i < units; ++i) {
        const double v = y[(std::size_t(p) * N + n) * units + std::size_t(i)];
        sq += v * v;
        active += v != 0;
      }
      CHECK(active == params[p].keep);
      CHECK(std::sqrt(sq / active) == doctest::Approx(1.0).epsilon(1e-6));
    }
  // Loss L = Σ c·y: the backward of dy = c must equal dL/dr by central differences.
  const auto c = check::random_vector<double>(y.size(), rng);
  std::vector<double> dx(y.size());
  k::kwta_backward(P, N, units, params, y.data(), s.data(), c.data(), dx.data());
  const auto loss = [&](const std::vector<double>& in) {
    const auto out = forward(in).first;
    return std::inner_product(out.begin(), out.end(), c.begin(), 0.0);
  };
  for (std::size_t i = 0; i < r.size(); ++i) {
    auto up = r, down = r;
    up[i] += 1e-6;
    down[i] -= 1e-6;
    CHECK(dx[i] == doctest::Approx((loss(up) - loss(down)) / 2e-6).epsilon(1e-5));
  }
}

TEST_CASE("the label-gated Hebbian term: μ = 1 stacks the one-hot label, μ = 0.25 mixes it with y") {
  const int P = 2, N = 3, Out = 4, S = 1;
  std::vector<PlasticityCoeffs> c(P);
  c[0].label_mix = 1;
  c[1].label_mix = 0.25f;
  for (auto& ci : c) ci.A = 1;  // the Hebbian rows are read (else they are 0)
  std::mt19937 rng(5);
  const auto e = check::random_vector<float>(std::size_t(P) * N * Out, rng);
  const auto y = check::random_vector<float>(std::size_t(P) * N * Out, rng, 0, 2);
  const std::int32_t labels[N] = {2, 0, 2};
  std::vector<float> theta(std::size_t(P) * Out, 0), z(std::size_t(P) * N * 2 * Out), my(P * Out), my2(P * Out);
  k::stack_error_and_hebb(P, N, Out, S, c.data(), e.data(), y.data(), labels, theta.data(), z.data(), my.data(),
                          my2.data());
  for (int p = 0; p < P; ++p)
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < Out; ++o) {
        const float onehot = labels[n] == o ? 1.0f : 0.0f, yv = y[(std::size_t(p) * N + n) * Out + std::size_t(o)];
        const float want = (p == 0 ? onehot : 0.75f * yv + 0.25f * onehot) / float(N);
        CHECK(z[(std::size_t(p) * N + n) * 2 * Out + std::size_t(Out + o)] == doctest::Approx(want));
      }
  // Without labels (a hidden layer) μ is ignored: ŷ = y.
  k::stack_error_and_hebb(P, N, Out, S, c.data(), e.data(), y.data(), nullptr, theta.data(), z.data(), my.data(),
                          my2.data());
  CHECK(z[std::size_t(Out)] == doctest::Approx(y[0] / float(N)));
}

TEST_CASE("the row bound scales rows above w_norm to exactly w_norm and leaves the others") {
  const int P = 2, Out = 3, In = 5;
  std::vector<PlasticityCoeffs> c(P);
  c[0].w_norm = 1.0f;
  c[1].w_norm = 0;  // no bound
  std::vector<float> w(std::size_t(P) * Out * In, 0.1f);
  for (int i = 0; i < In; ++i) w[std::size_t(In + i)] = 2.0f;  // net 0, row 1: norm 2·√5
  const auto before = w;
  k::plasticity_bound_rows(P, Out, In, c.data(), w.data());
  double sq = 0;
  for (int i = 0; i < In; ++i) sq += double(w[std::size_t(In + i)]) * w[std::size_t(In + i)];
  CHECK(std::sqrt(sq) == doctest::Approx(1.0).epsilon(1e-6));
  for (int i = 0; i < In; ++i) CHECK(w[std::size_t(i)] == before[std::size_t(i)]);  // norm 0.22 < 1
  for (std::size_t i = std::size_t(Out) * In; i < w.size(); ++i) CHECK(w[i] == before[i]);
}

TEST_CASE("label-gated learning changes only the labelled class's synapses from active units") {
  CpuBackend be;
  const NetSpec spec = NetSpec::parse("mlp40x1").adapted(4, 4, 10);
  const int N = 8;
  PopulationNet net(be, spec, 1, N);
  net.init_params(1, true);
  Rule fly = named_rule("fly");
  fly.output.w_norm = 0;  // unbounded here, so each change is exactly η·A·⟨label·x⟩
  Plasticity plastic(be, net, {fly}, 1);
  std::mt19937 rng(2);
  Buffer<float> xb(be, std::size_t(N) * 16);
  xb.upload(check::random_vector<float>(std::size_t(N) * 16, rng, -1, 1));
  Buffer<std::int32_t> yb(be, N);
  yb.upload(std::vector<std::int32_t>(N, 3));  // every sample of class 3
  const auto w_hidden = net.params()[0].value.download(), w_out = net.params()[2].value.download();
  net.forward(xb.data(), N, true, 1, 0);
  std::vector<float> h(std::size_t(N) * 40);
  be.to_host(h.data(), net.activation(net.layers()[1].act_out), h.size() * sizeof(float));
  for (int n = 0; n < N; ++n) {  // k-WTA at 5% of 40 units: 2 winners per sample
    int active = 0;
    for (int u = 0; u < 40; ++u) active += h[std::size_t(n) * 40 + std::size_t(u)] != 0;
    CHECK(active <= 2);
  }
  plastic.step(yb.data(), N, 1.0f, 0);
  CHECK(net.params()[0].value.download() == w_hidden);  // the expansion is fixed
  const auto after = net.params()[2].value.download();
  const float eta = 1.0f * fly.lr_scale;
  for (int o = 0; o < 10; ++o)
    for (int j = 0; j < 40; ++j) {
      double mean_h = 0;
      for (int n = 0; n < N; ++n) mean_h += h[std::size_t(n) * 40 + std::size_t(j)];
      mean_h /= N;
      const std::size_t i = std::size_t(o) * 40 + std::size_t(j);
      if (o != 3 || mean_h == 0) CHECK(after[i] == w_out[i]);
      else CHECK(after[i] - w_out[i] == doctest::Approx(eta * mean_h).epsilon(1e-4));
    }
}

TEST_CASE("fly learns class-incrementally where fine-tuning forgets every earlier task") {
  synthetic::Protocol sp("split-class", 2000, 600, 200, /*overlapping=*/true);
  CpuBackend be;
  ContinualConfig cc;
  cc.net = "mlp400x1";
  cc.epochs = 5;
  cc.batch = 32;
  const auto res = run_continual(be, sp.protocol, {named_rule("fly"), named_rule("finetune")}, {0, 0}, cc);
  const double fly = res.nets[0].test.acc, finetune = res.nets[1].test.acc;
  CAPTURE(fly);
  CAPTURE(finetune);
  CHECK(finetune < 0.35);  // about 0.2: only the last task's two classes are recognised
  CHECK(fly > 0.8);        // no interference: earlier classes' rows never change
  CHECK(res.nets[0].test.bwt > -0.1);
}

TEST_CASE("backprop through k-WTA (plain and normalised) is the gradient of the loss") {
  CpuBackend be;
  const NetSpec spec = NetSpec::parse("mlp24x1").adapted(4, 4, 10);
  const int N = 6, P = 2;
  PopulationNet net(be, spec, P, N);
  net.init_params(7, false);
  net.set_kwta(0, {KwtaParams{8, 1}, KwtaParams{5, 0}});
  std::mt19937 rng(9);
  Buffer<float> xb(be, std::size_t(N) * 16);
  xb.upload(check::random_vector<float>(std::size_t(N) * 16, rng, -2, 2));
  Buffer<std::int32_t> yb(be, N);
  yb.upload(std::vector<std::int32_t>{0, 3, 5, 3, 9, 1});
  const auto loss = [&] {
    net.forward(xb.data(), N, false);
    return net.backward(yb.data(), N);  // mean loss per net; fills the gradients
  };
  loss();
  Param& w1 = net.params()[0];
  const auto grad = w1.grad.download();
  auto w = w1.value.download();
  std::uniform_int_distribution<std::size_t> pick(0, w1.per_net - 1);
  for (int p = 0; p < P; ++p)
    for (int t = 0; t < 12; ++t) {
      const std::size_t i = std::size_t(p) * w1.per_net + pick(rng);
      const float keep = w[i], h = 1e-3f;
      w[i] = keep + h;
      w1.value.upload(w);
      const double up = loss()[std::size_t(p)];
      w[i] = keep - h;
      w1.value.upload(w);
      const double down = loss()[std::size_t(p)];
      w[i] = keep;
      w1.value.upload(w);
      CAPTURE(p);
      CAPTURE(i);
      CHECK(grad[i] == doctest::Approx((up - down) / (2 * h)).epsilon(0.05).scale(0.02));
    }
}
