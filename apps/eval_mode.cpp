// `evolve eval`: runs plasticity rules and the continual-learning baselines
// side by side (one population, one shared minibatch stream) on a protocol,
// over several seeds; prints accuracy matrices and ACC/BWT/FWT/forgetting as
// mean ± std, and writes eval.json plus Avalanche-style CSVs.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/modes.hpp"
#include "apps/program.hpp"
#include "engine/backend.hpp"
#include "engine/continual.hpp"
#include "engine/errors.hpp"
#include "engine/metrics.hpp"
#include "engine/network.hpp"
#include "engine/rule.hpp"
#include "engine/train.hpp"
#include "io/config.hpp"
#include "io/dataset.hpp"
#include "io/records.hpp"
#include "io/run_dir.hpp"
#include "io/text_file.hpp"
#include "kernels/gemm_cpu.hpp"

namespace evoplast::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct EvalOptions {
  std::vector<std::string> rules = {"finetune", "ewc", "si", "hebb", "local"};
  bool joint = true;
  std::string protocol = "split-domain";
  std::string dataset = "mnist";
  int seeds = 3;
  std::uint64_t seed_base = 1000;  // evaluation seeds; evolution uses seeds below 1000
  engine::ContinualConfig config;
  float ewc_lambda = 100.0f;  // best ACC of 1e2, 1e4, 1e6 on Permuted MNIST (3 tasks, 5 000 images each)
  std::int64_t train_per_task = 0, val_per_task = 0, test_per_task = 0;
  std::int64_t validation = 10000;
  std::optional<std::string> data_dir;
  bool no_verify = false;
  std::string backend = "auto";
  std::string precision = "fp32";
  std::string out;  // empty: a new runs/eval-<protocol>-<time>
  bool quiet = false;
  bool broadcast_rule = false;  // apply a rule evolved for fewer hidden layers to more
  std::string run;              // a run directory: its net, protocol, data set and best rule
  bool heldout = false;         // --heldout: the held-out protocol set
  bool ablate = false;          // --ablate: the first rule with each of its terms off in turn
  int threads = 0;
};

// The held-out protocol set: data and task structures an evolution on the
// continual preset (Split MNIST domain-IL, Permuted MNIST) never saw.
constexpr const char* kHeldOutProtocols = "split-domain:fashion,split-class:fashion,permuted,sequence";

