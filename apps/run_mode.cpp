// `evolve run`: evolves plasticity rules. Each generation trains the whole
// population side by side (one PopulationNet, one shared minibatch stream, a
// per-generation seed), scores it, and tells the GA. The run directory keeps
// the resolved config, generations.jsonl, best_rule.json, a checkpoint after
// every generation (so --resume continues a killed run to exactly the
// uninterrupted result) and the report. `evolve report DIR` redoes the report.
// Here: the options, the generation loop, rank 0's side of the other ranks,
// the console. The evaluation (across ranks) is in evaluator.hpp, the
// champion's selection in champion.hpp, the run directory and its checkpoint
// in run_directory.hpp.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/champion.hpp"
#include "apps/evaluator.hpp"
#include "apps/modes.hpp"
#include "apps/ranks.hpp"
#include "apps/run_directory.hpp"
#include "engine/backend.hpp"
#include "engine/continual.hpp"
#include "engine/errors.hpp"
#include "engine/memory_plan.hpp"
#include "engine/network.hpp"
#include "engine/rule.hpp"
#include "ga/ga.hpp"
#include "ga/genome.hpp"
#include "io/config.hpp"
#include "io/dataset.hpp"
#include "io/records.hpp"
#include "io/report.hpp"
#include "io/run_dir.hpp"
#include "io/text_file.hpp"

namespace evoplast::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct RunOptions {
  std::string preset;
  std::string config_file;
  std::vector<std::string> settings;
  std::optional<int> population, generations, epochs;
  std::optional<std::int64_t> train_per_task, val_per_task, test_per_task;
  std::optional<std::uint64_t> seed;
  std::optional<std::string> data_dir, backend, precision;
  std::string out;
  std::string resume;
  bool quiet = false;
  bool no_verify = false;
  double rank_timeout_s = 3600;  // under mpirun: the longest wait for a rank's share
};

// Terminal progress: one line rewritten in place on a terminal (cut to its
// width: a wrapped line cannot be rewritten), plain lines otherwise, nothing
// with --quiet.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stdout)) != 0) {
    winsize ws{};
    if (tty_ && ioctl(fileno(stdout), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) columns_ = ws.ws_col;
  }
  void status(const std::string& line) {
    if (quiet_) return;
    if (tty_) fmt::print("\r\033[K{}", fit(line, columns_ - 1));
    else fmt::print("{}\n", line);
    std::fflush(stdout);
  }
  void line(const std::string& text) {
    if (quiet_) return;
    if (tty_) fmt::print("\r\033[K");
    fmt::print("{}\n", text);
    std::fflush(stdout);
  }

 private:
  // The first `cols` characters (UTF-8 code points) of line.
  static std::string fit(const std::string& line, int cols) {
    int seen = 0;
    for (std::size_t i = 0; i < line.size(); ++i)
      if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80 && seen++ == cols) return line.substr(0, i);
    return line;
  }
  bool quiet_, tty_;
  int columns_ = 80;
};

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int t = int(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, t / 60 % 60)
                   : t >= 60 ? fmt::format("{}m{:02d}s", t / 60, t % 60) : fmt::format("{}s", t);
}

std::string ci_text(const json& ci) {
  return ci.is_array() && ci.size() == 2 && ci[0].is_number()
             ? fmt::format("[{:.4f}, {:.4f}]", ci[0].get<double>(), ci[1].get<double>())
             : std::string("(no interval from one stream)");
}

// The protocols of train.protocol (comma-separated: every individual is
// trained on each, and its fitness is the mean), with the run's data sizes.
std::vector<engine::ProtocolConfig> protocol_configs(const io::RunConfig& cfg) {
  std::vector<engine::ProtocolConfig> pcs;
  std::stringstream list(cfg.protocol);
  for (std::string name; std::getline(list, name, ',');) {
    if (name.empty()) continue;
    engine::ProtocolConfig pc;
    engine::parse_protocol_name(name, pc);
    pc.dataset = cfg.dataset;
    pc.validation = cfg.validation;
    pc.train_per_task = cfg.train_per_task;
    pc.val_per_task = cfg.val_per_task;
    pc.test_per_task = cfg.test_per_task;
    pcs.push_back(pc);
  }
  if (pcs.empty()) throw io::ConfigError("config key 'train.protocol': name at least one protocol");
  return pcs;
}

