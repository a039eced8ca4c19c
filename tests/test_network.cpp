// The population network: architectures, independence of the nets, agreement
// with a lone net, and learning a fixed batch.
#include <doctest/doctest.h>

#include <random>

#include "check.hpp"
#include "engine/counting_backend.hpp"
#include "engine/cpu_backend.hpp"
#include "engine/errors.hpp"
#include "engine/memory_plan.hpp"
#include "engine/network.hpp"
#include "kernels/conv_plan.hpp"
#include "engine/optimizer.hpp"

using namespace evoplast::engine;

namespace {

struct Batch {
  std::vector<float> x;
  std::vector<std::int32_t> y;
};

Batch random_batch(int N, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Batch b{check::random_vector<float>(std::size_t(N) * 28 * 28, rng, -0.5, 2.5), {}};
  for (int n = 0; n < N; ++n) b.y.push_back(std::int32_t(rng() % 10));
  return b;
}

// Everything one forward + backward produces for net p: logits and every gradient.
std::vector<float> outputs_of(PopulationNet& net, Backend& be, const Batch& b, int p) {
  const int N = int(b.y.size()), P = net.population();
  Buffer<float> x(be, b.x.size());
  Buffer<std::int32_t> y(be, b.y.size());
  x.upload(b.x);
  y.upload(b.y);
  const float* logits = net.forward(x.data(), N, /*train=*/true, 3, 9);
  std::vector<float> all(std::size_t(P) * N * 10);
  be.to_host(all.data(), logits, all.size() * sizeof(float));
  std::vector<float> out(all.begin() + std::size_t(p) * N * 10,
                         all.begin() + std::size_t(p + 1) * N * 10);
  const auto loss = net.backward(y.data(), N);
  out.push_back(loss[p]);
  for (auto& prm : net.params()) {
    const auto g = prm.grad.download();
    out.insert(out.end(), g.begin() + p * prm.per_net, g.begin() + (p + 1) * prm.per_net);
  }
  return out;
}

}  // namespace

TEST_CASE("NetSpec: the seed CNN has the PyTorch example's 1 199 882 parameters") {
  CpuBackend be;
  PopulationNet net(be, NetSpec::seed_cnn(), 2, 4);
  CHECK(net.params_per_net() == 1199882);
  CHECK(net.params().size() == 8);
  PopulationNet mlp(be, NetSpec::parse("mlp400x2"), 1, 4);
  CHECK(mlp.params_per_net() == 784 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10);
  CHECK(NetSpec::parse("mlp256-128").layers.size() == 6);
  CHECK_THROWS_AS(NetSpec::parse("resnet"), EngineError);
  // A size of 0 is a size error, not a spelling one.
  CHECK_THROWS_WITH_AS(NetSpec::parse("mlp0x2"), "--net 'mlp0x2': a layer of width 0: must be at least 1", EngineError);
  CHECK_THROWS_WITH_AS(NetSpec::parse("mlp400x0"), "--net 'mlp400x0': a depth of 0: must be at least 1", EngineError);
  CHECK_THROWS_WITH_AS(NetSpec::parse("mlp256-0"), "--net 'mlp256-0': a layer of width 0: must be at least 1",
                       EngineError);
  CHECK_THROWS_AS(NetSpec::parse("mlp400x"), EngineError);
  // A size over the engine's limits names the limit, not the syntax.
  CHECK_THROWS_WITH_AS(NetSpec::parse("mlp99999999x1"),
                       "--net 'mlp99999999x1': a layer of width 99999999 is over the limit of 65536", EngineError);
  CHECK_THROWS_WITH_AS(NetSpec::parse("mlp256-99999999999999"),
                       "--net 'mlp256-99999999999999': a layer of width 99999999999999 is over the limit of 65536",
                       EngineError);
  CHECK_THROWS_WITH_AS(NetSpec::parse("mlp400x65"), "--net 'mlp400x65': a depth of 65 is over the limit of 64",
                       EngineError);
  CHECK(NetSpec::parse("mlp65536x1").layers.size() == 4);
  CHECK_THROWS_AS(PopulationNet(be, NetSpec::seed_cnn(), 0, 4), EngineError);
}