CLI::App* add_eval_options(CLI::App& app, EvalOptions& o) {
  auto* cmd = app.add_subcommand(
      "eval",
      "Evaluate plasticity rules and continual-learning baselines side by side on a protocol "
      "over several seeds: accuracy matrices, ACC, BWT, FWT and forgetting (mean ± std), written "
      "to eval.json and Avalanche-style CSVs.");
  cmd->add_option("--rule", o.rules,
                  fmt::format("Rules, comma-separated: named ({}), the baseline ewc (finetune + EWC), or rule "
                              "files (JSON)",
                              fmt::join(engine::named_rules(), ", ")))
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--joint,!--no-joint", o.joint,
                "Also run joint training (all tasks at once: the upper bound)")
      ->capture_default_str();
  cmd->add_option("--protocol", o.protocol,
                  "iid, split-task, split-domain, split-class, permuted (10 tasks) or permutedT "
                  "(e.g. permuted3), sequence (mnist → fashion); several comma-separated, each with its "
                  "own data set after ':' (split-class:fashion), give one folder each and a summary")
      ->capture_default_str();
  cmd->add_flag("--heldout", o.heldout,
                fmt::format("The held-out protocols ({}), 5 seeds unless --seeds is given: what the "
                            "continual preset never evolved on",
                            kHeldOutProtocols));
  cmd->add_option("--dataset", o.dataset, "Data set for iid, split and permuted: mnist or fashion")
      ->check(CLI::IsMember({"mnist", "fashion"}))
      ->capture_default_str();
  cmd->add_option("--seeds", o.seeds, "Seeds (class orders / permutations / initial weights)")
      ->capture_default_str();
  cmd->add_option("--seed-base", o.seed_base,
                  "First seed; evaluation uses 1000+ so it never repeats evolution's seeds")
      ->check(kSeed)
      ->capture_default_str();
  cmd->add_option("--net", o.config.net, "Architecture: mlp400x2 (the literature's), cnn, …")
      ->capture_default_str();
  cmd->add_option("-e,--epochs", o.config.epochs, "Epochs per task")->capture_default_str();
  cmd->add_option("-b,--batch", o.config.batch, "Minibatch size")->capture_default_str();
  cmd->add_option("--lr", o.config.lr, "Base learning rate η (each rule scales it)")
      ->capture_default_str();
  cmd->add_option("--ewc-lambda", o.ewc_lambda, "EWC penalty strength λ")->capture_default_str();
  cmd->add_option("--fisher-samples", o.config.fisher_samples, "EWC: samples per task for the Fisher (≥ 1)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--train-per-task", o.train_per_task, "Training images per task (0: all)")
      ->check(at_least(0, "0 (all) or more"))
      ->capture_default_str();
  cmd->add_option("--val-per-task", o.val_per_task, "Validation images per task (0: all)")
      ->check(at_least(0, "0 (all) or more"))
      ->capture_default_str();
  cmd->add_option("--test-per-task", o.test_per_task, "Test images per task (0: all)")
      ->check(at_least(0, "0 (all) or more"))
      ->capture_default_str();
  cmd->add_option("--validation", o.validation, "Images held out from each training split")
      ->check(at_least(1, "at least 1"))
      ->capture_default_str();
  cmd->add_option("--data-dir", o.data_dir, "Folder holding mnist/ and fashion/");
  cmd->add_flag("--no-verify", o.no_verify, "Skip the MD5 check of the data files");
  add_device_options(cmd, o.backend, o.precision);
  cmd->add_option("-o,--out", o.out, "Output folder, empty or new (default: a new runs/eval-<protocol>-<time>)");
  cmd->add_flag("-q,--quiet", o.quiet, "Only the final tables");
  cmd->add_option("--run", o.run,
                  "A run directory: evaluate its best rule on its net, first protocol and data set, beside "
                  "finetune, ewc and si (unless --rule, --net, --protocol or --dataset say otherwise)");
  cmd->add_flag("--ablate", o.ablate,
                "Also evaluate the first rule with each of its active terms switched off in turn (labelled "
                "-layer.term; k_active back to 1, the others to 0), so the paired differences show which terms matter");
  cmd->add_flag("--broadcast-rule", o.broadcast_rule,
                "Apply a rule file's last hidden-layer rule to the extra hidden layers of a deeper net");
  cmd->add_option("--threads", o.threads, "CPU threads (0: all cores)")
      ->check(at_least(0, "0 (all cores) or more"))
      ->capture_default_str();
  return cmd;
}

using Entry = io::EvaluatedRule;

struct Stat {
  double mean = 0, std = 0;
};
Stat stat(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(s.std / double(v.size() - 1)) : 0.0;
  return s;
}
std::string pct(const std::vector<double>& v) {
  const Stat s = stat(v);
  return fmt::format("{:6.2f} ± {:4.2f}", 100 * s.mean, 100 * s.std);
}

// --run DIR: what the run was evolved on, where the command line is silent.
EvalOptions from_run(EvalOptions o, const CLI::App& cmd) {
  if (o.run.empty()) return o;
  const fs::path dir = o.run;
  if (!fs::exists(dir / "best_rule.json"))
    throw io::IoError(fmt::format("--run {}: no best_rule.json there (not a run directory, or no generation "
                                  "finished)",
                                  dir.string()));
  io::RunConfig cfg;
  io::apply_toml(cfg, io::read_text(dir / "config.toml"), (dir / "config.toml").string());
  const auto given = [&](const char* name) { return cmd.get_option(name)->count() > 0; };
  if (!given("--net")) o.config.net = cfg.net;
  if (!given("--protocol") && !o.heldout) o.protocol = cfg.protocol.substr(0, cfg.protocol.find(','));
  if (!given("--dataset")) o.dataset = cfg.dataset;
  if (!given("--rule")) o.rules = {(dir / "best_rule.json").string(), "finetune", "ewc", "si"};
  return o;
}

