// network-images/s of a full training step of the seed CNN (or another net)
// for a population of P nets on one shared minibatch: forward, backward and
// the update — Adadelta for `--rule backprop`, or the fused plasticity update
// of a named rule. NVTX ranges name each phase for Nsight Systems. Figures,
// not assertions; compare only with a reference timed in the same run.
// Under mpirun (`mpirun -np K bench_population …`) each rank trains its share
// of every P at the same time (its own GPU, or its share of the CPU cores), and
// rank 0 prints each rank's network-images/s and their total.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>

#include "apps/command_line.hpp"
#include "apps/ranks.hpp"
#include "bench/nvtx.hpp"
#include "bench/synthetic_batch.hpp"
#include "engine/backend.hpp"
#include "engine/errors.hpp"
#include "engine/memory_plan.hpp"
#include "engine/network.hpp"
#include "engine/optimizer.hpp"
#include "engine/plasticity.hpp"
#include "kernels/cpu_threads.hpp"
#include "kernels/gemm_cpu.hpp"

using namespace evoplast;
using Clock = std::chrono::steady_clock;

// A time in ms, or "-" where it was not measured apart (a step run as one CUDA graph).
std::string ms(double seconds) { return seconds < 0 ? "-" : fmt::format("{:.3f}", 1e3 * seconds); }

