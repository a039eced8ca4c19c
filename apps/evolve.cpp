// evolve: the evoplast command line. Modes: `run` (evolve rules with the GA),
// `eval` (rules and baselines on continual-learning protocols), `train` (the
// seed's baseline by backprop), `report` (redo a run's report). Every error ends as one line on stderr and a non-zero exit.
// Under mpirun only `run` takes part (its population is spread over the
// ranks); rank 0 speaks for the job.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "apps/command_line.hpp"
#include "apps/modes.hpp"
#include "apps/program.hpp"
#include "apps/ranks.hpp"
#include "kernels/cpu_threads.hpp"

int main(int argc, char** argv) {
  evoplast::kernels::cpu::restart_with_short_spin_waits(argv);
  evoplast::apps::Ranks ranks(&argc, &argv);
  if (ranks.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) return 1;  // rank 0 speaks for the job
  CLI::App app{"evoplast: evolve local plasticity rules for continual learning"};
  app.require_subcommand(1);
  // A repeated option takes its last value, so flags can override earlier ones.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", "evolve " + evoplast::apps::program_version() + " (commit " + evoplast::apps::program_commit() + ")");
  auto run_train = evoplast::apps::add_train_mode(app);
  auto run_eval = evoplast::apps::add_eval_mode(app);
  auto run_run = evoplast::apps::add_run_mode(app, ranks);
  auto run_report = evoplast::apps::add_report_mode(app);
  if (const auto exit_code = evoplast::apps::parse_command_line(app, argc, argv, "evolve", ranks.rank() == 0))
    return *exit_code;
  if (ranks.distributed()) {
    const char* refusal = nullptr;
    if (!evoplast::apps::built_with_mpi())
      refusal = "this evolve was built without MPI (install libopenmpi-dev and build again), so it cannot share a "
                "run among mpirun's processes; start it without mpirun";
    else if (!app.got_subcommand("run"))
      refusal = "only evolve run spreads over MPI ranks (its population); start eval, train and report without mpirun";
    if (refusal) {
      if (ranks.rank() == 0) fmt::print(stderr, "evolve: error: {}\n", refusal);
      return 2;
    }
  }
  try {
    if (app.got_subcommand("train")) return run_train();
    if (app.got_subcommand("eval")) return run_eval();
    if (app.got_subcommand("run")) return run_run();
    if (app.got_subcommand("report")) return run_report();
  } catch (const evoplast::apps::RankFailure& e) {
    // A rank that hangs cannot be waited for: the whole job ends now.
    std::fflush(stdout);
    fmt::print(stderr, "evolve: error: {}\n", e.what());
    ranks.abort(1);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    if (ranks.rank() == 0) fmt::print(stderr, "evolve: error: {}\n", e.what());
    else fmt::print(stderr, "evolve: error on rank {}: {}\n", ranks.rank(), e.what());
    return 1;
  }
  return 0;
}