// The rule with each of its active terms switched off in turn: a coefficient
// to 0 (k_active to 1: every unit active; a consolidation term takes its
// importance sources with it), and w_max to 0. Labelled "-hidden0.A".
std::vector<Entry> ablations(const Entry& base) {
  std::vector<Entry> out;
  const auto add = [&](const std::string& what, const std::function<void(engine::Rule&)>& off) {
    Entry e = base;
    off(e.rule);
    e.rule.name = "-" + what;
    e.label = "-" + what;
    if (!(e.rule == base.rule)) out.push_back(std::move(e));
  };
  if (base.rule.w_max != 0) add("w_max", [](engine::Rule& r) { r.w_max = 0; });
  const int layers = int(base.rule.hidden.size()) + 1;
  for (int l = 0; l < layers; ++l) {
    const std::string name = l + 1 == layers ? std::string("output") : fmt::format("hidden{}", l);
    const auto layer = [l, layers](engine::Rule& r) -> engine::LayerRule& {
      return l + 1 == layers ? r.output : r.hidden[std::size_t(l)];
    };
    const engine::LayerRule& b = l + 1 == layers ? base.rule.output : base.rule.hidden[std::size_t(l)];
    const std::pair<const char*, float engine::LayerRule::*> zeroed[] = {
        {"alpha", &engine::LayerRule::alpha},   {"A", &engine::LayerRule::A},
        {"B", &engine::LayerRule::B},           {"C", &engine::LayerRule::C},
        {"D", &engine::LayerRule::D},           {"omega", &engine::LayerRule::omega},
        {"lambda", &engine::LayerRule::lambda}, {"bcm", &engine::LayerRule::bcm},
        {"gamma_h", &engine::LayerRule::gamma_h}, {"k_normalise", &engine::LayerRule::k_normalise},
        {"label_mix", &engine::LayerRule::label_mix}, {"w_norm", &engine::LayerRule::w_norm}};
    for (const auto& [term, field] : zeroed)
      if (b.*field != 0) add(name + "." + term, [&, field = field](engine::Rule& r) { layer(r).*field = 0; });
    if (b.kappa != 0)  // consolidation off: no gating, no importance
      add(name + ".kappa", [&](engine::Rule& r) {
        auto& x = layer(r);
        x.kappa = x.s_g = x.s_h = x.rho_omega = 0;
      });
    if (b.k_active < 1) add(name + ".k_active", [&](engine::Rule& r) { layer(r).k_active = 1; });
  }
  return out;
}

// A run's best_rule.json written before the run ended ("provisional": true).
bool is_provisional(const std::string& file) {
  const json j = json::parse(io::read_text(file), nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("provisional") && j.at("provisional") == true;
}

// A label keys its rule's results (the tables, eval.json, the CSVs): two
// rules of one label would be merged. A named rule given twice is refused; a
// rule file whose label is taken (two files of one name, a run folder named
// like a baseline) becomes label-2, label-3, …, with a note.
// files: [entries] the rule file each came from ("" for a named rule).
void make_labels_unique(std::vector<Entry>& entries, const std::vector<std::string>& files, bool joint) {
  std::set<std::string> taken;
  if (joint) taken.insert("joint");
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (files[i].empty() && !taken.insert(entries[i].label).second)
      throw engine::EngineError(fmt::format("--rule: '{}' is given twice; name each rule once", entries[i].label));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (files[i].empty()) continue;
    std::string label = entries[i].label;
    for (int k = 2; taken.count(label); ++k) label = fmt::format("{}-{}", entries[i].label, k);
    if (label != entries[i].label)
      std::fprintf(stderr, "evolve: note: the rule file %s is labelled '%s' ('%s' is taken)\n", files[i].c_str(),
                   label.c_str(), entries[i].label.c_str());
    taken.insert(label);
    entries[i].label = label;
  }
}

