// `evolve eval`: runs plasticity rules and the continual-learning baselines
// side by side (one population, one shared minibatch stream) on a protocol,
// over several seeds; prints accuracy matrices and ACC/BWT/FWT/forgetting as
// mean ± std, and writes eval.json plus Avalanche-style CSVs.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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
#include "io/config.hpp"
#include "io/dataset.hpp"
#include "io/records.hpp"
#include "io/run_dir.hpp"
#include "kernels/gemm_cpu.hpp"

namespace evoplast::apps {
namespace {

namespace fs = std::filesystem;
using engine::Matrix;
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
      ->capture_default_str();
  cmd->add_option("--val-per-task", o.val_per_task, "Validation images per task (0: all)")
      ->capture_default_str();
  cmd->add_option("--test-per-task", o.test_per_task, "Test images per task (0: all)")
      ->capture_default_str();
  cmd->add_option("--validation", o.validation, "Images held out from each training split")
      ->capture_default_str();
  cmd->add_option("--data-dir", o.data_dir, "Folder holding mnist/ and fashion/");
  cmd->add_flag("--no-verify", o.no_verify, "Skip the MD5 check of the data files");
  cmd->add_option("--backend", o.backend, "cpu, cuda or auto")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--out", o.out, "Output folder, empty or new (default: a new runs/eval-<protocol>-<time>)");
  cmd->add_flag("-q,--quiet", o.quiet, "Only the final tables");
  cmd->add_option("--run", o.run,
                  "A run directory: evaluate its best rule on its net, first protocol and data set, beside "
                  "finetune, ewc and si (unless --rule, --net, --protocol or --dataset say otherwise)");
  cmd->add_flag("--ablate", o.ablate,
                "Also evaluate the first rule with each of its active terms switched off in turn (labelled "
                "-layer.term; k_active back to 1, the others to 0), so the paired differences show which terms matter");
  cmd->add_flag("--broadcast-rule", o.broadcast_rule,
                "Apply a rule file's last hidden-layer rule to the extra hidden layers of a deeper net");
  cmd->add_option("--threads", o.threads, "CPU threads (0: all cores)")->capture_default_str();
  return cmd;
}

struct Entry {
  std::string label;  // as printed: "ewc(λ=100)"
  engine::Rule rule;
  float lambda = 0;
};

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

json matrix_json(const Matrix& m) { return json(m); }

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

// The rules of --rule as the population trains them, labelled as printed.
std::vector<Entry> make_entries(const EvalOptions& o) {
  std::vector<Entry> entries;
  for (const auto& name : o.rules) {
    if (name == "ewc") {
      entries.push_back({fmt::format("ewc(λ={:g})", o.ewc_lambda), engine::named_rule("finetune"), o.ewc_lambda});
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
    entries.push_back({label, r, 0.0f});
  }
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

// The first rule against every other, seed by seed: the mean paired difference
// in ACC and in forgetting with its 95% interval (Student's t over seeds).
json paired_differences(const std::vector<std::string>& labels,
                        const std::map<std::string, std::vector<engine::NetResult>>& results, bool print) {
  json out = json::object();
  if (labels.size() < 2) return out;
  const std::string& first = labels.front();
  const auto& a = results.at(first);
  out["candidate"] = first;
  out["metric"] = "test ACC and forgetting, candidate − other, per seed; mean and Student-t 95% interval";
  if (print)
    fmt::print("\npaired differences, {} − other (percentage points; mean [95% CI] over {} seeds)\n", first, a.size());
  for (std::size_t k = 1; k < labels.size(); ++k) {
    const auto& b = results.at(labels[k]);
    std::vector<double> dacc, dfgt;
    for (std::size_t s = 0; s < a.size() && s < b.size(); ++s) {
      dacc.push_back(a[s].test.acc - b[s].test.acc);
      dfgt.push_back(a[s].test.forgetting - b[s].test.forgetting);
    }
    const auto acc = engine::mean_ci95(dacc), fgt = engine::mean_ci95(dfgt);
    const auto ci = [](const engine::Interval& iv) {
      return std::isfinite(iv.half_width) ? json::array({iv.lo(), iv.hi()}) : json(nullptr);
    };
    const bool joint = labels[k] == "joint";
    out["vs"][labels[k]] = {{"acc", {{"mean", acc.mean}, {"ci95", ci(acc)}, {"values", dacc}}}};
    if (!joint) out["vs"][labels[k]]["forgetting"] = {{"mean", fgt.mean}, {"ci95", ci(fgt)}, {"values", dfgt}};
    if (print) {
      const auto text = [](const engine::Interval& iv) {
        return std::isfinite(iv.half_width)
                   ? fmt::format("{:+6.2f} [{:+6.2f}, {:+6.2f}]", 100 * iv.mean, 100 * iv.lo(), 100 * iv.hi())
                   : fmt::format("{:+6.2f} (one seed: no interval)", 100 * iv.mean);
      };
      fmt::print("  vs {:<20} ACC {}{}\n", labels[k], text(acc), joint ? "" : "   forgetting " + text(fgt));
    }
  }
  return out;
}

// Every entry (and joint training) on one protocol over the seeds: prints the
// tables, writes eval.json, results.csv and the per-seed CSVs into out_dir,
// and returns eval.json's object.
json evaluate_protocol(const EvalOptions& o, const std::vector<Entry>& entries, engine::Backend& backend,
                       const ProtocolItem& item, const fs::path& out_dir) {
  engine::ProtocolConfig pc;
  engine::parse_protocol_name(item.name, pc);
  pc.dataset = item.dataset;
  pc.validation = o.validation;
  pc.train_per_task = o.train_per_task;
  pc.val_per_task = o.val_per_task;
  pc.test_per_task = o.test_per_task;
  const auto datasets = engine::load_protocol_datasets(pc, io::resolve_data_dir(o.data_dir), !o.no_verify);

  // results[label][seed]
  std::vector<std::string> labels;
  for (const auto& e : entries) labels.push_back(e.label);
  if (o.joint) labels.push_back("joint");
  std::map<std::string, std::vector<engine::NetResult>> results;
  std::string protocol_name;
  std::vector<std::string> task_names;
  double seconds = 0;
  int done = 0;  // epochs trained, for the ETA
  const auto t_start = std::chrono::steady_clock::now();
  for (int s = 0; s < o.seeds; ++s) {
    pc.seed = o.seed_base + std::uint64_t(s);
    const engine::Protocol proto = engine::make_protocol(pc, datasets);
    protocol_name = proto.name;
    task_names.clear();
    for (const auto& t : proto.tasks) task_names.push_back(t.name);
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
      fmt::print("seed {}: {} ({} tasks: {})\n", pc.seed, proto.name, proto.tasks.size(), fmt::join(task_names, " | "));
    if (!entries.empty()) {
      std::vector<engine::Rule> rules;
      std::vector<float> lambdas;
      for (const auto& e : entries) {
        rules.push_back(e.rule);
        lambdas.push_back(e.lambda);
      }
      const auto r = engine::run_continual(backend, proto, rules, lambdas, cc, progress);
      seconds += r.seconds;
      for (std::size_t p = 0; p < entries.size(); ++p) results[entries[p].label].push_back(r.nets[p]);
    }
    if (o.joint) {
      const auto r = engine::run_continual(backend, engine::make_joint(proto), {engine::named_rule("finetune")},
                                           {0.0f}, cc, progress);
      seconds += r.seconds;
      results["joint"].push_back(r.nets[0]);
    }
  }

  // Tables: test accuracy (mean ± std over seeds).
  fmt::print("\n{} — {}, {} epoch(s)/task, batch {}, {} seed(s) from {}; test accuracy %, mean ± std\n",
             protocol_name, o.config.net, o.config.epochs, o.config.batch, o.seeds, o.seed_base);
  fmt::print("{:<20} {:>15} {:>15} {:>15} {:>15}  {}\n", "rule", "ACC", "BWT", "FWT", "forgetting", "");
  json j;
  j["protocol"] = protocol_name;
  j["tasks"] = task_names;
  j["net"] = o.config.net;
  j["epochs_per_task"] = o.config.epochs;
  j["batch"] = o.config.batch;
  j["lr"] = engine::exact_decimal(o.config.lr);
  j["seeds"] = o.seeds;
  j["seed_base"] = o.seed_base;
  j["train_per_task"] = o.train_per_task;
  j["val_per_task"] = o.val_per_task;
  j["test_per_task"] = o.test_per_task;
  j["seconds"] = seconds;
  // What a reader needs to reproduce or interpret the numbers without this program's source.
  j["program"] = {{"name", "evolve"}, {"version", program_version()}, {"commit", program_commit()}};
  j["dataset"] = pc.kind == "sequence" ? std::string("mnist,fashion") : item.dataset;
  j["validation"] = o.validation;
  j["eval_batch"] = o.config.eval_batch;
  j["optimizer"] = {{"adadelta_rho", engine::exact_decimal(o.config.rho)},
                    {"adadelta_eps", engine::exact_decimal(o.config.eps)}};
  j["ewc"] = {{"lambda", engine::exact_decimal(o.ewc_lambda)}, {"fisher_samples", o.config.fisher_samples},
              {"form", "online diagonal empirical Fisher, applied as a proximal step"}};
  j["metrics"] = {{"acc", "mean_j R[T-1][j] (test)"},
                  {"bwt", "mean_{j<T-1} (R[T-1][j] - R[j][j])"},
                  {"fwt", "mean_{j>=1} (R[j-1][j] - b[j]), b: the untrained net"},
                  {"forgetting", "Chaudhry et al. 2018: mean_{j<T-1} (max_{j<=l<T-1} R[l][j] - R[T-1][j])"}};
  for (const auto& label : labels) {
    const auto& runs = results[label];
    std::vector<double> acc, bwt, fwt, fgt;
    int diverged = 0;
    for (const auto& r : runs) {
      acc.push_back(r.test.acc);
      bwt.push_back(r.test.bwt);
      fwt.push_back(r.test.fwt);
      fgt.push_back(r.test.forgetting);
      diverged += r.diverged;
    }
    const bool joint = label == "joint";
    fmt::print("{:<20} {:>15} {:>15} {:>15} {:>15}  {}\n", label, pct(acc), joint ? "—" : pct(bwt),
               joint ? "—" : pct(fwt), joint ? "—" : pct(fgt), diverged ? fmt::format("({} diverged)", diverged) : "");
    json jr;
    jr["acc"] = acc;
    jr["bwt"] = bwt;
    jr["fwt"] = fwt;
    jr["forgetting"] = fgt;
    jr["diverged"] = diverged;
    for (std::size_t s = 0; s < runs.size(); ++s) {
      const auto& r = runs[s];
      json js;
      js["seed"] = o.seed_base + s;
      js["R_test"] = matrix_json(r.R_test);
      js["R_val"] = matrix_json(r.R_val);
      js["loss_test"] = matrix_json(r.L_test);
      js["initial_acc_test"] = r.b_test;
      js["train_loss"] = r.train_loss;
      js["val"] = {{"acc", r.val.acc}, {"bwt", r.val.bwt}, {"fwt", r.val.fwt}, {"forgetting", r.val.forgetting}};
      js["fitness_continual_val"] = r.fitness;
      js["diverged"] = r.diverged;
      jr["runs"].push_back(js);
      const fs::path d = out_dir / label / fmt::format("seed{}", o.seed_base + s);
      fs::create_directories(d);
      io::write_avalanche_csv(d / "eval_results.csv", r);
    }
    // The rule's definition (joint training is fine-tuning on every task at once).
    for (const auto& e : entries)
      if (e.label == label) {
        jr["definition"] = json::parse(engine::rule_to_json(e.rule));
        jr["ewc_lambda"] = engine::exact_decimal(e.lambda);
      }
    if (label == "joint") jr["definition"] = json::parse(engine::rule_to_json(engine::named_rule("finetune")));
    j["rules"][label] = jr;
  }
  j["labels"] = labels;  // the order given (the first is the candidate of the paired differences)
  j["paired_differences"] = paired_differences(labels, results, true);
  // The mean test accuracy matrix of every rule.
  for (const auto& label : labels) {
    const auto& runs = results[label];
    fmt::print("\n{}: R[i][j] = test accuracy % on task j after training {} (mean of {} seeds)\n", label,
               label == "joint" ? "all tasks" : "task i", runs.size());
    for (std::size_t i = 0; i < runs[0].R_test.size(); ++i) {
      std::string row;
      for (std::size_t jj = 0; jj < runs[0].R_test[i].size(); ++jj) {
        double m = 0;
        for (const auto& r : runs) m += r.R_test[i][jj];
        row += fmt::format(" {:6.2f}", 100 * m / double(runs.size()));
      }
      fmt::print("  after {:>2}:{}\n", label == "joint" ? std::string("all") : std::to_string(i), row);
    }
  }
  io::write_atomically(out_dir / "eval.json", j.dump(2) + "\n");
  io::write_long_csv(out_dir / "results.csv", protocol_name, results, o.seed_base);
  fmt::print("\nwrote {0}/eval.json, {0}/results.csv (long format) and {0}/<rule>/seed<N>/eval_results.csv ({1:.0f}s)\n",
             out_dir.string(), seconds);
  return j;
}

// Several protocols: one line per rule with its ACC on each, and the first
// rule's paired ACC differences; summary.json and summary.csv beside them.
void write_summary(const fs::path& out_dir, const std::vector<ProtocolItem>& items, const std::vector<json>& evals) {
  json summary = {{"protocols", json::array()}};
  std::string csv = "protocol,rule,acc_mean,acc_std,forgetting_mean,paired_acc_diff_mean,paired_acc_diff_lo,"
                    "paired_acc_diff_hi\n";
  fmt::print("\nsummary over {} protocols: test ACC % (mean over seeds); paired ACC difference of the first rule\n",
             items.size());
  for (std::size_t q = 0; q < items.size(); ++q) {
    const json& e = evals[q];
    json entry = {{"protocol", items[q].label()},
                  {"folder", items[q].label()},
                  {"labels", e.at("labels")},  // the order evaluated: the candidate first
                  {"rules", json::object()}};
    fmt::print("  {}:\n", items[q].label());
    for (const auto& label : e.at("labels")) {
      const auto it = e.at("rules").find(label.get<std::string>());
      const auto acc = it.value().at("acc").get<std::vector<double>>();
      const auto fgt = it.value().at("forgetting").get<std::vector<double>>();
      const auto a = engine::mean_ci95(acc), f = engine::mean_ci95(fgt);
      json row = {{"acc_mean", a.mean}, {"acc_std", a.sd}, {"forgetting_mean", f.mean}};
      std::string diff = ",,";
      const json& pd = e.at("paired_differences");
      if (pd.contains("vs") && pd["vs"].contains(it.key())) {
        row["paired_acc_difference"] = pd["vs"][it.key()]["acc"];
        const json& d = pd["vs"][it.key()]["acc"];
        diff = d["ci95"].is_array() ? fmt::format("{:.6g},{:.6g},{:.6g}", d["mean"].get<double>(),
                                                  d["ci95"][0].get<double>(), d["ci95"][1].get<double>())
                                    : fmt::format("{:.6g},,", d["mean"].get<double>());
        fmt::print("    {:<16} {:6.2f}   {} − this: {:+6.2f}{}\n", it.key(), 100 * a.mean, pd["candidate"].get<std::string>(),
                   100 * d["mean"].get<double>(),
                   d["ci95"].is_array() ? fmt::format(" [{:+.2f}, {:+.2f}]", 100 * d["ci95"][0].get<double>(),
                                                      100 * d["ci95"][1].get<double>())
                                        : std::string());
      } else {
        fmt::print("    {:<16} {:6.2f}\n", it.key(), 100 * a.mean);
      }
      entry["rules"][it.key()] = row;
      csv += fmt::format("{},{},{:.6g},{:.6g},{:.6g},{}\n", io::csv_field(items[q].label()), io::csv_field(it.key()), a.mean,
                         a.sd, f.mean, diff);
    }
    summary["protocols"].push_back(entry);
  }
  io::write_atomically(out_dir / "summary.json", summary.dump(2) + "\n");
  io::write_atomically(out_dir / "summary.csv", csv);
  fmt::print("wrote {0}/summary.json and {0}/summary.csv\n", out_dir.string());
}

int run_eval(const EvalOptions& o) {
  use_cpu_threads(o.threads);
  if (o.seeds < 1) throw engine::EngineError(fmt::format("--seeds {}: must be at least 1", o.seeds));
  if (!(o.ewc_lambda >= 0)) throw engine::EngineError("--ewc-lambda: must be ≥ 0");
  const std::vector<Entry> entries = make_entries(o);
  if (entries.empty() && !o.joint) throw engine::EngineError("--rule: name at least one rule");
  const auto items = protocol_items(o.protocol, o.dataset);
  auto backend = engine::make_backend(o.backend);
  for (const auto& item : items) {  // every data set is there before hours of training start
    engine::ProtocolConfig pc;
    engine::parse_protocol_name(item.name, pc);
    pc.dataset = item.dataset;
    (void)engine::load_protocol_datasets(pc, io::resolve_data_dir(o.data_dir), false);
  }
  // A new folder per invocation (never an earlier evaluation's), or --out if empty or new.
  fs::path out_dir = o.out;
  if (o.out.empty())
    out_dir = io::create_stamped_run_dir(fmt::format("eval-{}", items.size() == 1 ? items[0].name : "heldout"));
  else io::prepare_empty_out_dir(out_dir);
  try {
    if (items.size() == 1) {
      evaluate_protocol(o, entries, *backend, items[0], out_dir);
      return 0;
    }
    std::vector<json> evals;
    for (const auto& item : items) {
      fmt::print("\n== {} ==\n", item.label());
      evals.push_back(evaluate_protocol(o, entries, *backend, item, out_dir / item.label()));
    }
    write_summary(out_dir, items, evals);
  } catch (const engine::PopulationTooLarge& e) {
    throw engine::EngineError(fmt::format("{}; evaluate fewer rules at once (--rule), or lower --batch, or a "
                                          "smaller --net",
                                          e.what()));
  }
  return 0;
}

}  // namespace

void evaluate_heldout(const fs::path& run_dir, int seeds, const std::string& data_dir, const std::string& backend,
                      int threads, bool quiet) {
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
