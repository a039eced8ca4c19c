// `evolve run`: evolves plasticity rules. Each generation trains the whole
// population side by side (one PopulationNet, one shared minibatch stream, a
// per-generation seed), scores it, and tells the GA. The run directory keeps
// the resolved config, generations.jsonl, best_rule.json, a checkpoint after
// every generation (so --resume continues a killed run to exactly the
// uninterrupted result) and the report. `evolve report DIR` redoes the report.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "apps/modes.hpp"
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
#include "io/report.hpp"
#include "io/run_dir.hpp"
#include "kernels/gemm_cpu.hpp"

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
  std::optional<std::uint64_t> seed;
  std::optional<std::string> data_dir, backend;
  std::string out;
  std::string resume;
  bool quiet = false;
  bool no_verify = false;
};

// Evolution draws generation seeds from [1, 999]; `evolve eval` uses 1000 and up.
std::uint64_t generation_seed(std::uint64_t run_seed, int g) {
  std::uint64_t z = run_seed * 0x9E3779B97F4A7C15ull + std::uint64_t(g) * 0xBF58476D1CE4E5B9ull;
  z ^= z >> 31;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 29;
  return 1 + z % 999;
}

// Terminal progress: one line rewritten in place on a terminal, plain lines
// otherwise, nothing with --quiet.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stdout)) != 0) {}
  void status(const std::string& line) {
    if (quiet_) return;
    if (tty_) fmt::print("\r\033[K{}", line);
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
  bool quiet_, tty_;
};

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int t = int(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, t / 60 % 60)
                   : t >= 60 ? fmt::format("{}m{:02d}s", t / 60, t % 60) : fmt::format("{}s", t);
}

json metrics_json(const engine::ContinualMetrics& m) {
  return {{"acc", m.acc}, {"bwt", m.bwt}, {"fwt", m.fwt}, {"forgetting", m.forgetting}};
}

// A checkpoint is used whole or not at all: every field must fit the run's
// configuration and the generations file it points into (throws
// std::invalid_argument naming the first field that does not).
void check_checkpoint(const ga::GeneticAlgorithm& ga, const ga::GaConfig& gc, const io::RunConfig& cfg,
                      const json& ck, const fs::path& jsonl) {
  const auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  const ga::GaConfig& c = ga.config();
  if (c.population != gc.population || c.tournament != gc.tournament || c.elites != gc.elites ||
      c.crossover != gc.crossover || c.crossover_rate != gc.crossover_rate || c.mutation_rate != gc.mutation_rate ||
      c.mutation_sigma != gc.mutation_sigma)
    bad(fmt::format("its GA settings (population {}) are not the configuration's (population {})", c.population,
                    gc.population));
  const int g = ga.generation();
  if (g > cfg.generations) bad(fmt::format("generation {} is beyond the run's {} generations", g, cfg.generations));
  if (ck.at("generations_done").get<int>() != g)
    bad(fmt::format("generations_done {} disagrees with the GA's generation {}", ck.at("generations_done").get<int>(),
                    g));
  const auto bytes = ck.at("jsonl_bytes").get<std::uint64_t>();
  std::error_code ec;
  const std::uint64_t size = fs::exists(jsonl) ? fs::file_size(jsonl, ec) : 0;
  if (bytes > size) bad(fmt::format("jsonl_bytes {} is past the end of generations.jsonl ({} bytes)", bytes, size));
  // The records it keeps: exactly one line per individual of every finished generation.
  std::uint64_t lines = 0;
  if (bytes > 0) {
    const std::string text = io::read_text(jsonl).substr(0, bytes);
    lines = std::uint64_t(std::count(text.begin(), text.end(), '\n'));
    if (text.back() != '\n') bad(fmt::format("jsonl_bytes {} cuts generations.jsonl inside a line", bytes));
  }
  const std::uint64_t want = std::uint64_t(g) * std::uint64_t(gc.population);
  if (lines != want)
    bad(fmt::format("jsonl_bytes {} keeps {} records of generations.jsonl, but {} generations of {} make {}", bytes,
                    lines, g, gc.population, want));
}