// Under mpirun: every rank sends rank 0 its nets, step times (s; fwd and bwd
// −1 when not measured apart) and network-images/s for one P; rank 0 prints
// the slowest rank's times, the total rate (the ranks train at once) and each rank's.
void report_rank(const apps::Ranks& ranks, int P_all, int nets, double fwd, double bwd, double step, double rate) {
  const double mine[5] = {double(nets), fwd, bwd, step, rate};
  std::vector<std::uint8_t> bytes(sizeof mine);
  std::memcpy(bytes.data(), mine, sizeof mine);
  if (ranks.rank() != 0) {
    ranks.send(0, 7, bytes, 600);
    return;
  }
  double slow_fwd = fwd, slow_bwd = bwd, slow_step = step, total = rate;
  std::string each = fmt::format("   {:.0f} ({})", rate, nets);
  for (int r = 1; r < ranks.size(); ++r) {
    const auto b = ranks.receive(r, 7, 600);
    double theirs[5];
    std::memcpy(theirs, b.data(), sizeof theirs);
    slow_fwd = std::max(slow_fwd, theirs[1]);
    slow_bwd = std::max(slow_bwd, theirs[2]);
    slow_step = std::max(slow_step, theirs[3]);
    total += theirs[4];
    each += fmt::format(", {:.0f} ({:.0f})", theirs[4], theirs[0]);
  }
  fmt::print("{:>5} {:>10} {:>10} {:>10.3f} {:>12.0f} {:>20.0f}{}\n", P_all, ms(slow_fwd), ms(slow_bwd),
             1e3 * slow_step, total / std::max(P_all, 1), total, each);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  evoplast::kernels::cpu::restart_with_short_spin_waits(argv);
  apps::Ranks ranks(&argc, &argv);
  if (ranks.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) return 1;  // rank 0 prints
  CLI::App app{"bench_population: network-images/s of a training step for populations of P nets"};
  std::vector<int> populations = {1, 10, 64, 256, 1024};
  std::string net_name = "cnn", rule = "backprop", backend_name = "auto", precision = "fp32";
  int batch = 64, steps = 20, warmup = 3;
  bool mixed_fa = false, mixed_feedback = false;
  // Sizes below 1 would print nothing or NaN figures: refused by name.
  app.add_option("-P,--population", populations, "Population sizes")
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--net", net_name, "Architecture")->capture_default_str();
  app.add_option("--rule", rule, "backprop (plain Adadelta step) or a named rule through the plasticity path")
      ->capture_default_str();
  app.add_option("--backend", backend_name, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--precision", precision, "GEMM arithmetic: fp32, or on a GPU's tensor cores tf32, tf32x3 or bf16")
      ->check(CLI::IsMember(evoplast::engine::kPrecisions))
      ->capture_default_str();
  app.add_flag("--mixed-fa", mixed_fa,
               "With a named rule: every other net passes its error down by feedback alignment (a mixed "
               "population, as evolution makes)");
  app.add_flag("--mixed-feedback", mixed_feedback,
               "With a named rule: net p learns its hidden layers from the error passed down (p % 4 = 0), by "
               "feedback alignment (1), by direct feedback alignment (2) or from none (3), as an evolved "
               "population holds all four")
      ->excludes("--mixed-fa");
  app.add_option("-b,--batch", batch, "Minibatch")->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("--steps", steps, "Timed steps per population size")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  if (const auto exit_code = evoplast::apps::parse_command_line(app, argc, argv, "bench_population")) return *exit_code;
  try {
    if (ranks.distributed() && !apps::built_with_mpi())
      throw std::runtime_error("built without MPI: start it without mpirun, or install libopenmpi-dev and rebuild");
    kernels::cpu::set_cpu_threads(apps::rank_threads(0, ranks));
    ranks.pin_device();
    auto backend = engine::make_backend(backend_name, precision);
    // A bad net or rule is the only line printed, before the table's header.
    const engine::NetSpec spec = engine::NetSpec::parse(net_name);
    if (rule != "backprop") (void)engine::named_rule(rule);
    fmt::print("bench_population: {} on {}, batch {}, rule {}{}, {} timed steps{}\n", net_name, backend->name(), batch,
               rule,
               mixed_fa         ? " (every other net by feedback alignment)"
               : mixed_feedback ? " (nets by backprop, FA, DFA and none in turn)"
                                : "",
               steps,
               ranks.distributed() ? fmt::format(", {} MPI ranks ({} CPU threads each)", ranks.size(),
                                                 kernels::cpu::cpu_threads())
                                   : std::string());
    fmt::print("{:>5} {:>10} {:>10} {:>10} {:>12} {:>20}{}\n", "P", "fwd ms", "bwd+upd ms", "step ms", "images/s",
               "network-images/s", ranks.distributed() ? "   per rank (its nets)" : "");
    std::mt19937 rng(1);  // one stream over the population sizes
    for (int P_all : populations) {
      // This rank's share of the population (all of it in one process).
      const apps::Share share = apps::share_of(P_all, ranks.rank(), ranks.size());
      const int P = share.count;
      if (P == 0) {  // more ranks than nets: this one idles
        if (ranks.distributed()) report_rank(ranks, P_all, 0, 0, 0, 0, 0);
        continue;
      }
      // A size that does not fit this machine is a row saying so, not the end of the table
      // (one process: a distributed run's ranks report together, so there it ends the run).
      if (!ranks.distributed()) try {
          engine::admit_population(*backend,
                                   engine::MemoryPlan(spec, batch, batch, rule != "backprop",
                                                      backend->fuses_conv_steps()),
                                   P, batch);
        } catch (const engine::PopulationTooLarge& e) {
          fmt::print("{:>5} does not fit: {}\n", P, e.what());
          continue;
        }
      // Backprop runs conv → ReLU → pool fused (as evolve train); the rules read every conv's activation.
      engine::PopulationNet net(*backend, spec, P, batch,
                                 rule == "backprop" ? engine::ConvReluPool::fused
                                                    : engine::ConvReluPool::fused_keeping_activation);
      net.init_params(1, false);
      std::optional<engine::Optimizer> opt;
      std::optional<engine::Plasticity> plastic;
      if (rule == "backprop") opt.emplace(*backend, net, engine::OptimizerConfig{});
      else {
        std::vector<engine::Rule> rules(std::size_t(P), engine::named_rule(rule));
        for (int p = 1; mixed_fa && p < P; p += 2) rules[std::size_t(p)].feedback = engine::Feedback::fa;
        const engine::Feedback turns[] = {engine::Feedback::backprop, engine::Feedback::fa, engine::Feedback::dfa,
                                          engine::Feedback::none};
        for (int p = 0; mixed_feedback && p < P; ++p) rules[std::size_t(p)].feedback = turns[(share.first + p) % 4];
        plastic.emplace(*backend, net, rules, 1);
      }
      bench::SyntheticBatch input(*backend, spec, batch, rng);
      auto& x = input.x;
      auto& y = input.y;
      const std::vector<float> lr(std::size_t(P), 1.0f);
      const auto learn = [&] {
        if (opt) {
          opt->backward_and_step(y.data(), batch, lr);
        } else {
          plastic->step_async(y.data(), batch, 1.0f, 0);
        }
      };
      // A backend that runs a step as one CUDA graph is timed by the whole
      // step (the graph cannot be cut in two); any other by its two halves.
      const bool whole = backend->captures_steps();
      double t_fwd = 0, t_bwd = 0, t_step = 0;
      for (int s = 0; s < warmup + steps; ++s) {
        const auto t0 = Clock::now();
        if (whole) {
          NvtxRange r("step");
          backend->run_step(batch, [&] {
            net.forward(x.data(), batch, true, 1, std::uint64_t(s));
            learn();
          });
          backend->synchronize();
        } else {
          {
            NvtxRange r("forward");
            net.forward(x.data(), batch, true, 1, std::uint64_t(s));
            backend->synchronize();
          }
          const auto t1 = Clock::now();
          if (s >= warmup) t_fwd += std::chrono::duration<double>(t1 - t0).count();
          {
            NvtxRange r(rule == "backprop" ? "backward+adadelta" : "plasticity");
            learn();
            backend->synchronize();
          }
          if (s >= warmup) t_bwd += std::chrono::duration<double>(Clock::now() - t1).count();
        }
        if (s >= warmup) t_step += std::chrono::duration<double>(Clock::now() - t0).count();
      }
      const double step = t_step / steps;
      const double fwd = whole ? -1 : t_fwd / steps, bwd = whole ? -1 : t_bwd / steps;
      if (ranks.distributed()) {
        report_rank(ranks, P_all, P, fwd, bwd, step, double(P) * batch / step);
        continue;
      }
      fmt::print("{:>5} {:>10} {:>10} {:>10.3f} {:>12.0f} {:>20.0f}\n", P, ms(fwd), ms(bwd), 1e3 * step, batch / step,
                 double(P) * batch / step);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_population: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
