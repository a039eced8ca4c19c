#include "engine/train.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/errors.hpp"
#include "engine/network.hpp"

namespace evoplast::engine {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw EngineError(fmt::format(f, std::forward<Args>(args)...));
}

void validate(const TrainConfig& c, const io::Dataset& data) {
  if (c.population < 1) fail("--population {}: must be at least 1", c.population);
  if (c.epochs < 1) fail("--epochs {}: must be at least 1", c.epochs);
  if (c.batch < 1 || c.batch > 65536) fail("--batch {}: must be in [1, 65536]", c.batch);
  if (c.eval_batch < 1 || c.eval_batch > 65536)
    fail("--eval-batch {}: must be in [1, 65536]", c.eval_batch);
  if (!(std::isfinite(c.lr) && c.lr > 0)) fail("--lr {}: must be a positive number", c.lr);
  if (!(c.gamma > 0 && c.gamma <= 1)) fail("--gamma {}: must be in (0, 1]", c.gamma);
  if (!(c.optimizer.rho >= 0 && c.optimizer.rho < 1))
    fail("--rho {}: must be in [0, 1)", c.optimizer.rho);
  if (!(c.optimizer.eps > 0)) fail("--eps {}: must be positive", c.optimizer.eps);
  if (c.validation < 1 || c.validation >= data.train.count)
    fail("--validation {}: must be in [1, {}) (images held out from the {} training images)",
         c.validation, data.train.count, data.train.count);
  if (c.train_limit < 0) fail("--train-limit {}: must be 0 (all) or positive", c.train_limit);
  if (c.test_limit < 0) fail("--test-limit {}: must be 0 (all) or positive", c.test_limit);
}

}  // namespace

void normalise_images(const std::uint8_t* images, std::size_t pixels, float mean, float stddev,
                      float* out) {
  const float scale = 1.0f / (255.0f * stddev), shift = mean / stddev;
  for (std::size_t i = 0; i < pixels; ++i) out[i] = float(images[i]) * scale - shift;
}

EvalResult evaluate(Backend& backend, PopulationNet& net, const io::ImageSet& set,
                    std::int64_t first, std::int64_t count, float mean, float stddev,
                    int batch) {
  const int P = net.population();
  batch = std::min(batch, net.max_batch());
  const std::size_t image_px = std::size_t(set.rows) * set.cols;
  Buffer<float> x(backend, std::size_t(batch) * image_px);
  Buffer<std::int32_t> y(backend, std::size_t(batch));
  std::vector<float> xh(std::size_t(batch) * image_px);
  std::vector<std::int32_t> yh(batch);
  std::vector<double> loss_sum(P, 0.0);
  std::vector<std::int64_t> correct(P, 0);
  for (std::int64_t n0 = 0; n0 < count; n0 += batch) {
    const int N = int(std::min<std::int64_t>(batch, count - n0));
    normalise_images(set.images.data() + std::size_t(first + n0) * image_px, N * image_px, mean,
                     stddev, xh.data());
    for (int n = 0; n < N; ++n) yh[n] = set.labels[std::size_t(first + n0 + n)];
    x.upload(std::span<const float>(xh.data(), N * image_px));
    y.upload(std::span<const std::int32_t>(yh.data(), N));
    net.forward(x.data(), N, /*train=*/false);
    net.score(y.data(), N, loss_sum, correct);
  }
  EvalResult r;
  for (int p = 0; p < P; ++p) {
    r.loss.push_back(float(loss_sum[p] / double(count)));
    r.acc.push_back(float(double(correct[p]) / double(count)));
  }
  return r;
}

TrainResult train_iid(Backend& backend, const io::Dataset& data, const TrainConfig& c,
                      const std::function<void(const EpochRecord&)>& on_epoch) {
  validate(c, data);
  const auto t_start = std::chrono::steady_clock::now();
  const float mean = data.info->mean, stddev = data.info->stddev;
  const io::ImageSet& train = data.train;
  const std::int64_t pool = train.count - c.validation;
  const std::int64_t n_train = c.train_limit > 0 ? std::min(c.train_limit, pool) : pool;
  const std::int64_t n_test =
      c.test_limit > 0 ? std::min<std::int64_t>(c.test_limit, data.test.count) : data.test.count;

  const NetSpec spec = NetSpec::parse(c.net).adapted(train.rows, train.cols, data.info->classes);
  PopulationNet net(backend, spec, c.population, std::max(c.batch, c.eval_batch));
  net.init_params(c.seed, c.same_init);
  Optimizer opt(backend, net, c.optimizer);

  const std::size_t image_px = std::size_t(train.rows) * train.cols;
  Buffer<float> x(backend, std::size_t(c.batch) * image_px);
  Buffer<std::int32_t> y(backend, std::size_t(c.batch));
  std::vector<float> xh(std::size_t(c.batch) * image_px);
  std::vector<std::int32_t> yh(c.batch);
  std::vector<std::int64_t> order(n_train);
  std::iota(order.begin(), order.end(), 0);

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
    // A new shuffle every epoch, from the run's seed.
    std::mt19937_64 shuffle_rng(c.seed ^ (0x5DEECE66Dull * std::uint64_t(epoch + 1)));
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    std::vector<double> loss_sum(c.population, 0.0);
    for (std::int64_t n0 = 0; n0 < n_train; n0 += c.batch) {
      const int N = int(std::min<std::int64_t>(c.batch, n_train - n0));
      for (int n = 0; n < N; ++n) {
        const std::int64_t idx = order[std::size_t(n0 + n)];
        normalise_images(train.images.data() + std::size_t(idx) * image_px, image_px, mean,
                         stddev, xh.data() + std::size_t(n) * image_px);
        yh[n] = train.labels[std::size_t(idx)];
      }
      x.upload(std::span<const float>(xh.data(), N * image_px));
      y.upload(std::span<const std::int32_t>(yh.data(), N));
      net.forward(x.data(), N, /*train=*/true, c.seed, step++);
      const auto loss = net.backward(y.data(), N);
      opt.step(lr);
      for (int p = 0; p < c.population; ++p) loss_sum[p] += double(loss[p]) * N;
    }
    rec.train_seconds = seconds_since(t_epoch);
    rec.network_images_per_s = double(c.population) * double(n_train) / rec.train_seconds;
    for (int p = 0; p < c.population; ++p) rec.train_loss.push_back(float(loss_sum[p] / n_train));
    const EvalResult val =
        evaluate(backend, net, train, pool, c.validation, mean, stddev, c.eval_batch);
    rec.val_loss = val.loss;
    rec.val_acc = val.acc;
    rec.seconds = seconds_since(t_epoch);
    result.epochs.push_back(rec);
    if (on_epoch) on_epoch(rec);
  }
  const EvalResult test = evaluate(backend, net, data.test, 0, n_test, mean, stddev, c.eval_batch);
  result.test_loss = test.loss;
  result.test_acc = test.acc;
  result.seconds = seconds_since(t_start);
  return result;
}

}  // namespace evoplast::engine
