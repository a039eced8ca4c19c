// The run directory of `evolve run` (run_directory.hpp).
#include "apps/run_directory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>
#include <vector>

#include "engine/rule.hpp"
#include "io/records.hpp"
#include "io/text_file.hpp"

namespace evoplast::apps {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A count of the checkpoint (a JSON integer ≥ 0); anything else is named as
// the file holds it, never read as another number (−5 as 2^64 − 5).
std::uint64_t count_field(const json& ck, const char* key) {
  const json& v = ck.at(key);
  if (!v.is_number_unsigned()) throw std::invalid_argument(fmt::format("{} {} is not a count", key, v.dump()));
  return v.get<std::uint64_t>();
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
  if (const std::uint64_t done = count_field(ck, "generations_done"); done != std::uint64_t(g))
    bad(fmt::format("generations_done {} disagrees with the GA's generation {}", done, g));
  const std::uint64_t bytes = count_field(ck, "jsonl_bytes");
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
  const std::uint64_t per_generation = std::uint64_t(gc.population) + cfg.controls.size();
  const std::uint64_t want = std::uint64_t(g) * per_generation;
  if (lines != want)
    bad(fmt::format("jsonl_bytes {} keeps {} records of generations.jsonl, but {} generations of {} "
                    "(individuals and controls) make {}",
                    bytes, lines, g, per_generation, want));
}

}  // namespace

RunDirectory::RunDirectory(const std::string& resume, const std::string& out, const io::RunConfig& cfg)
    : resuming_(!resume.empty()) {
  if (resuming_) {
    dir_ = resume;
    io::prepare_run_dir(dir_);
  } else {
    // Said more precisely than io::OutputDir would: a run there is resumed, not overwritten.
    if (!out.empty()) {
      const fs::path wanted = out;
      if (fs::exists(wanted / "checkpoint.json"))
        throw io::IoError(fmt::format("{} already holds a run; continue it with --resume {} or choose "
                                      "another --out",
                                      out, out));
      if (fs::is_directory(wanted) && !io::is_empty_dir(wanted))
        throw io::IoError(fmt::format("--out {}: the folder is not empty and holds no run of evoplast; choose "
                                      "an empty or new folder",
                                      out));
    }
    output_.emplace(out, fmt::format("{}-seed{}", cfg.preset, cfg.seed));
    dir_ = output_->path();
  }
  lock_.emplace(dir_);
}

void RunDirectory::keep() {
  if (output_) output_->keep();
}

void RunDirectory::write_or_check_config(const std::string& config_text) const {
  const fs::path file = dir_ / "config.toml";
  if (!resuming_) io::write_atomically(file, config_text);
  else if (io::read_text(file) != config_text)
    throw io::IoError(fmt::format("{}: config.toml was edited after the run started; resume needs the original",
                                  file.string()));
}

void RunDirectory::write_checkpoint(const std::string& config_text, const ga::GeneticAlgorithm& ga,
                                    std::uint64_t jsonl_bytes, int generations_done) const {
  io::write_atomically(dir_ / "checkpoint.json",
                       json{{"config", config_text}, {"ga", json::parse(ga.save())}, {"jsonl_bytes", jsonl_bytes},
                            {"generations_done", generations_done}}
                           .dump());
}

ga::GeneticAlgorithm start_or_restore_ga(const ga::GenomeSchema& schema, const ga::GaConfig& gc,
                                         const io::RunConfig& cfg, const std::string& config_text,
                                         const RunDirectory& run) {
  if (!run.resuming()) {
    std::vector<std::pair<std::string, std::vector<float>>> seeds;
    for (const auto& name : cfg.seed_rules) seeds.push_back({name, schema.encode(engine::named_rule(name))});
    return ga::GeneticAlgorithm(schema, gc, cfg.seed, seeds);
  }
  const fs::path file = run.path() / "checkpoint.json";
  try {
    const json ck = json::parse(io::read_text(file));
    if (ck.at("config") != config_text)
      throw io::IoError(fmt::format("{}: written by another configuration", file.string()));
    auto ga = ga::GeneticAlgorithm::load(schema, ck.at("ga").dump());
    check_checkpoint(ga, gc, cfg, ck, run.path() / "generations.jsonl");
    io::truncate_to(run.path() / "generations.jsonl", ck.at("jsonl_bytes").get<std::uint64_t>());
    return ga;
  } catch (const json::exception& e) {
    throw io::IoError(fmt::format("{}: damaged checkpoint ({}); start a new run", file.string(), e.what()));
  } catch (const std::invalid_argument& e) {
    throw io::IoError(fmt::format("{}: does not match this run ({})", file.string(), e.what()));
  }
}

}  // namespace evoplast::apps