TEST_CASE("population independence: changing net q never changes net p") {
  CpuBackend be;
  for (const char* arch : {"cnn", "mlp32x2"}) {
    CAPTURE(arch);
    PopulationNet net(be, NetSpec::parse(arch), 3, 5);
    net.init_params(4, /*same_for_all=*/false);
    const Batch b = random_batch(5, 8);
    const auto before0 = outputs_of(net, be, b, 0), before2 = outputs_of(net, be, b, 2);
    const auto before1 = outputs_of(net, be, b, 1);
    // Overwrite net 1's parameters with large noise.
    std::mt19937 rng(99);
    for (auto& prm : net.params()) {
      auto v = prm.value.download();
      for (std::size_t j = 0; j < prm.per_net; ++j) v[prm.per_net + j] = float(rng() % 1000) / 100;
      prm.value.upload(v);
    }
    CHECK(outputs_of(net, be, b, 0) == before0);  // bit for bit
    CHECK(outputs_of(net, be, b, 2) == before2);
    CHECK(outputs_of(net, be, b, 1) != before1);
  }
}

TEST_CASE("a net inside a population computes what it computes alone") {
  CpuBackend be;
  const Batch b = random_batch(6, 5);
  PopulationNet pop(be, NetSpec::seed_cnn(), 3, 6);
  pop.init_params(7, /*same_for_all=*/false);
  PopulationNet lone(be, NetSpec::seed_cnn(), 1, 6);
  // Give the lone net the parameters of population net 2.
  for (std::size_t i = 0; i < pop.params().size(); ++i) {
    const auto v = pop.params()[i].value.download();
    const std::size_t n = pop.params()[i].per_net;
    lone.params()[i].value.upload(std::vector<float>(v.begin() + 2 * n, v.begin() + 3 * n));
  }
  // Dropout masks depend on the net index, so compare in evaluation mode.
  Buffer<float> x(be, b.x.size());
  x.upload(b.x);
  std::vector<float> a(3 * 6 * 10), c(6 * 10);
  be.to_host(a.data(), pop.forward(x.data(), 6, false), a.size() * 4);
  be.to_host(c.data(), lone.forward(x.data(), 6, false), c.size() * 4);
  CHECK_CLOSE_VEC(std::vector<float>(a.begin() + 120, a.end()), c, 1e-6, 1e-5);
}

TEST_CASE("same_for_all gives every net the same initial weights — otherwise they differ") {
  CpuBackend be;
  PopulationNet a(be, NetSpec::parse("mlp16x1"), 3, 2);
  a.init_params(1, true);
  const auto v = a.params()[0].value.download();
  const std::size_t n = a.params()[0].per_net;
  CHECK(std::vector<float>(v.begin(), v.begin() + n) ==
        std::vector<float>(v.begin() + 2 * n, v.end()));
  a.init_params(1, false);
  const auto w = a.params()[0].value.download();
  CHECK(std::vector<float>(w.begin(), w.begin() + n) !=
        std::vector<float>(w.begin() + 2 * n, w.end()));
  // PyTorch's default bound 1/√fan_in.
  for (float x : w) CHECK(std::abs(x) <= 1.0f / 28.0f);
}

TEST_CASE("Adadelta training drives the loss on a fixed batch down for every net") {
  CpuBackend be;
  const Batch b = random_batch(16, 3);
  PopulationNet net(be, NetSpec::seed_cnn(), 2, 16);
  net.init_params(2, false);
  Optimizer opt(be, net, {});
  Buffer<float> x(be, b.x.size());
  Buffer<std::int32_t> y(be, b.y.size());
  x.upload(b.x);
  y.upload(b.y);
  std::vector<float> first, last;
  for (int step = 0; step < 30; ++step) {
    net.forward(x.data(), 16, true, 1, std::uint64_t(step));
    last = net.backward(y.data(), 16);
    if (step == 0) first = last;
    opt.step({1.0f, 1.0f});
  }
  for (int p = 0; p < 2; ++p) {
    CAPTURE(p);
    CHECK(last[p] < 0.3f * first[p]);
  }
  CHECK(step_lr(1.0f, 0.7f, 2) == doctest::Approx(0.49f));
}