// The rules of --rule as the population trains them, labelled as printed.
std::vector<Entry> make_entries(const EvalOptions& o) {
  std::vector<Entry> entries;
  std::vector<std::string> files;  // [entries] the rule file of each, "" for a named rule
  for (const auto& name : o.rules) {
    if (name == "ewc") {
      entries.push_back({fmt::format("ewc(λ={:g})", o.ewc_lambda), engine::named_rule("finetune"), o.ewc_lambda});
      files.push_back("");
      continue;
    }
    engine::Rule r = engine::rule_by_name_or_file(name);
    const bool from_file = r.name == "custom" || fs::exists(name);
    const int layers = engine::NetSpec::parse(o.config.net).hidden_plastic_layers();
    if (from_file && int(r.hidden.size()) != layers && !o.broadcast_rule)
      throw engine::EngineError(fmt::format(
          "{}: the rule holds {} hidden-layer rule(s) but --net {} has {} hidden plastic layer(s): it was evolved "
          "for another network; evaluate it with --net of its run (or --run DIR), or pass --broadcast-rule",
          name, r.hidden.size(), o.config.net, layers));
    // A file is labelled by its run's folder (runs/X/best_rule.json → X), else by its name.
    std::string label = r.name;
    if (from_file) {
      const fs::path p(name);
      label = p.filename() == "best_rule.json" && p.has_parent_path() ? p.parent_path().filename().string()
                                                                        : p.stem().string();
    }
    if (from_file && is_provisional(name))
      std::fprintf(stderr,
                   "evolve: note: %s is provisional: its run has not chosen its champion yet (the best rule so far)\n",
                   name.c_str());
    entries.push_back({label, r, 0.0f});
    files.push_back(from_file ? name : std::string());
  }
  make_labels_unique(entries, files, o.joint);
  if (o.ablate) {
    if (entries.empty()) throw engine::EngineError("--ablate: name the rule to ablate first in --rule");
    const Entry first = entries.front();
    for (Entry& e : ablations(first)) entries.push_back(std::move(e));
  }
  return entries;
}

// One item of --protocol: a protocol name and its data set ("split-class",
// "split-domain:fashion"; sequence always uses both).
struct ProtocolItem {
  std::string name, dataset;
  std::string label() const { return name == "sequence" ? name : name + "-" + dataset; }
};

std::vector<ProtocolItem> protocol_items(const std::string& list, const std::string& default_dataset) {
  std::vector<ProtocolItem> items;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) continue;
    const auto colon = item.find(':');
    ProtocolItem p{item.substr(0, colon), colon == std::string::npos ? default_dataset : item.substr(colon + 1)};
    if (p.dataset != "mnist" && p.dataset != "fashion")
      throw engine::EngineError(fmt::format("--protocol {}: the data set after ':' is mnist or fashion", item));
    engine::ProtocolConfig check;
    engine::parse_protocol_name(p.name, check);  // throws naming the valid ones
    items.push_back(p);
  }
  if (items.empty()) throw engine::EngineError("--protocol: name at least one protocol");
  return items;
}

// What a protocol item is trained on: the protocol, its data set, and the
// per-task sizes of the command line.
engine::ProtocolConfig protocol_config(const EvalOptions& o, const ProtocolItem& item) {
  engine::ProtocolConfig pc;
  engine::parse_protocol_name(item.name, pc);
  pc.dataset = item.dataset;
  pc.validation = o.validation;
  pc.train_per_task = o.train_per_task;
  pc.val_per_task = o.val_per_task;
  pc.test_per_task = o.test_per_task;
  return pc;
}

// Every seed's results of every rule (and of joint training) on one protocol.
struct SeedRuns {
  io::ResultsByRule results;  // [label][seed]
  std::string protocol;       // its full name
  std::vector<std::string> tasks;
  double seconds = 0;
};

// Trains the rules (one population, one shared stream) and joint training,
// seed after seed, printing progress with an ETA unless --quiet.
SeedRuns train_seeds(const EvalOptions& o, const std::vector<Entry>& entries, engine::Backend& backend,
                     engine::ProtocolConfig pc, const std::map<std::string, io::Dataset>& datasets) {
  SeedRuns out;
  int done = 0;  // epochs trained, for the ETA
  const auto t_start = std::chrono::steady_clock::now();
  for (int s = 0; s < o.seeds; ++s) {
    pc.seed = o.seed_base + std::uint64_t(s);
    const engine::Protocol proto = engine::make_protocol(pc, datasets);
    out.protocol = proto.name;
    out.tasks.clear();
    for (const auto& t : proto.tasks) out.tasks.push_back(t.name);
    engine::ContinualConfig cc = o.config;
    cc.seed = pc.seed;
    const int per_seed = (entries.empty() ? 0 : int(proto.phases.size()) * cc.epochs) + (o.joint ? cc.epochs : 0);
    const auto progress = [&](const std::string& line) {
      ++done;
      if (o.quiet) return;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double left = elapsed / done * double(per_seed * o.seeds - done);
      fmt::print("  {} · ETA {:.0f}s\n", line, left);
      std::fflush(stdout);
    };
    if (!o.quiet)
      fmt::print("seed {}: {} ({} tasks: {})\n", pc.seed, proto.name, proto.tasks.size(), fmt::join(out.tasks, " | "));
    if (!entries.empty()) {
      std::vector<engine::Rule> rules;
      std::vector<float> lambdas;
      for (const auto& e : entries) {
        rules.push_back(e.rule);
        lambdas.push_back(e.ewc_lambda);
      }
      const auto r = engine::run_continual(backend, proto, rules, lambdas, cc, progress);
      out.seconds += r.seconds;
      for (std::size_t p = 0; p < entries.size(); ++p) out.results[entries[p].label].push_back(r.nets[p]);
    }
    if (o.joint) {
      const auto r = engine::run_continual(backend, engine::make_joint(proto), {engine::named_rule("finetune")},
                                           {0.0f}, cc, progress);
      out.seconds += r.seconds;
      out.results["joint"].push_back(r.nets[0]);
    }
  }
  return out;
}