std::map<std::string, io::Dataset> load_datasets(const std::vector<engine::ProtocolConfig>& pcs,
                                                 const io::RunConfig& cfg, bool verify) {
  const auto data_dir = io::resolve_data_dir(cfg.data_dir.empty() ? std::nullopt : std::optional(cfg.data_dir));
  std::map<std::string, io::Dataset> datasets;
  for (const auto& pc : pcs)
    for (auto& [name, d] : engine::load_protocol_datasets(pc, data_dir, verify))
      if (!datasets.count(name)) datasets.emplace(name, std::move(d));
  return datasets;
}

// A rank other than 0: the run's configuration from rank 0, its own copy of
// the data, then its share of every evaluation until rank 0 is done.
int serve_run(const RunOptions& o, const Ranks& ranks) {
  const json setup = json::from_cbor(ranks.receive(0, kSetup, -1));
  if (setup.contains("stop")) return 0;  // rank 0 failed before the run began (and says why)
  std::optional<Evaluator> evaluator;
  std::unique_ptr<engine::Backend> backend;
  io::RunConfig cfg;
  std::vector<engine::ProtocolConfig> pcs;
  std::map<std::string, io::Dataset> datasets;
  json ready = json::object();
  try {
    io::apply_toml(cfg, setup.at("config").get<std::string>(), "rank 0's configuration");
    cfg.data_dir = setup.at("data_dir").get<std::string>();
    cfg.backend = setup.at("backend").get<std::string>();
    pcs = protocol_configs(cfg);
    datasets = load_datasets(pcs, cfg, !o.no_verify);
    use_cpu_threads(rank_threads(cfg.threads, ranks));
    ranks.pin_device();
    backend = engine::make_backend(cfg.backend, cfg.precision);
    evaluator.emplace(*backend, pcs, datasets, cfg, ranks, -1);
  } catch (const std::exception& e) {
    ready = {{"error", e.what()}};
  }
  ready["pid"] = int(getpid());
  ranks.send(0, kReady, json::to_cbor(ready), -1);
  if (evaluator) evaluator->serve();
  else (void)ranks.receive(0, kOrder, -1);  // the stop that follows the error
  return 0;
}

// Rank 0's side of the other ranks' life: the setup they wait for, and a stop
// however the run ends (without one they would wait for orders forever).
class RankRelease {
 public:
  explicit RankRelease(const Ranks& ranks) : ranks_(ranks) {}
  ~RankRelease() {
    const auto stop = json::to_cbor(json{{"stop", true}});
    for (int w = 1; w < ranks_.size(); ++w) {
      try {
        ranks_.send(w, set_up_ ? kOrder : kSetup, stop, 2);
      } catch (const RankFailure&) {  // a rank that does not listen is ended with the job
      }
    }
  }
  // Sends the setup and waits until every rank has loaded its data (or names the one that could not).
  void set_up(const json& setup, double timeout_s) {
    const auto bytes = json::to_cbor(setup);
    for (int w = 1; w < ranks_.size(); ++w) ranks_.send(w, kSetup, bytes, timeout_s);
    set_up_ = true;
    std::vector<std::pair<int, int>> local;  // (rank, pid) of the ranks on this machine
    for (int w = 1; w < ranks_.size(); ++w) {
      const json ready = json::from_cbor(ranks_.receive(w, kReady, timeout_s));
      if (ready.contains("error"))  // on a cluster, the node is the thing to fix (its data, its GPU)
        throw engine::EngineError(
            fmt::format("rank {} on {}: {}", w, ranks_.host(w), ready.at("error").get<std::string>()));
      if (ranks_.host(w) == ranks_.host(0)) local.push_back({w, ready.value("pid", 0)});
    }
    Ranks::watch_local_ranks(local);
  }

 private:
  const Ranks& ranks_;
  bool set_up_ = false;
};

