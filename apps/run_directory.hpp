// The run directory of `evolve run` as the run uses it: which folder (new,
// --out or --resume), its lock, config.toml, and checkpoint.json — written
// after every generation, read back whole or not at all by --resume.
// (io/run_dir.hpp has the file operations underneath.)
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "ga/ga.hpp"
#include "ga/genome.hpp"
#include "io/config.hpp"
#include "io/run_dir.hpp"

namespace evoplast::apps {

// A new folder runs/<preset>-seed<seed>-<time> unless `out` names one (which
// must be empty or new), or the run `resume` names; held by an OS lock (one
// writer at a time) while this object lives. A new run's folder is left as
// it was found if the run fails before its first generation is recorded
// (until keep()).
class RunDirectory {
 public:
  RunDirectory(const std::string& resume, const std::string& out, const io::RunConfig& cfg);

  const std::filesystem::path& path() const { return dir_; }
  bool resuming() const { return resuming_; }
  void keep();  // a generation is recorded: the folder stays whatever happens

  // config.toml: written for a new run; for --resume it must be the run's own.
  void write_or_check_config(const std::string& config_text) const;

  // checkpoint.json after generation generations_done − 1: the run's config,
  // the GA's state, and how many bytes of generations.jsonl it accounts for.
  void write_checkpoint(const std::string& config_text, const ga::GeneticAlgorithm& ga, std::uint64_t jsonl_bytes,
                        int generations_done) const;

 private:
  std::filesystem::path dir_;
  bool resuming_;
  std::optional<io::OutputDir> output_;  // a new run's (none for --resume)
  std::optional<io::RunLock> lock_;      // after output_: released before the folder is put back
};

// The GA of a new run (the named seed rules in its first generation), or the
// checkpoint's, used whole or not at all; generations.jsonl is cut back to it.
ga::GeneticAlgorithm start_or_restore_ga(const ga::GenomeSchema& schema, const ga::GaConfig& gc,
                                         const io::RunConfig& cfg, const std::string& config_text,
                                         const RunDirectory& run);

}  // namespace evoplast::apps