// Optimizer::backward_and_step hands the dense layers' Adadelta to the backward pass
// (Backend::dense_backward_adadelta); each net at its own rate, the result is backward then step.
TEST_CASE("Adadelta taken along the backward pass gives the weights of backward then step") {
  CpuBackend be;
  const Batch b = random_batch(8, 5);
  const NetSpec spec = NetSpec::parse("cnn").adapted(28, 28, 10);
  std::vector<std::vector<float>> weights;
  for (bool along : {false, true}) {
    PopulationNet net(be, spec, 2, 8);
    net.init_params(3, false);
    Optimizer opt(be, net, {});
    Buffer<float> x(be, b.x.size());
    Buffer<std::int32_t> y(be, b.y.size());
    x.upload(b.x);
    y.upload(b.y);
    const std::vector<float> lr = {1.0f, 0.5f};
    for (int step = 0; step < 3; ++step) {
      net.forward(x.data(), 8, true, 1, std::uint64_t(step));
      if (along) {
        opt.backward_and_step(y.data(), 8, lr);
      } else {
        net.backward(y.data(), 8);
        opt.step(lr);
      }
    }
    std::vector<float> all;
    for (auto& prm : net.params()) {
      const auto v = prm.value.download();
      all.insert(all.end(), v.begin(), v.end());
    }
    weights.push_back(all);
  }
  CHECK(weights[1] == weights[0]);
}

namespace {
// A CPU backend with a small "device memory", to see out-of-memory advice.
class TinyMemoryBackend : public CpuBackend {
 public:
  explicit TinyMemoryBackend(std::size_t limit) : limit_(limit) {}
  void* allocate(std::size_t bytes) override {
    if (used_ + bytes > limit_) throw OutOfDeviceMemory(bytes, limit_ - used_);
    used_ += bytes;
    return CpuBackend::allocate(bytes);
  }
  std::size_t memory_available() const override { return limit_ - used_; }

 private:
  std::size_t limit_, used_ = 0;
};
}  // namespace

TEST_CASE("out of device memory ends with the population size that would fit") {
  TinyMemoryBackend be(std::size_t(64) << 20);  // 64 MiB
  // Refused before anything is allocated, by the memory plan.
  const MemoryPlan plan(NetSpec::seed_cnn(), 64, 64, false);
  try {
    admit_population(be, plan, 64, 64);
    FAIL("no error");
  } catch (const PopulationTooLarge& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("for 64 nets") != std::string::npos);
    // The seed CNN at batch 64 needs ~54 MiB per net: one fits in 64 MiB, two do not.
    CHECK(e.fits == 1);
    CHECK(e.population == 64);
    CHECK(msg.find("1 net would fit") != std::string::npos);
    CHECK(msg.find("--") == std::string::npos);  // the engine names no command-line option
    CHECK(msg.find('\n') == std::string::npos);
  }
  CHECK_NOTHROW(admit_population(be, plan, 1, 64));
  // And where an allocation fails after all, the network's own advice.
  try {
    PopulationNet net(be, NetSpec::seed_cnn(), 64, 64);
    FAIL("no error");
  } catch (const PopulationTooLarge& e) {
    CHECK(e.fits == 1);
    CHECK(std::string(e.what()).find("1 net would fit") != std::string::npos);
  }
}

TEST_CASE("memory plan: 1 024 MLP nets and 256 CNN nets fit an H100's 80 GB, scratch arena counted") {
  const std::size_t h100 = std::size_t(80) << 30;
  // Training batch 64, evaluation batch 256, as the presets run.
  const MemoryPlan mlp(NetSpec::parse("mlp400x2").adapted(28, 28, 10), 256, 64, true);
  const MemoryPlan cnn(NetSpec::seed_cnn(), 256, 64, true);
  CAPTURE(mlp.per_net());
  CAPTURE(cnn.per_net());
  CAPTURE(cnn.scratch(256));
  CHECK(mlp.bytes(1024, true) <= h100);
  CHECK(cnn.bytes(256, true) <= h100);
  // The convolutions are chunked, and their weight gradients' partial sums
  // and the dense GEMMs' (fc1's forward sum is split) bounded: each of the
  // four regions stays within the 1 GiB budget whatever P; beyond them only
  // the loss rows (P × 256 floats), conv2's Wᵀ for its input gradient (P ×
  // 64·32·9 floats, as its weights), the staging and the shuffle keys (37.5 MiB).
  for (int P : {256, 1024, 4096}) {
    CAPTURE(P);
    const std::size_t per_net = (256 + 64 * 32 * 9) * sizeof(float);
    CHECK(cnn.scratch(P) <= (std::size_t(4) << 30) + std::size_t(P) * per_net + (std::size_t(38) << 20));
  }
  // Without chunking conv2's columns alone would be 256 × 288 × 256·576 floats = 43.5 GB.
  // The advice is exact: the largest population that fits, and one more that does not.
  for (const std::size_t card : {std::size_t(8) << 30, h100}) {
    const long fits = cnn.largest_population(card, true);
    CAPTURE(fits);
    CHECK(fits >= 1);
    CHECK(cnn.bytes(int(fits), true) <= card);
    CHECK(cnn.bytes(int(fits) + 1, true) > card);
  }
}