// The run's configuration: the preset, config file, --set and options of a
// new run, or the run directory's own for --resume (where options that would
// change the run are refused; where the data is, the backend and the output
// are not part of the result and may change, after the config check).
io::RunConfig resolve_config(const RunOptions& o) {
  io::RunConfig cfg;
  if (!o.resume.empty()) {
    std::vector<std::string> changing;
    if (!o.preset.empty()) changing.push_back("--preset");
    if (!o.config_file.empty()) changing.push_back("--config");
    if (!o.settings.empty()) changing.push_back("--set");
    if (o.population) changing.push_back("--population");
    if (o.generations) changing.push_back("--generations");
    if (o.epochs) changing.push_back("--epochs");
    if (o.train_per_task) changing.push_back("--train-per-task");
    if (o.val_per_task) changing.push_back("--val-per-task");
    if (o.test_per_task) changing.push_back("--test-per-task");
    if (o.seed) changing.push_back("--seed");
    if (!o.out.empty()) changing.push_back("--out");
    if (!changing.empty())
      throw io::ConfigError(fmt::format("--resume continues a run with its own configuration, so {} cannot be "
                                        "given with it (it takes --data-dir, --backend, --quiet, --no-verify, "
                                        "--rank-timeout); "
                                        "start a new run to change the run",
                                        fmt::join(changing, ", ")));
    const fs::path dir = o.resume;
    if (!fs::exists(dir / "checkpoint.json"))
      throw io::IoError(fmt::format("--resume {}: no checkpoint.json there (not a run directory, or "
                                    "no generation finished)",
                                    dir.string()));
    io::apply_toml(cfg, io::read_text(dir / "config.toml"), (dir / "config.toml").string());
  } else {
    cfg = io::preset(o.preset.empty() ? "smoke" : o.preset);
    if (!o.config_file.empty()) io::apply_toml(cfg, io::read_text(o.config_file), o.config_file);
    for (const auto& s : o.settings) io::apply_setting(cfg, s);
    if (o.population) cfg.population = *o.population;
    if (o.generations) cfg.generations = *o.generations;
    if (o.epochs) cfg.epochs = *o.epochs;
    if (o.train_per_task) cfg.train_per_task = *o.train_per_task;
    if (o.val_per_task) cfg.val_per_task = *o.val_per_task;
    if (o.test_per_task) cfg.test_per_task = *o.test_per_task;
    if (o.seed) cfg.seed = *o.seed;
    if (o.data_dir) cfg.data_dir = *o.data_dir;
    if (o.backend) cfg.backend = *o.backend;
    if (o.precision) cfg.precision = *o.precision;
  }
  io::validate(cfg);
  (void)engine::NetSpec::parse(cfg.net);  // a bad net name or seed rule fails before any work
  for (const auto& r : cfg.seed_rules) (void)engine::named_rule(r);
  return cfg;
}

ga::GaConfig ga_config(const io::RunConfig& cfg) {
  ga::GaConfig gc{cfg.population, cfg.tournament, cfg.crossover_rate, cfg.crossover,
                  cfg.mutation_rate, cfg.mutation_sigma, cfg.elites};
  ga::validate(gc);
  return gc;
}

// The backend of rank 0, and whether its share of the nets fits it, before
// the GA holds P genomes (the other ranks check their own as they train).
std::unique_ptr<engine::Backend> open_backend(const io::RunConfig& cfg, const Ranks& ranks) {
  use_cpu_threads(rank_threads(cfg.threads, ranks));
  ranks.pin_device();
  auto backend = engine::make_backend(cfg.backend, cfg.precision);
  try {
    // The population or the finalists, and the controls beside them.
    const int nets = std::max(cfg.population, cfg.finalists) + int(cfg.controls.size());
    engine::admit_population(*backend,
                             engine::MemoryPlan(engine::NetSpec::parse(cfg.net).adapted(28, 28, 10),
                                                std::max(cfg.batch, cfg.eval_batch), cfg.batch, true,
                                                backend->fuses_conv_steps()),
                             share_of(nets, 0, ranks.size()).count, std::max(cfg.batch, cfg.eval_batch));
  } catch (const engine::PopulationTooLarge& e) {
    const long room = e.fits * ranks.size() - long(cfg.controls.size());
    throw io::ConfigError(fmt::format("{} (the population with its {} controls); {}", e.what(), cfg.controls.size(),
                                      room >= 2 ? fmt::format("lower ga.population (-P) to {}", room)
                                                : std::string("lower train.batch and train.eval_batch, or choose a "
                                                              "smaller train.net")));
  }
  return backend;
}