// ACC, BWT, FWT and forgetting of every rule, mean ± std over the seeds.
void print_metrics_table(const EvalOptions& o, const std::vector<Entry>& rules, const SeedRuns& runs) {
  fmt::print("\n{} — {}, {} epoch(s)/task, batch {}, {} seed(s) from {}; test accuracy %, mean ± std\n",
             runs.protocol, o.config.net, o.config.epochs, o.config.batch, o.seeds, o.seed_base);
  fmt::print("{:<20} {:>15} {:>15} {:>15} {:>15}  {}\n", "rule", "ACC", "BWT", "FWT", "forgetting", "");
  for (const auto& rule : rules) {
    std::vector<double> acc, bwt, fwt, fgt;
    int diverged = 0;
    for (const auto& r : runs.results.at(rule.label)) {
      acc.push_back(r.test.acc);
      bwt.push_back(r.test.bwt);
      fwt.push_back(r.test.fwt);
      fgt.push_back(r.test.forgetting);
      diverged += r.diverged;
    }
    const bool joint = rule.label == "joint";
    fmt::print("{:<20} {:>15} {:>15} {:>15} {:>15}  {}\n", rule.label, pct(acc), joint ? "—" : pct(bwt),
               joint ? "—" : pct(fwt), joint ? "—" : pct(fgt), diverged ? fmt::format("({} diverged)", diverged) : "");
  }
}

// eval.json's paired differences as a table, in percentage points.
// labels: the order evaluated.
void print_paired_differences(const json& pd, const json& labels, int seeds) {
  if (!pd.contains("vs")) return;
  fmt::print("\npaired differences, {} − other (percentage points; mean [95% CI] over {} seeds)\n",
             pd.at("candidate").get<std::string>(), seeds);
  const auto text = [](const json& d) {
    const double mean = 100 * d.at("mean").get<double>();
    const json& ci = d.at("ci95");
    return ci.is_array() ? fmt::format("{:+6.2f} [{:+6.2f}, {:+6.2f}]", mean, 100 * ci[0].get<double>(),
                                       100 * ci[1].get<double>())
                         : fmt::format("{:+6.2f} (one seed: no interval)", mean);
  };
  for (const auto& label_json : labels) {
    const std::string label = label_json.get<std::string>();
    if (!pd.at("vs").contains(label)) continue;  // the candidate itself
    const json& d = pd.at("vs").at(label);
    fmt::print("  vs {:<20} ACC {}{}\n", label, text(d.at("acc")),
               d.contains("forgetting") ? "   forgetting " + text(d.at("forgetting")) : std::string());
  }
}

// The mean test accuracy matrix of every rule.
void print_accuracy_matrices(const std::vector<Entry>& rules, const SeedRuns& runs) {
  for (const auto& rule : rules) {
    const auto& seeds = runs.results.at(rule.label);
    const bool joint = rule.label == "joint";
    fmt::print("\n{}: R[i][j] = test accuracy % on task j after training {} (mean of {} seeds)\n", rule.label,
               joint ? "all tasks" : "task i", seeds.size());
    for (std::size_t i = 0; i < seeds[0].R_test.size(); ++i) {
      std::string row;
      for (std::size_t j = 0; j < seeds[0].R_test[i].size(); ++j) {
        double m = 0;
        for (const auto& r : seeds) m += r.R_test[i][j];
        row += fmt::format(" {:6.2f}", 100 * m / double(seeds.size()));
      }
      fmt::print("  after {:>2}:{}\n", joint ? std::string("all") : std::to_string(i), row);
    }
  }
}