TEST_CASE("memory plan: a net larger than the machine is counted, never made") {
  // 63 hidden layers of 65536² weights: 17 GiB each per net, 1.1 TB a net.
  // Counting makes none of it (not even the host-side feedback weights of
  // FA/DFA, which it once drew: 32 GiB for the first two nets).
  const NetSpec huge = NetSpec::parse("mlp65536x64").adapted(28, 28, 10);
  const MemoryPlan plan(huge, 256, 64, true);
  const double weights = 63.0 * 65536 * 65536;
  CAPTURE(plan.per_net());
  CHECK(double(plan.per_net()) >= 4 * sizeof(float) * weights);  // W, Adadelta's two accumulators, Ω
  TinyMemoryBackend be(std::size_t(1) << 30);
  CHECK_THROWS_AS(admit_population(be, plan, 1, 256), PopulationTooLarge);
}

TEST_CASE("a backend that fuses conv steps spares their working space, and only then") {
  // The seed CNN's conv2 (64 × 24 × 24 per image) is followed by a ReLU and a 2×2 pool; conv1 is not.
  const std::size_t conv2 = std::size_t(64) * 24 * 24, batch = 64, P = 3;
  const std::size_t spared = 2 * P * batch * conv2 * sizeof(float);  // activation and gradient
  using enum ConvReluPool;
  const auto built = [&](bool backend_fuses, ConvReluPool net_fuses) {
    CountingBackend be;
    be.fused_conv_steps = backend_fuses;
    { PopulationNet net(be, NetSpec::seed_cnn(), int(P), int(batch), net_fuses); }
    return be.bytes;
  };
  CHECK(built(true, layered) == built(false, fused));  // fused by a backend that needs the space: all there
  CHECK(built(false, layered) - built(true, fused) == spared);
  // Fused for the plasticity rules, which read the activation: it is there, the gradient is not.
  CHECK(built(true, layered) - built(true, fused_keeping_activation) == spared / 2);
  CHECK(built(false, fused_keeping_activation) == built(false, layered));

  // Turned off, kept for the rules, or the ReLU given k-WTA (not fused), the slot comes back; fused again, it goes.
  CountingBackend be;
  be.fused_conv_steps = true;
  PopulationNet net(be, NetSpec::seed_cnn(), int(P), int(batch), fused);
  std::size_t before = be.bytes;
  net.set_conv_relu_pool_fusion(layered);
  CHECK(be.bytes - before == spared);  // the counting backend's total only grows
  net.set_conv_relu_pool_fusion(fused);
  before = be.bytes;
  net.set_conv_relu_pool_fusion(fused_keeping_activation);
  CHECK(be.bytes - before == spared / 2);  // the activation
  net.set_conv_relu_pool_fusion(fused);
  const std::size_t before_kwta = be.bytes;
  std::vector<evoplast::kernels::KwtaParams> keep(P, evoplast::kernels::KwtaParams{100, 0});
  net.set_kwta(1, keep);  // hidden layer 1 is conv2
  CHECK(be.bytes - before_kwta == spared + P * batch * sizeof(float));  // the slot and k-WTA's scale

  // A backend that stops fusing (its convolution switched) gets the slot back at the next forward,
  // and later forwards allocate nothing.
  CountingBackend switching;
  switching.fused_conv_steps = true;
  PopulationNet switched(switching, NetSpec::seed_cnn(), int(P), int(batch), fused);
  switching.fused_conv_steps = false;
  const std::size_t before_switch = switching.bytes;
  const auto* placeholder = reinterpret_cast<const float*>(std::uintptr_t(256));  // no operation runs
  switched.forward(placeholder, int(batch), true, 1, 0);
  CHECK(switching.bytes - before_switch == spared);
  switched.forward(placeholder, int(batch), true, 1, 1);
  CHECK(switching.bytes - before_switch == spared);

  // The memory plan counts as the backend will run: backprop fuses conv → ReLU → pool; plastic
  // nets keep conv2's activation, but their conv layers' stacked [e | ŷ] rows (2·Out per
  // position and sample) are then never stored: conv1's 32 × 26 × 26 and conv2's 64 × 24 × 24,
  // at the training batch; nor is conv2's gradient (a slot of the largest batch).
  const MemoryPlan plain(NetSpec::seed_cnn(), int(batch), int(batch), false, false);
  const MemoryPlan fused_plan(NetSpec::seed_cnn(), int(batch), int(batch), false, true);
  CHECK(plain.per_net() - fused_plan.per_net() == spared / P);
  const int eval_batch = 256;
  const std::size_t rows = 2 * (std::size_t(32) * 26 * 26 + conv2) * batch * sizeof(float);
  CHECK(MemoryPlan(NetSpec::seed_cnn(), eval_batch, int(batch), true, false).per_net() -
            MemoryPlan(NetSpec::seed_cnn(), eval_batch, int(batch), true, true).per_net() ==
        rows + conv2 * eval_batch * sizeof(float));

  // A population mixing feedback alignment with other modes passes its error through each net's
  // W or B: a copy picked per step (one more W per net) where the backend does not read them
  // where they lie. An MLP, where feedback alignment's buffers outweigh direct feedback's.
  const NetSpec mlp = NetSpec::parse("mlp400x2").adapted(28, 28, 10);
  CountingBackend probe;
  PopulationNet one(probe, mlp, 1, 1);
  std::size_t weights = 0;
  for (const auto& prm : one.params())
    if (prm.name.back() == 'w') weights += prm.per_net * sizeof(float);
  CHECK(MemoryPlan(mlp, eval_batch, int(batch), true, false).per_net() -
            MemoryPlan(mlp, eval_batch, int(batch), true, true).per_net() ==
        weights);
}