// One generation's records: a line per individual and per control appended
// to generations.jsonl. Returns the individuals' fitness for the GA (a
// diverged net ranks last) and the file's size after the last line.
std::pair<std::vector<double>, std::uint64_t> record_generation(int g, const std::vector<ga::Individual>& pop,
                                                                const std::vector<engine::Rule>& rules,
                                                                const Controls& controls,
                                                                const std::vector<std::uint64_t>& seeds,
                                                                const Runs& runs, const io::RunConfig& cfg,
                                                                const fs::path& dir) {
  std::vector<double> fitness;
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const StreamFitness f = stream_fitness(runs, i, cfg);
    const bool control = i >= pop.size();
    json line = record(runs, i, true);
    line.update(json{{"generation", g},
                     {"role", control ? "control" : "individual"},
                     {"individual", control ? json(nullptr) : json(i)},
                     {"control", control ? json(controls.names[i - pop.size()]) : json(nullptr)},
                     {"origin", control ? std::string("control") : pop[i].origin},
                     {"genome", control ? json(nullptr) : io::genome_json(pop[i].genome)},
                     {"rule", json::parse(engine::rule_to_json(rules[i]))},
                     // Records hold no sentinel: a diverged net's fitness is null, with the flag.
                     {"fitness", f.diverged ? json(nullptr) : json(f.mean)},
                     {"fitness_streams", f.values},
                     {"diverged", f.diverged},
                     {"seed", seeds.front()},
                     {"seeds", seeds},
                     {"seconds", runs.seconds / double(rules.size())},
                     {"throughput", throughput_json(runs)}});
    bytes = io::append_line(dir / "generations.jsonl", line.dump());
    if (!control) fitness.push_back(f.diverged ? engine::kWorstFitness : f.mean);
  }
  return {fitness, bytes};
}

// The console line of a finished generation.
std::string generation_line(int g, const io::RunConfig& cfg, const std::vector<double>& fitness,
                            const Controls& controls, std::size_t population, const Runs& runs, double seconds) {
  double mean = 0;
  int counted = 0, best_i = 0;
  for (std::size_t i = 0; i < fitness.size(); ++i) {
    if (fitness[i] > engine::kWorstFitness) mean += fitness[i], ++counted;
    if (fitness[i] > fitness[std::size_t(best_i)]) best_i = int(i);
  }
  std::string beside;
  for (std::size_t c = 0; c < controls.names.size(); ++c) {
    const StreamFitness f = stream_fitness(runs, population + c, cfg);
    beside += fmt::format("{}{} {}", beside.empty() ? "" : ", ", controls.names[c],
                          f.diverged ? std::string("diverged") : fmt::format("{:.4f}", f.mean));
  }
  return fmt::format("generation {} of 0–{}: best {:.4f} (individual {}), mean {:.4f}{}, {}, {}", g,
                     cfg.generations - 1, fitness[std::size_t(best_i)], best_i, counted ? mean / counted : 0.0,
                     beside.empty() ? "" : "; controls " + beside, throughput_text(runs), duration(seconds));
}

// The closing lines: the champion beside the controls, where the files are.
void print_champion(const json& champion, const io::RunConfig& cfg, const fs::path& dir, const fs::path& report) {
  std::string beside;
  for (const auto& [name, control] : champion.at("controls").items()) {
    const json& fitness = control.at("fitness");
    beside += fmt::format("{}{} {}", beside.empty() ? "" : ", ", name,
                          fitness.is_number() ? fmt::format("{:.4f}", fitness.get<double>()) : std::string("diverged"));
  }
  fmt::print("champion ({}): fitness {:.4f}, 95% CI {} on {} fresh validation streams{}\n"
             "best rule in {}, report in {}\n",
             champion.at("origin").at("text").get<std::string>(), champion.at("fitness").get<double>(),
             ci_text(champion.at("fitness_ci95")), cfg.final_streams, beside.empty() ? "" : "; controls " + beside,
             (dir / "best_rule.json").string(), report.string());
}

// Where the run can go on from after generations_done generations: what rank
// 0 says when a rank fails, or when mpirun ends it (it does when another rank
// dies).
std::string resume_advice(const fs::path& dir, int generations_done) {
  return generations_done > 0
             ? fmt::format("the last good checkpoint is {} ({} generation{} done): continue with evolve run "
                           "--resume {}, with any number of ranks",
                           (dir / "checkpoint.json").string(), generations_done, generations_done == 1 ? "" : "s",
                           dir.string())
             : std::string("no generation was done: start the run again");
}

