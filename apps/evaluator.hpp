// `evolve run`'s evaluation: a list of rules trained side by side on streams
// of the run's protocols — in one process, or under mpirun each rank its
// share of the nets — and what the run reads off the results: each net's
// fitness per stream, its record line, the training throughput.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/ranks.hpp"
#include "engine/backend.hpp"
#include "engine/continual.hpp"
#include "engine/rule.hpp"
#include "io/config.hpp"
#include "io/dataset.hpp"

namespace evoplast::apps {

// The m stream seeds of generation g: stream 0 is the generation's seed (so
// one stream gives what a run gave before streams existed), the others drawn
// from (run seed, g, s). All in [1, 999]; `evolve eval` uses 1000 and up.
std::vector<std::uint64_t> generation_stream_seeds(std::uint64_t run_seed, int g, int m);
// cfg.final_streams validation streams no generation used: the champion's
// selection is not decided on the data that ranked it.
std::vector<std::uint64_t> final_stream_seeds(const io::RunConfig& cfg);

// One stream: its protocols (one per configured protocol) and every net's results on them.
struct StreamRun {
  std::uint64_t seed;
  std::vector<engine::Protocol> protocols;
  std::vector<engine::ContinualResult> results;  // per protocol
};
// One rank's share of an evaluation: its nets, their training throughput and
// the machine it ran on (a slow node shows in the report).
struct RankShare {
  int nets = 0;
  double images_per_s = 0;  // network-images per second of training
  std::string host;
};
struct Runs {
  std::vector<StreamRun> streams;
  double seconds = 0, train_seconds = 0, images = 0;  // images: per net; seconds summed over ranks
  std::vector<RankShare> ranks;                       // (ranks) one per rank
};

// "12345 network-images/s", and under mpirun each rank's figure beside the total
// (the ranks train at the same time, so their figures add up), with its
// machine's name where the ranks ran on more than one.
std::string throughput_text(const Runs& runs);
// Training throughput of a generation (a timing, like "seconds"): the total
// network-images/s and each rank's (one in a single process), with its machine.
nlohmann::json throughput_json(const Runs& runs);

// Message tags between rank 0 and the others: the run's setup, a rank's
// answer that it is ready, an order to evaluate (or to stop), its result.
enum Tag : int { kSetup = 1, kReady = 2, kOrder = 3, kResult = 4 };

// Trains and scores a list of rules on streams of the run's protocols. Under
// mpirun rank 0 sends the list to every rank, trains its own share, and
// gathers the others' (each rank keys its nets' random streams by their
// index in the whole list, so the results are those of one process).
class Evaluator {
 public:
  Evaluator(engine::Backend& backend, const std::vector<engine::ProtocolConfig>& pcs,
            const std::map<std::string, io::Dataset>& datasets, const io::RunConfig& cfg, const Ranks& ranks,
            double rank_timeout_s);
  int epochs_per_stream() const { return epochs_; }

  // Rank 0: every net's results, in the order of rules; on_epoch is told of
  // each epoch of rank 0's own share.
  Runs run(const std::vector<engine::Rule>& rules, const std::vector<float>& ewc_lambda,
           const std::vector<std::uint64_t>& seeds, const std::function<void(const std::string&)>& on_epoch) const;

  // Ranks other than 0: train the share of every order until told to stop.
  void serve() const;

 private:
  Runs run_share(const std::vector<engine::Rule>& rules, const std::vector<float>& ewc_lambda,
                 const std::vector<std::uint64_t>& seeds, Share share,
                 const std::function<void(const std::string&)>& on_epoch) const;
  static void merge(Runs& out, const nlohmann::json& part, Share share, const std::string& host);

  engine::Backend& backend_;
  const std::vector<engine::ProtocolConfig>& pcs_;
  const std::map<std::string, io::Dataset>& datasets_;
  const io::RunConfig& cfg_;
  const Ranks& ranks_;
  double timeout_s_;
  int epochs_ = 0;
};

// Net i's fitness on each stream (the mean over the protocols) and over all
// streams; diverged when it diverged anywhere (then the values are null).
struct StreamFitness {
  std::vector<double> values;
  double mean = 0;
  bool diverged = false;
};
StreamFitness stream_fitness(const Runs& runs, std::size_t i, const io::RunConfig& cfg);

// Net i's record: the first stream's first protocol at the top (what the
// report draws), every (stream, protocol) under "protocols"; full: the first
// with its training-loss and validation curves.
nlohmann::json record(const Runs& runs, std::size_t i, bool full);

}  // namespace evoplast::apps