// Every entry (and joint training) on one protocol over the seeds: prints the
// tables, writes eval.json, results.csv and the per-seed CSVs into out_dir,
// and returns eval.json's object.
json evaluate_protocol(const EvalOptions& o, const std::vector<Entry>& entries, engine::Backend& backend,
                       const ProtocolItem& item, const fs::path& out_dir) {
  const engine::ProtocolConfig pc = protocol_config(o, item);
  const auto datasets = engine::load_protocol_datasets(pc, io::resolve_data_dir(o.data_dir), !o.no_verify);
  const SeedRuns runs = train_seeds(o, entries, backend, pc, datasets);

  std::vector<Entry> rules = entries;  // as eval.json lists them: joint training last
  if (o.joint) rules.push_back({"joint", engine::named_rule("finetune"), 0.0f});
  io::EvalSetup setup;
  setup.protocol = runs.protocol;
  setup.tasks = runs.tasks;
  setup.dataset = pc.kind == "sequence" ? std::string("mnist,fashion") : item.dataset;
  setup.config = o.config;
  setup.seeds = o.seeds;
  setup.seed_base = o.seed_base;
  setup.train_per_task = o.train_per_task;
  setup.val_per_task = o.val_per_task;
  setup.test_per_task = o.test_per_task;
  setup.validation = o.validation;
  setup.ewc_lambda = o.ewc_lambda;
  setup.seconds = runs.seconds;
  setup.program = {{"name", "evolve"}, {"version", program_version()}, {"commit", program_commit()}};
  setup.backend = backend.name();
  setup.precision = o.precision;
  const json j = io::eval_json(setup, rules, runs.results);

  print_metrics_table(o, rules, runs);
  print_paired_differences(j.at("paired_differences"), j.at("labels"), o.seeds);
  print_accuracy_matrices(rules, runs);

  for (const auto& [label, seeds] : runs.results)
    for (std::size_t s = 0; s < seeds.size(); ++s) {
      const fs::path d = out_dir / label / fmt::format("seed{}", o.seed_base + s);
      fs::create_directories(d);
      io::write_avalanche_csv(d / "eval_results.csv", seeds[s]);
    }
  io::write_atomically(out_dir / "eval.json", j.dump(2) + "\n");
  io::write_long_csv(out_dir / "results.csv", runs.protocol, runs.results, o.seed_base);
  fmt::print("\nwrote {0}/eval.json, {0}/results.csv (long format) and {0}/<rule>/seed<N>/eval_results.csv ({1:.0f}s)\n",
             out_dir.string(), runs.seconds);
  return j;
}

// Several protocols: one line per rule with its ACC on each, and the first
// rule's paired ACC differences; summary.json and summary.csv beside them.
void write_summary(const fs::path& out_dir, const std::vector<ProtocolItem>& items, const std::vector<json>& evals) {
  std::vector<std::string> folders;
  for (const auto& item : items) folders.push_back(item.label());
  const io::Summary summary = io::summary_record(folders, evals);
  fmt::print("\nsummary over {} protocols: test ACC % (mean over seeds); paired ACC difference of the first rule\n",
             items.size());
  for (const auto& protocol : summary.json.at("protocols")) {
    fmt::print("  {}:\n", protocol.at("protocol").get<std::string>());
    const std::string candidate = protocol.at("labels").at(0).get<std::string>();
    for (const auto& label : protocol.at("labels")) {
      const json& row = protocol.at("rules").at(label.get<std::string>());
      std::string diff;
      if (row.contains("paired_acc_difference")) {
        const json& d = row.at("paired_acc_difference");
        diff = fmt::format("   {} − this: {:+6.2f}", candidate, 100 * d.at("mean").get<double>());
        if (d.at("ci95").is_array())
          diff += fmt::format(" [{:+.2f}, {:+.2f}]", 100 * d.at("ci95")[0].get<double>(),
                              100 * d.at("ci95")[1].get<double>());
      }
      fmt::print("    {:<16} {:6.2f}{}\n", label.get<std::string>(), 100 * row.at("acc_mean").get<double>(), diff);
    }
  }
  io::write_atomically(out_dir / "summary.json", summary.json.dump(2) + "\n");
  io::write_atomically(out_dir / "summary.csv", summary.csv);
  fmt::print("wrote {0}/summary.json and {0}/summary.csv\n", out_dir.string());
}

