// The champion of `evolve run` (champion.hpp): its candidates are read back
// from generations.jsonl, so a resumed run selects as an uninterrupted one.
#include "apps/champion.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "apps/program.hpp"
#include "engine/continual.hpp"
#include "engine/errors.hpp"
#include "io/records.hpp"
#include "io/run_dir.hpp"
#include "io/text_file.hpp"

namespace evoplast::apps {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A distinct genome of the population, over every generation it was evaluated in.
struct Candidate {
  std::vector<float> genome;
  double mean = 0;
  int evaluations = 0;
  bool diverged = false;
  json record;  // its first record (generation, individual, origin, rule, results)
};

// Every distinct genome of generations.jsonl, best mean first (a genome that
// diverged in any evaluation is left out: it ranks last).
std::vector<Candidate> candidates_from_records(const fs::path& jsonl) {
  std::map<std::vector<float>, Candidate> by_genome;
  std::vector<std::vector<float>> order;
  std::istringstream in(io::read_text(jsonl));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json r = json::parse(line);
    if (r.value("role", "individual") != "individual") continue;
    auto genome = r.at("genome").get<std::vector<float>>();
    auto [it, fresh] = by_genome.try_emplace(genome);
    Candidate& c = it->second;
    if (fresh) {
      c.genome = genome;
      c.record = r;
      order.push_back(genome);
    }
    if (r.at("diverged").get<bool>()) c.diverged = true;
    else c.mean += r.at("fitness").get<double>();
    ++c.evaluations;
  }
  std::vector<Candidate> out;
  for (const auto& g : order) {
    Candidate c = by_genome.at(g);
    if (c.diverged) continue;
    c.mean /= double(c.evaluations);
    out.push_back(std::move(c));
  }
  std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.mean > b.mean; });
  return out;
}

// Where a genome came from: a named seed rule, a random draw, or evolution.
json origin_json(const Candidate& c) {
  const std::string text = c.record.value("origin", "");
  const std::string kind = text.starts_with("named:") ? "named" : text == "random" ? "random" : "evolved";
  json o = {{"kind", kind}, {"text", text}, {"generation", c.record.at("generation")},
            {"individual", c.record.at("individual")}};
  if (kind == "named") o["name"] = text.substr(6);
  return o;
}

}  // namespace

Controls make_controls(const io::RunConfig& cfg) {
  Controls c;
  for (const auto& name : cfg.controls) {
    const bool ewc = name == "ewc";
    c.names.push_back(name);
    c.rules.push_back(ewc ? engine::named_rule("finetune") : engine::rule_by_name_or_file(name));
    c.rules.back().name = name;
    c.lambda.push_back(ewc ? float(cfg.ewc_lambda) : 0.0f);
  }
  return c;
}

Nets beside_controls(std::vector<engine::Rule> rules, const Controls& controls) {
  Nets nets{std::move(rules), {}};
  nets.ewc_lambda.assign(nets.rules.size(), 0.0f);
  nets.rules.insert(nets.rules.end(), controls.rules.begin(), controls.rules.end());
  nets.ewc_lambda.insert(nets.ewc_lambda.end(), controls.lambda.begin(), controls.lambda.end());
  return nets;
}

void write_provisional_best(const fs::path& dir) {
  const auto candidates = candidates_from_records(dir / "generations.jsonl");
  if (candidates.empty()) return;
  json best = candidates.front().record;
  best.update(json{{"provisional", true},
                   {"fitness", candidates.front().mean},
                   {"evaluations", candidates.front().evaluations},
                   {"origin", origin_json(candidates.front())}});
  io::write_atomically(dir / "best_rule.json", best.dump(2) + "\n");
}

