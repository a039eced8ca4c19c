// The layouts of the records evolve writes, in one place: the JSON of a net's
// results on a protocol (generations.jsonl, best_rule.json), the messages
// between MPI ranks, and the CSV tables of an evaluation (the long table and
// Avalanche's per-experience layout). Readers (the report, tests/records_load.sh,
// pandas) depend on these names; change them here or nowhere.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/continual.hpp"
#include "engine/metrics.hpp"
#include "engine/protocol.hpp"
#include "engine/rule.hpp"

namespace evoplast::io {

// {"acc", "bwt", "fwt", "forgetting"}
nlohmann::json metrics_json(const engine::ContinualMetrics& m);

// A net's results on one protocol of one stream: protocol, seed, tasks,
// val/test metrics, R_val/R_test and, with_curves, the training loss and
// validation curves.
nlohmann::json protocol_record(const engine::Protocol& protocol, std::uint64_t seed, const engine::NetResult& r,
                               bool with_curves);

// Genes as their shortest decimals (they read back as the same floats).
nlohmann::json genome_json(const std::vector<float>& genome);

// [lo, hi] of a 95% interval, or null where it is undefined (one value).
nlohmann::json interval_json(const engine::Interval& iv);

// A net's results as a message between ranks and back: every field, bit for
// bit once encoded as CBOR (NaN and infinity included, which JSON text cannot hold).
nlohmann::json net_result_json(const engine::NetResult& r);
engine::NetResult net_result_from_json(const nlohmann::json& j);

// A CSV field, quoted where it holds a comma, a quote or a line break (RFC 4180).
std::string csv_field(const std::string& v);

// One tidy long-format table of an evaluation (pandas.read_csv or R's read.csv
// in one call): rule, seed, protocol, training_exp, eval_exp, accuracy, loss,
// forgetting, diverged — a row per rule, seed, training phase and task.
// results: per rule label, one NetResult per seed (seeds seed_base, seed_base + 1, …).
void write_long_csv(const std::filesystem::path& path, const std::string& protocol,
                    const std::map<std::string, std::vector<engine::NetResult>>& results, std::uint64_t seed_base);

// Avalanche's CSVLogger layout: eval_exp, training_exp, eval_accuracy,
// eval_loss, forgetting — a row per (evaluated, training) experience; the
// forgetting column is engine::forgetting (Chaudhry et al.), the definition
// eval.json's forgetting averages.
void write_avalanche_csv(const std::filesystem::path& path, const engine::NetResult& r);

// How an evaluation ran: what eval.json states so that a reader can reproduce
// or interpret its numbers without this program's source.
struct EvalSetup {
  std::string protocol;            // the protocol's full name ("Split MNIST (domain-IL)")
  std::vector<std::string> tasks;  // (tasks) their names
  std::string dataset;             // mnist | fashion | mnist,fashion
  engine::ContinualConfig config;  // net, epochs per task, batch, η, Adadelta, evaluation batch, Fisher samples
  int seeds = 0;
  std::uint64_t seed_base = 0;     // seeds seed_base, seed_base + 1, …
  std::int64_t train_per_task = 0, val_per_task = 0, test_per_task = 0, validation = 0;  // 0: all
  float ewc_lambda = 0;
  double seconds = 0;              // training and evaluation, all seeds
  nlohmann::json program;          // {"name", "version", "commit"}
  std::string backend;             // the backend's name: device, GEMM and convolution
  std::string precision;           // engine/precision.hpp: fp32, tf32, tf32x3 or bf16
};

// A rule as evaluated: its label in the tables, its definition and, for EWC, λ.
struct EvaluatedRule {
  std::string label;  // "ewc(λ=100)", "hebb", a run's folder name, "joint"
  engine::Rule rule;
  float ewc_lambda = 0;
};

// Per rule label, one result per seed (seed_base, seed_base + 1, …).
using ResultsByRule = std::map<std::string, std::vector<engine::NetResult>>;

// The first rule against every other, seed by seed: the mean paired
// difference in test ACC and forgetting with its Student-t 95% interval
// ({"candidate", "metric", "vs": {label: {"acc": …, "forgetting": …}}};
// no forgetting against joint training, which has one phase).
nlohmann::json paired_differences_json(const std::vector<std::string>& labels, const ResultsByRule& results);

// eval.json of one protocol: the setup, every rule's metrics per seed, its
// definition, its accuracy matrices, and the paired differences. rules: in the
// order evaluated, the candidate first (joint training, when run, last).
nlohmann::json eval_json(const EvalSetup& setup, const std::vector<EvaluatedRule>& rules,
                         const ResultsByRule& results);

// summary.json and summary.csv of an evaluation over several protocols:
// per protocol and rule, ACC mean and std, mean forgetting and the
// candidate's paired ACC difference. folders[q] holds evals[q] (eval.json's object).
struct Summary {
  nlohmann::json json;
  std::string csv;
};
Summary summary_record(const std::vector<std::string>& folders, const std::vector<nlohmann::json>& evals);

}  // namespace evoplast::io
