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

}  // namespace evoplast::io