TEST_CASE("chunked convolution plan: chunks within the budget, at least one net") {
  const std::size_t saved = evoplast::kernels::conv_scratch_budget();
  evoplast::kernels::set_conv_scratch_budget(std::size_t(64) << 20);
  const evoplast::kernels::ConvShape s{64, 256, 32, 26, 26, 64, 3, false};
  const auto f = evoplast::kernels::conv_scratch(s, true, false, false), b = evoplast::kernels::conv_scratch(s, false, true, true);
  CHECK(f.nets_per_chunk >= 1);
  CHECK(f.nets_per_chunk < 64);
  CHECK((f.bytes() <= (std::size_t(64) << 20) || f.nets_per_chunk == 1));
  CHECK(b.nets_per_chunk <= f.nets_per_chunk);  // backward also holds the column gradients
  evoplast::kernels::set_conv_scratch_budget(1);
  CHECK(evoplast::kernels::conv_scratch(s, true, false, false).nets_per_chunk == 1);
  evoplast::kernels::set_conv_scratch_budget(saved);
}

TEST_CASE("weight-gradient splits: as many for a slice of the population as for the whole, partial sums within the "
          "budget") {
  namespace k = evoplast::kernels;
  const std::size_t saved = k::conv_scratch_budget();
  k::set_conv_scratch_budget(std::size_t(64) << 20);
  k::ConvShape s{1, 64, 32, 26, 26, 64, 3, false};  // N·Ho·Wo = 36 864 terms: 36 splits of 1 024
  const int splits = k::weight_grad_splits(s);
  CHECK(splits == 36);
  const std::size_t per_net = std::size_t(64) * 32 * 9;  // dW floats
  for (int P : {1, 8, 64, 1024, 30000}) {
    CAPTURE(P);
    s.P = P;
    CHECK(k::weight_grad_splits(s) == splits);  // the same sums, whatever the nets beside
    const int per_launch = k::weight_grad_splits_per_launch(s, splits);
    CHECK(per_launch >= 1);
    CHECK(per_launch <= splits);
    CHECK(per_launch * P <= 65535);  // grid z
    const std::size_t partial = k::weight_grad_partial_floats(s) * sizeof(float);
    CHECK(partial == std::size_t(per_launch) * P * per_net * sizeof(float));
    CHECK((partial <= (std::size_t(64) << 20) || per_launch == 1));  // one split of every net at the least
  }
  s.N = 1;  // 676 terms: one split, written straight into dW
  CHECK(k::weight_grad_splits(s) == 1);
  CHECK(k::weight_grad_partial_floats(s) == 0);
  k::set_conv_scratch_budget(saved);
}