// The console's first line: what runs, on what, and where it is written.
std::string opening_line(const io::RunConfig& cfg, const Controls& controls, const std::string& backend,
                         const RunDirectory& run, int generation) {
  return fmt::format("evolve run: preset {}, {} on {} ({}), P={}, {} generations, {} stream{} each, "
                     "controls {}, backend {}, run directory {}{}",
                     cfg.preset, cfg.net, cfg.protocol, cfg.dataset, cfg.population, cfg.generations, cfg.streams,
                     cfg.streams == 1 ? "" : "s",
                     controls.names.empty() ? std::string("none") : fmt::format("{}", fmt::join(controls.names, ", ")),
                     backend, run.path().string(),
                     run.resuming() ? fmt::format(" (resuming at generation {})", generation) : "");
}

// The time left to the last generation's end, from the pace since this
// process began (a resumed run counts from its first generation here).
class Eta {
 public:
  Eta(int first_generation, int generations, int epochs_per_generation)
      : start_(Clock::now()), first_(first_generation), last_(generations), epochs_(epochs_per_generation) {}
  // After the `epochs`-th epoch of generation g.
  double seconds_left(int g, int epochs) const {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double gens_done = double(g - first_) + double(epochs) / epochs_;
    return elapsed / gens_done * (last_ - first_ - gens_done);
  }

 private:
  Clock::time_point start_;
  int first_, last_, epochs_;
};

int run_evolution(const RunOptions& o, const Ranks& ranks) {
  if (ranks.rank() != 0) return serve_run(o, ranks);
  RankRelease release(ranks);
  io::RunConfig cfg = resolve_config(o);
  // Bad GA settings or protocols fail before the run directory exists.
  const ga::GaConfig gc = ga_config(cfg);
  const std::vector<engine::ProtocolConfig> pcs = protocol_configs(cfg);
  RunDirectory run(o.resume, o.out, cfg);
  const fs::path& dir = run.path();
  const std::string config_text = io::to_toml(cfg);
  run.write_or_check_config(config_text);
  if (run.resuming()) {  // after the config check: these do not change the result
    if (o.data_dir) cfg.data_dir = *o.data_dir;
    if (o.backend) cfg.backend = *o.backend;
  }
  auto backend = open_backend(cfg, ranks);
  const ga::GenomeSchema schema(engine::NetSpec::parse(cfg.net).hidden_plastic_layers());
  ga::GeneticAlgorithm ga = start_or_restore_ga(schema, gc, cfg, config_text, run);

  // The other ranks load their own copy of the data meanwhile (from the same
  // path: on a cluster, a shared file system or the same path on every node).
  const auto datasets = load_datasets(pcs, cfg, !o.no_verify);
  if (ranks.distributed())
    release.set_up({{"config", config_text}, {"data_dir", cfg.data_dir}, {"backend", cfg.backend}}, o.rank_timeout_s);

  const Controls controls = make_controls(cfg);
  Ranks::set_last_words(resume_advice(dir, ga.generation()));
  Progress progress(o.quiet);
  progress.line(opening_line(cfg, controls, backend->name(), run, ga.generation()));
  const Evaluator evaluator{*backend, pcs, datasets, cfg, ranks, o.rank_timeout_s};
  const Eta eta(ga.generation(), cfg.generations, evaluator.epochs_per_stream() * cfg.streams);
  json champion;
  try {
    for (int g = ga.generation(); g < cfg.generations; ++g) {
      const auto& pop = ga.ask();
      std::vector<engine::Rule> decoded;
      for (std::size_t i = 0; i < pop.size(); ++i)
        decoded.push_back(schema.decode(pop[i].genome, fmt::format("g{}i{}", g, i)));
      const Nets nets = beside_controls(std::move(decoded), controls);
      const auto seeds = generation_stream_seeds(cfg.seed, g, cfg.streams);
      int epochs = 0;
      const auto t_gen = Clock::now();
      const auto runs = evaluator.run(nets.rules, nets.ewc_lambda, seeds, [&](const std::string& what) {
        // Generations are counted from 0 on the console as in the files (0 is the initial population).
        progress.status(fmt::format("gen {} of 0–{} · {} · ETA {} (+ champion)", g, cfg.generations - 1, what,
                                    duration(eta.seconds_left(g, ++epochs))));
      });

      const auto [fitness, bytes] = record_generation(g, pop, nets.rules, controls, seeds, runs, cfg, dir);
      write_provisional_best(dir);
      ga.tell(fitness);
      run.write_checkpoint(config_text, ga, bytes, g + 1);
      Ranks::set_last_words(resume_advice(dir, g + 1));
      run.keep();
      progress.line(generation_line(g, cfg, fitness, controls, pop.size(), runs,
                                    std::chrono::duration<double>(Clock::now() - t_gen).count()));
    }
    champion = select_champion(evaluator, schema, controls, dir, cfg,
                               [&](const std::string& line) { progress.status(line); });
  } catch (const RankFailure& e) {  // a rank that failed or hangs: say where the run can go on from
    throw RankFailure(e.rank, e.timed_out, fmt::format("{}; {}", e.what(), resume_advice(dir, ga.generation())));
  }
  if (cfg.heldout_seeds > 0) {
    progress.line(fmt::format("held-out evaluation: the champion beside finetune, ewc, si and joint on {} seeds, "
                              "into {}",
                              cfg.heldout_seeds, (dir / "heldout").string()));
    evaluate_heldout(dir, cfg.heldout_seeds, cfg.data_dir, cfg.backend, cfg.precision, cfg.threads, o.quiet);
  }
  print_champion(champion, cfg, dir, io::write_report(dir));
  return 0;
}

}  // namespace

