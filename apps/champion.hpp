// `evolve run`'s champion: the controls that run beside every generation,
// the best rule so far while the run goes (best_rule.json, provisional), and
// at the end the finalists re-evaluated on fresh validation streams.
#pragma once
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/evaluator.hpp"
#include "engine/rule.hpp"
#include "ga/genome.hpp"
#include "io/config.hpp"

namespace evoplast::apps {

// The control rules, their EWC strengths and labels, in config order.
struct Controls {
  std::vector<std::string> names;
  std::vector<engine::Rule> rules;
  std::vector<float> lambda;
};
Controls make_controls(const io::RunConfig& cfg);

// The nets of one evaluation: the rules (without EWC), then the controls
// beside them, on the same streams.
struct Nets {
  std::vector<engine::Rule> rules;
  std::vector<float> ewc_lambda;  // [rules]
};
Nets beside_controls(std::vector<engine::Rule> rules, const Controls& controls);

// best_rule.json during the run (DIR/best_rule.json, "provisional": true):
// the genome of DIR/generations.jsonl with the best mean over every
// evaluation so far; nothing while every genome diverged.
void write_provisional_best(const std::filesystem::path& dir);

// The champion: the finalists (the best means of DIR/generations.jsonl)
// re-evaluated beside the controls on fresh validation streams; the best
// mean wins. Writes DIR/best_rule.json (final) and returns it. A finished
// selection (best_rule.json no longer provisional) is read back instead of
// redone. status is told of each epoch of the re-evaluation.
nlohmann::json select_champion(const Evaluator& evaluator, const ga::GenomeSchema& schema, const Controls& controls,
                               const std::filesystem::path& dir, const io::RunConfig& cfg,
                               const std::function<void(const std::string&)>& status);

}  // namespace evoplast::apps