TEST_CASE("the CPU backend emulates tf32 and bf16: GEMM operands rounded, bias sums not; tf32x3 refused") {
  using evoplast::kernels::OperandRounding;
  std::mt19937 rng(31);
  const DenseShape d{2, 5, 19, 7, false};  // P, N, In, Out
  const ConvShape c{2, 3, 2, 7, 6, 4, 3, false};  // P, N, Cin, H, W, Cout, K
  const auto x = check::random_vector<float>(d.x_size(), rng, -1, 1);
  const auto w = check::random_vector<float>(d.w_size(), rng, -1, 1);
  const auto b = check::random_vector<float>(d.b_size(), rng, -1, 1);
  const auto dy = check::random_vector<float>(d.y_size(), rng, -1, 1);
  const auto cx = check::random_vector<float>(c.x_size(), rng, -1, 1);
  const auto cw = check::random_vector<float>(c.w_size(), rng, -1, 1);
  const auto cb = check::random_vector<float>(c.b_size(), rng, -1, 1);
  const auto cdy = check::random_vector<float>(c.y_size(), rng, -1, 1);
  for (const std::string precision : {"tf32", "bf16"}) {
    CAPTURE(precision);
    const OperandRounding r = precision == "tf32" ? OperandRounding::tf32 : OperandRounding::bf16;
    const auto round = [&](std::vector<float> v) {
      for (float& e : v) e = evoplast::kernels::operand_rounded(r, e);
      return v;
    };
    CpuBackend emulated(precision), fp32;
    CHECK(emulated.name() == "cpu (" + precision + " emulated: GEMM operands rounded as a tensor core's)");
    CHECK(fp32.name() == "cpu");
    // Each output of the emulating backend, and of fp32 with the GEMMs' operands rounded by hand.
    std::vector<float> y1(d.y_size()), y2(d.y_size()), dx1(d.x_size()), dx2(d.x_size()), dw1(d.w_size()),
        dw2(d.w_size()), db1(d.b_size()), db2(d.b_size());
    emulated.dense_forward(d, x.data(), w.data(), b.data(), y1.data());
    fp32.dense_forward(d, round(x).data(), round(w).data(), b.data(), y2.data());
    CHECK(y1 == y2);
    emulated.dense_backward(d, x.data(), w.data(), dy.data(), dx1.data(), dw1.data(), db1.data());
    fp32.dense_backward(d, round(x).data(), round(w).data(), round(dy).data(), dx2.data(), dw2.data(), nullptr);
    fp32.dense_backward(d, x.data(), w.data(), dy.data(), nullptr, nullptr, db2.data());  // Σ dy, unrounded
    CHECK(dx1 == dx2);
    CHECK(dw1 == dw2);
    CHECK(db1 == db2);
    std::vector<float> cy1(c.y_size()), cy2(c.y_size()), cdx1(c.x_size()), cdx2(c.x_size()), cdw1(c.w_size()),
        cdw2(c.w_size()), cdb1(c.b_size()), cdb2(c.b_size());
    emulated.conv2d_forward(c, cx.data(), cw.data(), cb.data(), cy1.data());
    fp32.conv2d_forward(c, round(cx).data(), round(cw).data(), cb.data(), cy2.data());
    CHECK(cy1 == cy2);
    emulated.conv2d_backward(c, cx.data(), cw.data(), cdy.data(), cdx1.data(), cdw1.data(), cdb1.data());
    fp32.conv2d_backward(c, round(cx).data(), round(cw).data(), round(cdy).data(), cdx2.data(), cdw2.data(),
                         nullptr);
    fp32.conv2d_backward(c, cx.data(), cw.data(), cdy.data(), nullptr, nullptr, cdb2.data());
    CHECK(cdx1 == cdx2);
    CHECK(cdw1 == cdw2);
    CHECK(cdb1 == cdb2);
    // After the emulating backend's calls, fp32's GEMMs round nothing.
    std::vector<float> y3(d.y_size());
    fp32.dense_forward(d, x.data(), w.data(), b.data(), y3.data());
    CHECK(y3 != y1);
  }
  CHECK_THROWS_AS(CpuBackend("tf32x3"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(make_backend("cpu", "tf32x3"),
                       doctest::Contains("on the CPU backend use precision fp32"), EngineError);
  CHECK(make_backend("cpu", "bf16")->name().find("bf16 emulated") != std::string::npos);
}