std::function<int()> add_run_mode(CLI::App& app, Ranks& ranks) {
  auto o = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand(
      "run",
      "Evolve plasticity rules with the genetic algorithm. Presets: smoke (under 2 minutes on 2 CPU "
      "cores), seed (the seed's experiment: P=10, 5 generations, the CNN, 14 epochs, fitness seed), "
      "continual (Split MNIST domain-IL and Permuted MNIST, MLP 2x400, fitness continual averaged over both).");
  cmd->footer("Config keys (TOML sections [ga], [train], [fitness]; --set section.key=value): " + [] {
    std::string k;
    for (const auto& s : io::config_keys()) k += (k.empty() ? "" : ", ") + s;
    return k;
  }());
  cmd->add_option("--preset", o->preset, "smoke (default), seed or continual")
      ->check(CLI::IsMember(io::preset_names()));
  cmd->add_option("--config", o->config_file, "TOML file of config keys (over the preset)");
  cmd->add_option("--set", o->settings, "key=value over the config, e.g. --set ga.population=20 (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("-P,--population", o->population, "= ga.population");
  cmd->add_option("-g,--generations", o->generations, "= ga.generations");
  cmd->add_option("-e,--epochs", o->epochs, "= train.epochs (per task)");
  // The same names as evolve eval and evolve train.
  cmd->add_option("--train-per-task", o->train_per_task, "= train.train_per_task (0: all)");
  cmd->add_option("--val-per-task", o->val_per_task, "= train.val_per_task (0: all)");
  cmd->add_option("--test-per-task", o->test_per_task, "= train.test_per_task (0: all)");
  cmd->add_option("--seed", o->seed, "Run seed: initial population, GA draws, generation seeds")
      ->check(kSeed);
  cmd->add_option("--data-dir", o->data_dir, "= data_dir");
  cmd->add_option("--backend", o->backend, "= backend: cpu, cuda or auto");
  cmd->add_option("--precision", o->precision,
                  "= precision: fp32 (default), or on a GPU's tensor cores tf32, tf32x3 (split TF32, about fp32's "
                  "accuracy) or bf16 (tf32 and bf16 emulated on the CPU: their accuracy, not their speed)");
  cmd->add_option("-o,--out", o->out, "Run directory (default: a new runs/<preset>-seed<seed>-<time>)");
  cmd->add_option("--resume", o->resume,
                  "Continue the run in this directory with its own config (only --data-dir, --backend, --quiet "
                  "and --no-verify may be given with it)");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  cmd->add_flag("--no-verify", o->no_verify, "Skip the MD5 check of the data files");
  cmd->add_option("--rank-timeout", o->rank_timeout_s,
                  "Under mpirun: seconds rank 0 waits for a rank's share of a generation before it ends the run, "
                  "naming the rank and the checkpoint to resume from (default 3600)")
      ->check(CLI::Range(1.0, 1e7));
  return [o, &ranks] { return run_evolution(*o, ranks); };
}

std::function<int()> add_report_mode(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("report", "Write (again) the report of a run directory: report.html and its SVG charts");
  cmd->add_option("dir", *dir, "Run directory")->required();
  return [dir] {
    const auto path = io::write_report(*dir);
    fmt::print("wrote {}\n", path.string());
    return 0;
  };
}

}  // namespace evoplast::apps
