// `evolve train`: the seed's baseline (backprop + Adadelta, StepLR) for a
// population of P independent nets, with per-epoch metrics.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "apps/modes.hpp"
#include "apps/program.hpp"
#include "engine/backend.hpp"
#include "engine/errors.hpp"
#include "engine/train.hpp"
#include "io/dataset.hpp"
#include "io/run_dir.hpp"
#include "kernels/gemm_cpu.hpp"

namespace evoplast::apps {

namespace fs = std::filesystem;
namespace {

struct TrainOptions {
  engine::TrainConfig config;
  std::string dataset = "mnist";
  std::optional<std::string> data_dir;
  std::string backend = "auto";
  std::string precision = "fp32";
  bool no_verify = false;
  int threads = 0;
  std::string out;  // empty: a new runs/train-<net>-seed<seed>-<time>
  bool quiet = false;
};

void add_train_options(CLI::App& app, TrainOptions& o) {
  auto* cmd = app.add_subcommand(
      "train",
      "Train the seed's baseline (backprop + Adadelta, StepLR) on the i.i.d. stream of a data "
      "set, for a population of P independent nets; prints per epoch train loss, validation "
      "loss and accuracy, wall time and network-images/s, and test loss and accuracy at the end.");
  auto& c = o.config;
  cmd->add_option("--dataset", o.dataset, "Data set: mnist or fashion")
      ->check(CLI::IsMember({"mnist", "fashion"}))
      ->capture_default_str();
  cmd->add_option("--data-dir", o.data_dir,
                  "Folder holding mnist/ and fashion/ (default: $EVOPLAST_DATA_DIR, else the "
                  "project's data/)");
  cmd->add_flag("--no-verify", o.no_verify, "Skip the MD5 check of the data files");
  cmd->add_option("--net", c.net, "Architecture: cnn (the seed's), or mlpWxD / mlpW1-W2-… "
                                  "(e.g. mlp400x2)")
      ->capture_default_str();
  cmd->add_option("-P,--population", c.population, "Nets trained side by side")
      ->capture_default_str();
  cmd->add_option("-e,--epochs", c.epochs, "Epochs")->capture_default_str();
  cmd->add_option("-b,--batch", c.batch, "Minibatch size, shared by all nets")
      ->capture_default_str();
  cmd->add_option("--lr", c.lr, "Learning rate")->capture_default_str();
  cmd->add_option("--gamma", c.gamma, "StepLR factor per epoch")->capture_default_str();
  cmd->add_option("--optimizer", c.optimizer.kind, "adadelta or sgd")
      ->check(CLI::IsMember({"adadelta", "sgd"}))
      ->capture_default_str();
  cmd->add_option("--rho", c.optimizer.rho, "Adadelta ρ")->capture_default_str();
  cmd->add_option("--eps", c.optimizer.eps, "Adadelta ε")->capture_default_str();
  cmd->add_option("--seed", c.seed, "Seed of initial weights, shuffling and dropout")
      ->check(kSeed)
      ->capture_default_str();
  cmd->add_flag("!--distinct-init", c.same_init,
                "Give every net its own initial weights (default: all nets start alike)");
  // The names eval and run use (iid training is one task); the old names still work.
  cmd->add_option("--train-per-task,--train-limit", c.train_limit,
                  "Train on the first N images of the training split (0: all)")
      ->capture_default_str();
  cmd->add_option("--validation", c.validation,
                  "Images held out from the end of the training split for validation")
      ->capture_default_str();
  cmd->add_option("--test-per-task,--test-limit", c.test_limit, "Test on the first N test images (0: all)")
      ->capture_default_str();
  cmd->add_option("--eval-batch", c.eval_batch, "Minibatch size for evaluation")
      ->capture_default_str();
  add_device_options(cmd, o.backend, o.precision);
  cmd->add_option("--threads", o.threads, "CPU threads (0: all cores)")
      ->check(at_least(0, "0 (all cores) or more"))
      ->capture_default_str();
  cmd->add_option("-o,--out", o.out,
                  "Run directory, empty or new (default: a new runs/train-<net>-seed<seed>-<time>): config.json, "
                  "epochs.csv, test.csv");
  cmd->add_flag("-q,--quiet", o.quiet, "Only the test result (the epochs still go to epochs.csv)");
}

float mean_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return float(s / double(v.size()));
}

int run_train(const TrainOptions& o) {
  use_cpu_threads(o.threads);
  auto backend = engine::make_backend(o.backend, o.precision);
  const auto dir = io::resolve_data_dir(o.data_dir);
  const io::Dataset data = io::load_dataset(o.dataset, dir, !o.no_verify);
  const auto& c = o.config;
  engine::validate(c, data);  // a bad setting is the only line printed
  if (!o.quiet)
    fmt::print("evolve train: {} on {} ({}), backend {} ({} threads, {}), P={}, batch {}, {} epochs, "
               "{} lr {} γ {}\n",
               c.net, o.dataset, dir.string(), backend->name(), kernels::cpu::cpu_threads(),
               kernels::cpu::blas_description(), c.population, c.batch, c.epochs, c.optimizer.kind, c.lr, c.gamma);
  std::fflush(stdout);
  const int P = c.population;
  // The run directory: what was run, and one row per epoch and net as it
  // finishes. A training refused or failed before its first epoch leaves
  // nothing behind.
  io::OutputDir out(o.out, fmt::format("train-{}-seed{}", c.net, c.seed));
  const fs::path& run_dir = out.path();
  const nlohmann::json config = {
      {"program", {{"name", "evolve train"}, {"version", program_version()}, {"commit", program_commit()}}},
      {"net", c.net},           {"dataset", o.dataset},         {"population", c.population},
      {"epochs", c.epochs},     {"batch", c.batch},             {"eval_batch", c.eval_batch},
      {"lr", c.lr},             {"gamma", c.gamma},             {"optimizer", c.optimizer.kind},
      {"rho", c.optimizer.rho}, {"eps", c.optimizer.eps},       {"seed", c.seed},
      {"same_init", c.same_init}, {"train_limit", c.train_limit}, {"validation", c.validation},
      {"test_limit", c.test_limit}, {"backend", backend->name()}, {"precision", o.precision}};
  io::write_atomically(run_dir / "config.json", config.dump(2) + "\n");
  io::write_atomically(run_dir / "epochs.csv",
                       "epoch,net,lr,train_loss,val_loss,val_acc,seconds,train_seconds,network_images_per_s\n");
  auto on_epoch = [&](const engine::EpochRecord& r) {
    out.keep();
    for (int p = 0; p < P; ++p)
      io::append_line(run_dir / "epochs.csv",
                      fmt::format("{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.3f},{:.3f},{:.0f}", r.epoch, p, r.lr,
                                  r.train_loss[std::size_t(p)], r.val_loss[std::size_t(p)], r.val_acc[std::size_t(p)],
                                  r.seconds, r.train_seconds, r.network_images_per_s));
    if (o.quiet) return;
    const auto best = std::max_element(r.val_acc.begin(), r.val_acc.end()) - r.val_acc.begin();
    fmt::print("epoch {:2d}  lr {:.4f}  train loss {:.4f}  val loss {:.4f}  val acc {:.2f}%  "
               "time {:.1f}s (train {:.1f}s)  {:.0f} network-images/s{}\n",
               r.epoch, r.lr, mean_of(r.train_loss), mean_of(r.val_loss),
               100 * mean_of(r.val_acc), r.seconds, r.train_seconds, r.network_images_per_s,
               P > 1 ? fmt::format("  (mean of {} nets; best net {} at {:.2f}%)", P, best,
                                   100 * r.val_acc[best])
                     : "");
    if (P > 1)
      for (int p = 0; p < P; ++p)
        fmt::print("    net {:3d}  train loss {:.4f}  val loss {:.4f}  val acc {:.2f}%\n", p,
                   r.train_loss[p], r.val_loss[p], 100 * r.val_acc[p]);
    std::fflush(stdout);
  };
  const auto result = [&] {
    try {
      return engine::train_iid(*backend, data, c, on_epoch);
    } catch (const engine::PopulationTooLarge& e) {
      throw engine::EngineError(fmt::format("{}; {}", e.what(),
                                            e.fits >= 1 ? fmt::format("try --population {}", e.fits)
                                                        : std::string("lower --batch or --eval-batch, or a smaller --net")));
    }
  }();
  fmt::print("test  loss {:.4f}  acc {:.2f}%  ({} test images; trained on {}, validated on {}; "
             "total {:.1f}s)\n",
             mean_of(result.test_loss), 100 * mean_of(result.test_acc), result.test_images,
             result.train_images, result.val_images, result.seconds);
  if (P > 1)
    for (int p = 0; p < P; ++p)
      fmt::print("    net {:3d}  test loss {:.4f}  test acc {:.2f}%\n", p, result.test_loss[p],
                 100 * result.test_acc[p]);
  std::string test = "net,test_loss,test_acc,test_images\n";
  for (int p = 0; p < P; ++p)
    test += fmt::format("{},{:.6g},{:.6g},{}\n", p, result.test_loss[std::size_t(p)], result.test_acc[std::size_t(p)],
                        result.test_images);
  io::write_atomically(run_dir / "test.csv", test);
  fmt::print("wrote {}/config.json, epochs.csv, test.csv\n", run_dir.string());
  return 0;
}

}  // namespace

std::function<int()> add_train_mode(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  add_train_options(app, *options);
  return [options] { return run_train(*options); };
}

}  // namespace evoplast::apps
