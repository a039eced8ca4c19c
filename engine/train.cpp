#include "engine/memory_plan.hpp"
#include "engine/train.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <cmath>

#include "engine/errors.hpp"
#include "engine/device_data.hpp"
#include "engine/network.hpp"
#include "engine/protocol.hpp"

namespace evoplast::engine {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw EngineError(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace

void validate_training(int epochs, int batch, int eval_batch, float lr, const std::string& net) {
  if (epochs < 1) fail("--epochs {}: must be at least 1", epochs);
  if (batch < 1 || batch > 65536) fail("--batch {}: must be in [1, 65536]", batch);
  if (eval_batch < 1 || eval_batch > 65536) fail("--eval-batch {}: must be in [1, 65536]", eval_batch);
  if (!(std::isfinite(lr) && lr > 0)) fail("--lr {}: must be a positive number", lr);
  (void)NetSpec::parse(net);  // throws naming the net
}

void validate(const TrainConfig& c, const io::Dataset& data) {
  if (c.population < 1) fail("--population {}: must be at least 1", c.population);
  validate_training(c.epochs, c.batch, c.eval_batch, c.lr, c.net);
  if (!(c.gamma > 0 && c.gamma <= 1)) fail("--gamma {}: must be in (0, 1]", c.gamma);
  if (!(c.optimizer.rho >= 0 && c.optimizer.rho < 1))
    fail("--rho {}: must be in [0, 1)", c.optimizer.rho);
  if (!(c.optimizer.eps > 0)) fail("--eps {}: must be positive", c.optimizer.eps);
  if (c.validation < 1 || c.validation >= data.train.count)
    fail("--validation {}: must be in [1, {}) (images held out from the {} training images)",
         c.validation, data.train.count, data.train.count);
  if (c.train_limit < 0) fail("--train-per-task {}: must be 0 (all) or positive", c.train_limit);
  if (c.test_limit < 0) fail("--test-per-task {}: must be 0 (all) or positive", c.test_limit);
}

TrainResult train_iid(Backend& backend, const io::Dataset& data, const TrainConfig& c,
                      const std::function<void(const EpochRecord&)>& on_epoch) {
  validate(c, data);
  const auto t_start = std::chrono::steady_clock::now();
  const io::ImageSet& train = data.train;
  const std::int64_t pool = train.count - c.validation;
  const std::int64_t n_train = c.train_limit > 0 ? std::min(c.train_limit, pool) : pool;
  const std::int64_t n_test =
      c.test_limit > 0 ? std::min<std::int64_t>(c.test_limit, data.test.count) : data.test.count;

  const NetSpec spec = NetSpec::parse(c.net).adapted(train.rows, train.cols, data.info->classes);
  const int max_batch = std::max(c.batch, c.eval_batch);
  admit_population(backend, MemoryPlan(spec, max_batch, c.batch, false, backend.fuses_conv_steps()),
                   c.population, max_batch);
  // conv → ReLU → pool fused: backprop alone reads no conv layer's own activation.
  PopulationNet net(backend, spec, c.population, max_batch, ConvReluPool::fused);
  net.init_params(c.seed, c.same_init);
  Optimizer opt(backend, net, c.optimizer);

  // The i.i.d. stream as a one-task protocol, so the data live in the backend
  // and every minibatch is drawn and gathered there (no host traffic per step).
  Protocol proto;
  proto.name = "iid";
  proto.classes = data.info->classes;
  TaskView task;
  task.name = data.info->name;
  task.data = &data;
  for (std::int64_t i = 0; i < n_train; ++i) task.train.push_back(std::int32_t(i));
  for (std::int64_t i = pool; i < train.count; ++i) task.val.push_back(std::int32_t(i));
  for (std::int64_t i = 0; i < n_test; ++i) task.test.push_back(std::int32_t(i));
  for (int k = 0; k < 10; ++k) task.label_map[std::size_t(k)] = std::int8_t(k);
  proto.tasks.push_back(task);
  proto.phases.emplace_back();
  for (std::int32_t i : proto.tasks[0].train) proto.phases[0].push_back({0, i});
  DeviceData batches(backend, proto, net.max_batch());
  batches.set_phase(proto.phases[0]);
  Buffer<float> loss_sum(backend, std::size_t(c.population));

  TrainResult result;
  result.train_images = n_train;
  result.val_images = c.validation;
  result.test_images = n_test;
  std::uint64_t step = 0;
  for (int epoch = 0; epoch < c.epochs; ++epoch) {
    const auto t_epoch = std::chrono::steady_clock::now();
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.lr = step_lr(c.lr, c.gamma, epoch);
    const std::vector<float> lr(c.population, rec.lr);
    {
      // The seed's order: an mt19937 shuffle from the run's seed, uploaded once per
      // epoch (run and eval draw theirs in the backend instead). One epoch at lr 1
      // is order-sensitive: seeds 1–3 gave 98.45/98.24/98.44% test accuracy with
      // this order, 97.76/98.14/98.16% with the backend's.
      std::vector<std::int32_t> order(static_cast<std::size_t>(n_train));
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 shuffle_rng(c.seed ^ (0x5DEECE66Dull * std::uint64_t(epoch + 1)));
      std::shuffle(order.begin(), order.end(), shuffle_rng);
      batches.set_order(order);
    }
    backend.fill(loss_sum.data(), loss_sum.size(), 0.0f);
    for (std::int64_t n0 = 0; n0 < n_train; n0 += c.batch) {
      const int N = int(std::min<std::int64_t>(c.batch, n_train - n0));
      const std::uint64_t s = step++;
      backend.run_step(N, [&] {
        batches.load_shuffled(std::size_t(n0), N);
        net.forward(batches.x(), N, /*train=*/true, c.seed, s);
        opt.backward_and_step(batches.y(), N, lr);
        backend.add_scaled(c.population, float(N), net.loss_buffer(), loss_sum.data());
      });
    }
    const auto sums = loss_sum.download();
    rec.train_seconds = seconds_since(t_epoch);
    rec.network_images_per_s = double(c.population) * double(n_train) / rec.train_seconds;
    for (int p = 0; p < c.population; ++p) rec.train_loss.push_back(float(double(sums[std::size_t(p)]) / n_train));
    const EvalResult val = evaluate(net, batches, 0, proto.tasks[0].val, Split::val, c.eval_batch);
    rec.val_loss.assign(val.loss.begin(), val.loss.end());
    rec.val_acc.assign(val.acc.begin(), val.acc.end());
    rec.seconds = seconds_since(t_epoch);
    result.epochs.push_back(rec);
    if (on_epoch) on_epoch(rec);
  }
  const EvalResult test = evaluate(net, batches, 0, proto.tasks[0].test, Split::test, c.eval_batch);
  result.test_loss.assign(test.loss.begin(), test.loss.end());
  result.test_acc.assign(test.acc.begin(), test.acc.end());
  result.seconds = seconds_since(t_start);
  return result;
}

}  // namespace evoplast::engine
