// The configuration of `evolve run`: a TOML file and `--set key=value` flags
// over a preset. Every key is declared once (type, default, range, meaning);
// an unknown key is refused with the nearest valid one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/errors.hpp"

namespace evoplast::io {

class ConfigError : public IoError {
 public:
  using IoError::IoError;
};

struct RunConfig {
  std::string preset = "smoke";
  std::uint64_t seed = 1;
  std::string backend = "auto";
  std::string precision = "fp32";  // GEMM arithmetic: fp32, or tf32 / tf32x3 on a GPU's tensor cores
  std::string data_dir;  // empty: $EVOPLAST_DATA_DIR or the project's data/

  // [ga]
  int population = 8, generations = 5, tournament = 3, elites = 1;
  double crossover_rate = 0.5, mutation_rate = 0.1, mutation_sigma = 0.1;
  std::string crossover = "segment";
  std::vector<std::string> seed_rules = {"baseline", "hebb", "local", "si"};

  // [train]
  std::string protocol = "split-domain", dataset = "mnist", net = "mlp256x1";
  int epochs = 1, batch = 64, eval_batch = 256, threads = 0;
  double lr = 1.0;
  std::int64_t validation = 10000, train_per_task = 3000, val_per_task = 500, test_per_task = 1000;

  // [fitness]
  std::string fitness = "continual";  // seed | continual
  double w_val_loss = 1, w_train_loss = 1, w_minutes = 0.01, w_acc = 1, w_bwt = 1;
  // Every individual of a generation meets the same `streams` streams (class
  // orders, permutations, initial weights); its fitness is the mean.
  int streams = 1;
  // Rules evaluated beside the population every generation on the same
  // streams, never selected: named rules, "ewc" (finetune + EWC at
  // ewc_lambda) or rule files.
  std::vector<std::string> controls = {"finetune", "ewc", "si"};
  double ewc_lambda = 100;
  // The champion: the `finalists` best distinct genomes (by their mean over
  // every evaluation they had) re-evaluated on `final_streams` fresh
  // validation streams beside the controls; the best mean wins.
  int finalists = 2, final_streams = 2;

  // [heldout] At the end of a run, the champion beside the baselines on the
  // held-out protocols over this many seeds from 1000 (0: not run).
  int heldout_seeds = 0;
};

// The presets: seed (the seed's experiment), continual, smoke (under 2 minutes on 2 cores).
RunConfig preset(const std::string& name);
std::vector<std::string> preset_names();

// Applies a TOML document (its own `preset` key first, if any) over `base`.
void apply_toml(RunConfig& c, const std::string& toml_text, const std::string& origin);
// Applies one "key=value" (e.g. "ga.population=20", "train.net=cnn").
void apply_setting(RunConfig& c, const std::string& assignment);
// Checks ranges and cross-key rules; throws ConfigError naming the key.
void validate(const RunConfig& c);
// The resolved configuration as TOML (what a run directory keeps).
std::string to_toml(const RunConfig& c);

// All keys, for help and suggestions.
std::vector<std::string> config_keys();
// The key closest to `key` (edit distance), for "did you mean".
std::string nearest_key(const std::string& key);

}  // namespace evoplast::io