int run_evolution(const RunOptions& o) {
  io::RunConfig cfg;
  fs::path dir;
  const bool resuming = !o.resume.empty();
  if (resuming) {
    // --resume continues a run as it was configured: options that would change
    // it are refused; where the data is, the backend and the output are not
    // part of the result and may change.
    std::vector<std::string> changing;
    if (!o.preset.empty()) changing.push_back("--preset");
    if (!o.config_file.empty()) changing.push_back("--config");
    if (!o.settings.empty()) changing.push_back("--set");
    if (o.population) changing.push_back("--population");
    if (o.generations) changing.push_back("--generations");
    if (o.epochs) changing.push_back("--epochs");
    if (o.seed) changing.push_back("--seed");
    if (!o.out.empty()) changing.push_back("--out");
    if (!changing.empty())
      throw io::ConfigError(fmt::format("--resume continues a run with its own configuration, so {} cannot be "
                                        "given with it (it takes --data-dir, --backend, --quiet, --no-verify); "
                                        "start a new run to change the run",
                                        fmt::join(changing, ", ")));
    dir = o.resume;
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
    if (o.seed) cfg.seed = *o.seed;
    if (o.data_dir) cfg.data_dir = *o.data_dir;
    if (o.backend) cfg.backend = *o.backend;
    dir = o.out;
  }
  io::validate(cfg);
  // train.protocol may name several, comma-separated (continual: Split and Permuted
  // MNIST): every individual is trained on each, and its fitness is the mean.
  std::vector<engine::ProtocolConfig> pcs;
  {
    std::stringstream list(cfg.protocol);
    for (std::string name; std::getline(list, name, ',');) {
      if (name.empty()) continue;
      engine::ProtocolConfig pc;
      engine::parse_protocol_name(name, pc);
      pcs.push_back(pc);
    }
    if (pcs.empty()) throw io::ConfigError("config key 'train.protocol': name at least one protocol");
  }
  (void)engine::NetSpec::parse(cfg.net);  // a bad net name fails before any work
  for (const auto& r : cfg.seed_rules) (void)engine::named_rule(r);
  ga::GaConfig gc{cfg.population, cfg.tournament, cfg.crossover_rate, cfg.crossover,
                  cfg.mutation_rate, cfg.mutation_sigma, cfg.elites};
  ga::validate(gc);

  // The run directory: a new one per run unless --out names one (which must
  // be empty, or hold this very run for --resume); one writer at a time, and
  // nothing left behind by a run that fails before its first generation.
  bool created_here = false;
  if (!resuming && dir.empty()) {
    dir = io::create_stamped_run_dir(fmt::format("{}-seed{}", cfg.preset, cfg.seed));
    created_here = true;
  } else if (!resuming) {
    if (fs::exists(dir / "checkpoint.json"))
      throw io::IoError(fmt::format("{} already holds a run; continue it with --resume {} or choose "
                                    "another --out",
                                    dir.string(), dir.string()));
    if (fs::exists(dir) && !fs::is_directory(dir))
      throw io::IoError(fmt::format("--out {}: a file, not a folder; choose another --out", dir.string()));
    if (!io::is_empty_dir(dir))
      throw io::IoError(fmt::format("--out {}: the folder is not empty and holds no run of evoplast; choose an "
                                    "empty or new folder",
                                    dir.string()));
    created_here = !fs::exists(dir);
  }
  io::prepare_run_dir(dir);
  const io::RunLock lock(dir);
  struct Cleanup {  // until the first generation is recorded
    fs::path dir;
    bool created, armed;
    ~Cleanup() {
      if (!armed) return;
      std::error_code ec;
      if (created) fs::remove_all(dir, ec);
      else
        for (const char* f : {"config.toml", ".lock", "generations.jsonl", "best_rule.json"}) fs::remove(dir / f, ec);
    }
  } cleanup{dir, created_here, !resuming};
  const std::string config_text = io::to_toml(cfg);
  if (resuming && io::read_text(dir / "config.toml") != config_text)
    throw io::IoError(fmt::format("{}: config.toml was edited after the run started; resume needs "
                                  "the original",
                                  (dir / "config.toml").string()));
  if (!resuming) io::write_atomically(dir / "config.toml", config_text);
  if (resuming) {  // after the config check: these do not change the result
    if (o.data_dir) cfg.data_dir = *o.data_dir;
    if (o.backend) cfg.backend = *o.backend;
  }

  // The backend, and whether the population fits it, before the GA holds P genomes.
  use_cpu_threads(cfg.threads);
  auto backend = engine::make_backend(cfg.backend);
  engine::admit_population(*backend,
                           engine::MemoryPlan(engine::NetSpec::parse(cfg.net).adapted(28, 28, 10),
                                              std::max(cfg.batch, cfg.eval_batch), cfg.batch, true),
                           cfg.population, std::max(cfg.batch, cfg.eval_batch));
  const ga::GenomeSchema schema(engine::NetSpec::parse(cfg.net).hidden_plastic_layers());
  std::optional<ga::GeneticAlgorithm> ga;
  if (resuming) {
    json ck;
    try {
      ck = json::parse(io::read_text(dir / "checkpoint.json"));
      if (ck.at("config") != config_text)
        throw io::IoError(fmt::format("{}: written by another configuration", (dir / "checkpoint.json").string()));
      ga.emplace(ga::GeneticAlgorithm::load(schema, ck.at("ga").dump()));
      check_checkpoint(*ga, gc, cfg, ck, dir / "generations.jsonl");
      io::truncate_to(dir / "generations.jsonl", ck.at("jsonl_bytes").get<std::uint64_t>());
    } catch (const json::exception& e) {
      throw io::IoError(fmt::format("{}: damaged checkpoint ({}); start a new run", (dir / "checkpoint.json").string(),
                                    e.what()));
    } catch (const std::invalid_argument& e) {
      throw io::IoError(fmt::format("{}: does not match this run ({})", (dir / "checkpoint.json").string(), e.what()));
    }
  } else {
    std::vector<std::pair<std::string, std::vector<float>>> seeds;
    for (const auto& name : cfg.seed_rules) {
      engine::Rule r = engine::named_rule(name);
      seeds.push_back({name, schema.encode(r)});
    }
    ga.emplace(schema, gc, cfg.seed, seeds);
  }

  const auto data_dir = io::resolve_data_dir(cfg.data_dir.empty() ? std::nullopt : std::optional(cfg.data_dir));
  std::map<std::string, io::Dataset> datasets;
  for (auto& pc : pcs) {
    pc.dataset = cfg.dataset;
    pc.validation = cfg.validation;
    pc.train_per_task = cfg.train_per_task;
    pc.val_per_task = cfg.val_per_task;
    pc.test_per_task = cfg.test_per_task;
    for (auto& [name, d] : engine::load_protocol_datasets(pc, data_dir, !o.no_verify))
      if (!datasets.count(name)) datasets.emplace(name, std::move(d));
  }

  Progress progress(o.quiet);
  progress.line(fmt::format("evolve run: preset {}, {} on {} ({}), P={}, {} generations, backend {}, "
                            "run directory {}{}",
                            cfg.preset, cfg.net, cfg.protocol, cfg.dataset, cfg.population, cfg.generations,
                            backend->name(), dir.string(),
                            resuming ? fmt::format(" (resuming at generation {})", ga->generation()) : ""));
  const auto t_start = Clock::now();
  double best_fitness = ga->best_generation() >= 0 ? ga->best().fitness : -INFINITY;
  const int first_generation = ga->generation();
  for (int g = ga->generation(); g < cfg.generations; ++g) {
    const std::uint64_t gen_seed = generation_seed(cfg.seed, g);
    const auto& pop = ga->ask();
    std::vector<engine::Rule> rules;
    for (std::size_t i = 0; i < pop.size(); ++i)
      rules.push_back(schema.decode(pop[i].genome, fmt::format("g{}i{}", g, i)));
    engine::ContinualConfig cc;
    cc.net = cfg.net;
    cc.epochs = cfg.epochs;
    cc.batch = cfg.batch;
    cc.lr = float(cfg.lr);
    cc.eval_batch = cfg.eval_batch;
    cc.seed = gen_seed;
    cc.eval_every_epoch = true;
    // Every protocol of the generation, its results for every individual.
    std::vector<engine::Protocol> protos;
    for (auto pc : pcs) {
      pc.seed = gen_seed;
      protos.push_back(engine::make_protocol(pc, datasets));
    }
    int units = 0, done = 0;
    for (const auto& pr : protos) units += int(pr.phases.size()) * cfg.epochs;
    const auto t_gen = Clock::now();
    const auto on_epoch = [&](const std::string& what) {
      ++done;
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
      const double gens_done = double(g - first_generation) + double(done) / units;
      const double eta = elapsed / gens_done * (cfg.generations - first_generation - gens_done);
      // Generations are counted from 0 on the console as in the files (0 is the initial population).
      progress.status(fmt::format("gen {} of 0–{} · {} · best {} · ETA {}", g, cfg.generations - 1, what,
                                  std::isfinite(best_fitness) ? fmt::format("{:.4f}", best_fitness) : "—",
                                  duration(eta)));
    };
    std::vector<engine::ContinualResult> results;
    double train_seconds = 0, seconds = 0, images = 0;
    for (const auto& pr : protos) {
      results.push_back(engine::run_continual(*backend, pr, rules, std::vector<float>(pop.size(), 0.0f), cc, on_epoch));
      train_seconds += results.back().train_seconds;
      seconds += results.back().seconds;
      images += double(results.back().images_trained);
    }

    const auto protocol_json = [&](std::size_t q, std::size_t i, bool full) {
      const auto& r = results[q].nets[i];
      std::vector<std::string> tasks;
      for (const auto& t : protos[q].tasks) tasks.push_back(t.name);
      json j = {{"protocol", protos[q].name}, {"tasks", tasks},       {"val", metrics_json(r.val)},
                {"test", metrics_json(r.test)},  {"R_val", r.R_val}, {"R_test", r.R_test}};
      if (full) {
        j["train_loss"] = r.train_loss;
        j["epoch_val_loss"] = r.epoch_val_loss;
        j["epoch_val_acc"] = r.epoch_val_acc;
      }
      return j;
    };
    std::vector<double> fitness;
    std::uint64_t bytes = 0;
    int best_i = 0;
    for (std::size_t i = 0; i < pop.size(); ++i) {
      double f = 0;
      bool diverged = false;
      for (std::size_t q = 0; q < protos.size(); ++q) {
        const auto& r = results[q].nets[i];
        diverged |= r.diverged;
        if (cfg.fitness == "seed") {
          double best_val = INFINITY;
          for (float v : r.epoch_val_loss) best_val = std::min(best_val, double(v));
          f += engine::fitness_seed(best_val, r.train_loss.back().back(), results[q].train_seconds,
                                    {cfg.w_val_loss, cfg.w_train_loss, cfg.w_minutes});
        } else {
          f += engine::fitness_continual(r.val, {cfg.w_acc, cfg.w_bwt});
        }
      }
      diverged = diverged || !std::isfinite(f);
      f = diverged ? engine::kWorstFitness : f / double(protos.size());  // ranks last in the GA
      fitness.push_back(f);
      if (f > fitness[std::size_t(best_i)]) best_i = int(i);
      // The first protocol's fields at the top (what the report draws), every protocol below.
      json line = protocol_json(0, i, true);
      line.update(json{{"generation", g},
                       {"individual", i},
                       {"origin", pop[i].origin},
                       {"genome", pop[i].genome},
                       {"rule", json::parse(engine::rule_to_json(rules[i]))},
                       // Records hold no sentinel: a diverged individual's fitness is null, with the flag.
                       {"fitness", diverged ? json(nullptr) : json(f)},
                       {"diverged", diverged},
                       {"seed", gen_seed},
                       {"seconds", seconds / double(pop.size())}});
      for (std::size_t q = 0; q < protos.size(); ++q) line["protocols"].push_back(protocol_json(q, i, false));
      bytes = io::append_line(dir / "generations.jsonl", line.dump());
    }
    if (fitness[std::size_t(best_i)] > best_fitness) {
      best_fitness = fitness[std::size_t(best_i)];
      const std::size_t bi = std::size_t(best_i);
      json best = protocol_json(0, bi, false);
      best.update(json{{"generation", g},
                       {"individual", best_i},
                       {"fitness", best_fitness},
                       {"genome", pop[bi].genome},
                       {"rule", json::parse(engine::rule_to_json(rules[bi]))}});
      for (std::size_t q = 0; q < protos.size(); ++q) best["protocols"].push_back(protocol_json(q, bi, false));
      io::write_atomically(dir / "best_rule.json", best.dump(2) + "\n");
    }
    ga->tell(fitness);
    const json ck = {{"config", config_text}, {"ga", json::parse(ga->save())}, {"jsonl_bytes", bytes},
                     {"generations_done", g + 1}};
    io::write_atomically(dir / "checkpoint.json", ck.dump());
    cleanup.armed = false;
    double mean = 0;
    int counted = 0;
    for (double f : fitness)
      if (f > engine::kWorstFitness) mean += f, ++counted;
    progress.line(fmt::format("generation {} of 0–{}: best {:.4f} (individual {}), mean {:.4f}, {} "
                              "network-images/s, {}",
                              g, cfg.generations - 1, fitness[std::size_t(best_i)], best_i,
                              counted ? mean / counted : 0.0,
                              fmt::format("{:.0f}", double(pop.size()) * images / std::max(train_seconds, 1e-9)),
                              duration(std::chrono::duration<double>(Clock::now() - t_gen).count())));
  }
  const auto report = io::write_report(dir);
  fmt::print("best fitness {:.4f} (generation {}); best rule in {}, report in {}\n", ga->best().fitness,
             ga->best_generation(), (dir / "best_rule.json").string(), report.string());
  return 0;
}

}  // namespace

std::function<int()> add_run_mode(CLI::App& app) {
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
  cmd->add_option("--seed", o->seed, "Run seed: initial population, GA draws, generation seeds")
      ->check(kSeed);
  cmd->add_option("--data-dir", o->data_dir, "= data_dir");
  cmd->add_option("--backend", o->backend, "= backend: cpu, cuda or auto");
  cmd->add_option("-o,--out", o->out, "Run directory (default: a new runs/<preset>-seed<seed>-<time>)");
  cmd->add_option("--resume", o->resume,
                  "Continue the run in this directory with its own config (only --data-dir, --backend, --quiet "
                  "and --no-verify may be given with it)");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  cmd->add_flag("--no-verify", o->no_verify, "Skip the MD5 check of the data files");
  return [o] { return run_evolution(*o); };
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