json select_champion(const Evaluator& evaluator, const ga::GenomeSchema& schema, const Controls& controls,
                     const fs::path& dir, const io::RunConfig& cfg,
                     const std::function<void(const std::string&)>& status) {
  if (fs::exists(dir / "best_rule.json")) {
    json done = json::parse(io::read_text(dir / "best_rule.json"));
    if (done.value("provisional", true) == false) return done;
  }
  auto candidates = candidates_from_records(dir / "generations.jsonl");
  if (candidates.empty())
    throw engine::EngineError("every individual of every generation diverged: there is no champion; "
                              "check the rule ranges or the learning rate (train.lr)");
  if (int(candidates.size()) > cfg.finalists) candidates.resize(std::size_t(cfg.finalists));
  const auto seeds = final_stream_seeds(cfg);
  std::vector<engine::Rule> finalist_rules;
  for (std::size_t k = 0; k < candidates.size(); ++k)
    finalist_rules.push_back(schema.decode(candidates[k].genome, fmt::format("finalist{}", k)));
  const Nets nets = beside_controls(std::move(finalist_rules), controls);
  int done = 0;
  const int units = evaluator.epochs_per_stream() * int(seeds.size());
  const auto runs = evaluator.run(nets.rules, nets.ewc_lambda, seeds, [&](const std::string& what) {
    status(fmt::format("champion: {} finalists beside {} controls on {} fresh streams · {} · {}/{}",
                                candidates.size(), controls.names.size(), seeds.size(), what, ++done, units));
  });
  json finalists = json::array();
  int champion = -1;
  double best = -INFINITY;
  for (std::size_t k = 0; k < candidates.size(); ++k) {
    const StreamFitness f = stream_fitness(runs, k, cfg);
    const auto iv = engine::mean_ci95(f.values);
    finalists.push_back({{"origin", origin_json(candidates[k])},
                         {"fitness_during_evolution", candidates[k].mean},
                         {"evaluations_during_evolution", candidates[k].evaluations},
                         {"fitness", f.diverged ? json(nullptr) : json(f.mean)},
                         {"fitness_ci95", f.diverged ? json(nullptr) : io::interval_json(iv)},
                         {"fitness_streams", f.values},
                         {"diverged", f.diverged}});
    if (!f.diverged && f.mean > best) best = f.mean, champion = int(k);
  }
  if (champion < 0)
    throw engine::EngineError("every finalist diverged on the fresh validation streams: there is no champion");
  json control_json = json::object();
  for (std::size_t c = 0; c < controls.names.size(); ++c) {
    const StreamFitness f = stream_fitness(runs, candidates.size() + c, cfg);
    // Its first stream's first protocol too (the same as the champion's top-level fields), for the report's curves.
    json cj = record(runs, candidates.size() + c, false);
    cj.erase("protocols");
    cj.update(json{{"fitness", f.diverged ? json(nullptr) : json(f.mean)},
                   {"fitness_ci95", f.diverged ? json(nullptr) : io::interval_json(engine::mean_ci95(f.values))},
                   {"fitness_streams", f.values},
                   {"diverged", f.diverged}});
    control_json[controls.names[c]] = cj;
  }
  const Candidate& win = candidates[std::size_t(champion)];
  const StreamFitness f = stream_fitness(runs, std::size_t(champion), cfg);
  json best_json = record(runs, std::size_t(champion), false);
  engine::Rule rule = schema.decode(win.genome, "champion");
  best_json.update(json{{"provisional", false},
                        {"generation", win.record.at("generation")},
                        {"individual", win.record.at("individual")},
                        {"origin", origin_json(win)},
                        {"genome", io::genome_json(win.genome)},
                        {"rule", json::parse(engine::rule_to_json(rule))},
                        {"fitness", f.mean},
                        {"fitness_ci95", io::interval_json(engine::mean_ci95(f.values))},
                        {"fitness_streams", f.values},
                        {"selection", {{"finalists", finalists},
                                       {"streams", seeds},
                                       {"data", "validation"},
                                       {"rule", "the best mean fitness over the fresh streams"}}},
                        {"controls", control_json},
                        {"program",
                         {{"name", "evolve"}, {"version", program_version()}, {"commit", program_commit()}}}});
  io::write_atomically(dir / "best_rule.json", best_json.dump(2) + "\n");
  return best_json;
}

}  // namespace evoplast::apps