int run_eval(const EvalOptions& o) {
  use_cpu_threads(o.threads);
  if (o.seeds < 1) throw engine::EngineError(fmt::format("--seeds {}: must be at least 1", o.seeds));
  if (!(o.ewc_lambda >= 0)) throw engine::EngineError("--ewc-lambda: must be ≥ 0");
  // Refused before a folder is made (run_continual checks again, too late for that).
  const auto& c = o.config;
  engine::validate_training(c.epochs, c.batch, c.eval_batch, c.lr, c.net);
  const std::vector<Entry> entries = make_entries(o);
  if (entries.empty() && !o.joint) throw engine::EngineError("--rule: name at least one rule");
  const auto items = protocol_items(o.protocol, o.dataset);
  auto backend = engine::make_backend(o.backend, o.precision);
  for (const auto& item : items) {  // every data set is there before hours of training start
    engine::ProtocolConfig pc;
    engine::parse_protocol_name(item.name, pc);
    pc.dataset = item.dataset;
    (void)engine::load_protocol_datasets(pc, io::resolve_data_dir(o.data_dir), false);
  }
  // A new folder per invocation (never an earlier evaluation's), or --out if
  // empty or new; left as it was found until a protocol's results are in it.
  io::OutputDir out(o.out, fmt::format("eval-{}", items.size() == 1 ? items[0].name : "heldout"));
  const fs::path& out_dir = out.path();
  try {
    if (items.size() == 1) {
      evaluate_protocol(o, entries, *backend, items[0], out_dir);
      out.keep();
      return 0;
    }
    std::vector<json> evals;
    for (const auto& item : items) {
      fmt::print("\n== {} ==\n", item.label());
      evals.push_back(evaluate_protocol(o, entries, *backend, item, out_dir / item.label()));
      out.keep();
    }
    write_summary(out_dir, items, evals);
  } catch (const engine::PopulationTooLarge& e) {
    // Fewer rules only help where one net fits.
    throw engine::EngineError(fmt::format("{}; {}", e.what(),
                                          e.fits >= 1 ? "evaluate fewer rules at once (--rule), or lower --batch"
                                                      : "lower --batch, or a smaller --net"));
  }
  return 0;
}

}  // namespace

void evaluate_heldout(const fs::path& run_dir, int seeds, const std::string& data_dir, const std::string& backend,
                      const std::string& precision, int threads, bool quiet) {
  const fs::path out = run_dir / "heldout";
  if (fs::exists(out / "summary.json")) return;  // done before the run was resumed
  std::error_code ec;
  fs::remove_all(out, ec);  // a part written before a kill: this run's own output
  io::RunConfig cfg;
  io::apply_toml(cfg, io::read_text(run_dir / "config.toml"), (run_dir / "config.toml").string());
  EvalOptions o;
  o.rules = {(run_dir / "best_rule.json").string(), "finetune", "ewc", "si"};
  o.config.net = cfg.net;
  o.config.batch = cfg.batch;
  o.config.eval_batch = cfg.eval_batch;
  o.config.lr = float(cfg.lr);
  o.config.epochs = cfg.epochs;
  o.ewc_lambda = float(cfg.ewc_lambda);
  o.protocol = kHeldOutProtocols;
  o.seeds = seeds;
  if (!data_dir.empty()) o.data_dir = data_dir;
  o.backend = backend;
  o.precision = precision;
  o.threads = threads;
  o.quiet = quiet;
  o.out = out.string();
  run_eval(o);
}

std::function<int()> add_eval_mode(CLI::App& app) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* cmd = add_eval_options(app, *options);
  return [options, cmd] {
    EvalOptions o = from_run(*options, *cmd);
    if (o.heldout) {
      if (cmd->get_option("--protocol")->count() > 0)
        throw engine::EngineError("--heldout names its own protocols: give --protocol or --heldout, not both");
      o.protocol = kHeldOutProtocols;
      if (cmd->get_option("--seeds")->count() == 0) o.seeds = 5;
    }
    return run_eval(o);
  };
}

}  // namespace evoplast::apps
