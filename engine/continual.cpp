#include "engine/memory_plan.hpp"
#include "engine/continual.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine/device_data.hpp"
#include "engine/errors.hpp"
#include "engine/network.hpp"
#include "engine/plasticity.hpp"
#include "engine/train.hpp"

namespace evoplast::engine {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Accuracy and mean loss of every net on task j's validation or test view.
void evaluate_task(const Protocol& proto, int j, Split split, PopulationNet& net, DeviceData& data, int batch,
                   std::vector<double>& acc, std::vector<double>& loss) {
  const TaskView& t = proto.tasks[std::size_t(j)];
  EvalResult r = evaluate(net, data, j, split == Split::test ? t.test : t.val, split, batch);
  acc = std::move(r.acc);
  loss = std::move(r.loss);
}

}  // namespace

ContinualResult run_continual(Backend& backend, const Protocol& proto,
                              const std::vector<Rule>& rules, const std::vector<float>& ewc_lambda,
                              const ContinualConfig& c,
                              const std::function<void(const std::string&)>& progress) {
  const auto t0 = Clock::now();
  const int P = int(rules.size());
  if (P < 1) throw EngineError("run_continual: no rules");
  if (int(ewc_lambda.size()) != P) throw EngineError("run_continual: one EWC λ per rule");
  validate_training(c.epochs, c.batch, c.eval_batch, c.lr, c.net);
  const io::ImageSet& first = proto.tasks[0].data->train;
  const NetSpec spec = NetSpec::parse(c.net).adapted(first.rows, first.cols, proto.classes);
  const int max_batch = std::max(c.batch, c.eval_batch);
  admit_population(backend, MemoryPlan(spec, max_batch, c.batch, true, backend.fuses_conv_steps()), P, max_batch);
  PopulationNet net(backend, spec, P, max_batch);
  net.set_first_net(c.first_net);
  net.init_params(c.seed, /*same_for_all=*/true);
  Plasticity plasticity(backend, net, rules, c.seed, 0.9f, 1e-6f, c.batch);
  plasticity.set_ewc_lambda(ewc_lambda);
  DeviceData data(backend, proto, net.max_batch());

  const int T = int(proto.tasks.size()), phases = int(proto.phases.size());
  ContinualResult result;
  result.nets.resize(std::size_t(P));
  for (auto& r : result.nets) {
    r.R_val.assign(std::size_t(phases), std::vector<double>(std::size_t(T)));
    r.R_test = r.L_val = r.L_test = r.R_val;
    r.b_val.resize(std::size_t(T));
    r.b_test.resize(std::size_t(T));
    r.train_loss.assign(std::size_t(phases), {});
  }
  const auto evaluate_all = [&](auto&& store) {
    std::vector<double> acc, loss;
    for (int j = 0; j < T; ++j)
      for (Split split : {Split::val, Split::test}) {
        evaluate_task(proto, j, split, net, data, c.eval_batch, acc, loss);
        for (int p = 0; p < P; ++p) store(result.nets[std::size_t(p)], j, split, acc[std::size_t(p)], loss[std::size_t(p)]);
      }
  };
  evaluate_all([](NetResult& r, int j, Split s, double a, double) {
    (s == Split::val ? r.b_val : r.b_test)[std::size_t(j)] = a;
  });

  std::uint64_t step = 0;
  double train_seconds = 0;
  for (int ph = 0; ph < phases; ++ph) {
    const std::vector<Sample>& samples = proto.phases[std::size_t(ph)];
    data.set_phase(samples);
    for (int epoch = 0; epoch < c.epochs; ++epoch) {
      const auto te = Clock::now();
      // The epoch's order is drawn on the device; no index crosses from the host.
      data.shuffle(kernels::mix64(c.seed ^ 0xC0FFEEull) ^ kernels::mix64(std::uint64_t(ph) * 1000003u + std::uint64_t(epoch)));
      // Nothing crosses between host and device inside the epoch but the rule coefficients.
      for (std::size_t n0 = 0; n0 < samples.size(); n0 += std::size_t(c.batch)) {
        const int N = int(std::min<std::size_t>(std::size_t(c.batch), samples.size() - n0));
        const std::uint64_t s = step++;
        backend.run_step(N, [&] {
          data.load_shuffled(n0, N);
          net.set_head_mask(data.head_mask());
          net.forward(data.x(), N, /*train=*/true, c.seed, s);
          plasticity.step_async(data.y(), N, c.lr, epoch);
        });
      }
      const std::vector<double> loss_sum = plasticity.take_loss_sums();
      plasticity.check_weights();
      const double secs = since(te);
      if (c.eval_every_epoch) {
        const int seen = proto.joint ? T : ph + 1;
        // The mean over the tasks seen so far of each net's validation accuracy and loss.
        std::vector<double> task_acc, task_loss, mean_acc(std::size_t(P), 0.0), mean_loss(std::size_t(P), 0.0);
        for (int j = 0; j < seen; ++j) {
          evaluate_task(proto, j, Split::val, net, data, c.eval_batch, task_acc, task_loss);
          for (int p = 0; p < P; ++p) {
            mean_acc[std::size_t(p)] += task_acc[std::size_t(p)] / seen;
            mean_loss[std::size_t(p)] += task_loss[std::size_t(p)] / seen;
          }
        }
        for (int p = 0; p < P; ++p) {
          result.nets[std::size_t(p)].epoch_val_loss.push_back(float(mean_loss[std::size_t(p)]));
          result.nets[std::size_t(p)].epoch_val_acc.push_back(float(mean_acc[std::size_t(p)]));
        }
      }
      train_seconds += secs;
      result.images_trained += std::int64_t(samples.size());
      for (int p = 0; p < P; ++p) {
        // A diverged net reports the loss of the uniform guess it now makes.
        const double mean = loss_sum[std::size_t(p)] / double(samples.size());
        result.nets[std::size_t(p)].train_loss[std::size_t(ph)].push_back(
            plasticity.diverged()[std::size_t(p)] || !std::isfinite(mean) ? std::log(float(proto.classes)) : float(mean));
      }
      if (progress)
        progress(fmt::format("{}: phase {}/{} epoch {}/{}: {} images, {:.1f}s, {:.0f} "
                             "network-images/s",
                             proto.name, ph + 1, phases, epoch + 1, c.epochs, samples.size(), secs,
                             double(P) * double(samples.size()) / secs));
    }
    // EWC: the diagonal (empirical) Fisher of this phase's data, from per-sample gradients.
    if (plasticity.ewc_enabled() && ph + 1 < phases) {
      const std::vector<Sample> fisher = data.shuffled_samples(std::size_t(c.fisher_samples));
      const int M = int(fisher.size());
      for (int m = 0; m < M; ++m) {
        data.load(fisher.data() + m, 1, Split::train);
        net.set_head_mask(data.head_mask());
        net.forward(data.x(), 1, /*train=*/false);
        net.backward(data.y(), 1);
        plasticity.accumulate_fisher(1.0f / float(M));
      }
      plasticity.consolidate_ewc();
    }
    evaluate_all([ph](NetResult& r, int j, Split s, double a, double l) {
      (s == Split::val ? r.R_val : r.R_test)[std::size_t(ph)][std::size_t(j)] = a;
      (s == Split::val ? r.L_val : r.L_test)[std::size_t(ph)][std::size_t(j)] = l;
    });
  }
  net.set_head_mask(nullptr);
  for (int p = 0; p < P; ++p) {
    NetResult& r = result.nets[std::size_t(p)];
    r.diverged = plasticity.diverged()[std::size_t(p)] != 0;
    r.val = proto.joint ? joint_metrics(r.R_val) : continual_metrics(r.R_val, r.b_val);
    r.test = proto.joint ? joint_metrics(r.R_test) : continual_metrics(r.R_test, r.b_test);
    r.fitness = r.diverged ? kWorstFitness : fitness_continual(r.val);
  }
  result.train_seconds = train_seconds;
  result.seconds = since(t0);
  return result;
}

double net_fitness(const ContinualResult& result, std::size_t i, const FitnessSpec& spec) {
  const NetResult& r = result.nets.at(i);
  if (r.diverged) return kWorstFitness;
  if (spec.kind == "seed") {
    double best_val = INFINITY;
    for (float x : r.epoch_val_loss) best_val = std::min(best_val, double(x));
    return fitness_seed(best_val, r.train_loss.back().back(), result.train_seconds, spec.seed);
  }
  return fitness_continual(r.val, spec.continual);
}

}  // namespace evoplast::engine
