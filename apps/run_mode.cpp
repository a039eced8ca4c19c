// `evolve run`: evolves plasticity rules. Each generation trains the whole
// population side by side (one PopulationNet, one shared minibatch stream, a
// per-generation seed), scores it, and tells the GA. The run directory keeps
// the resolved config, generations.jsonl, best_rule.json, a checkpoint after
// every generation (so --resume continues a killed run to exactly the
// uninterrupted result) and the report. `evolve report DIR` redoes the report.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "apps/modes.hpp"
#include "apps/program.hpp"
#include "apps/ranks.hpp"
#include "engine/backend.hpp"
#include "engine/continual.hpp"
#include "engine/errors.hpp"
#include "engine/memory_plan.hpp"
#include "engine/network.hpp"
#include "engine/rule.hpp"
#include "ga/ga.hpp"
#include "ga/genome.hpp"
#include "io/config.hpp"
#include "io/dataset.hpp"
#include "io/records.hpp"
#include "io/report.hpp"
#include "io/run_dir.hpp"
#include "kernels/gemm_cpu.hpp"

namespace evoplast::apps {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct RunOptions {
  std::string preset;
  std::string config_file;
  std::vector<std::string> settings;
  std::optional<int> population, generations, epochs;
  std::optional<std::int64_t> train_per_task, val_per_task, test_per_task;
  std::optional<std::uint64_t> seed;
  std::optional<std::string> data_dir, backend, precision;
  std::string out;
  std::string resume;
  bool quiet = false;
  bool no_verify = false;
  double rank_timeout_s = 3600;  // under mpirun: the longest wait for a rank's share
};

// Evolution draws generation seeds from [1, 999]; `evolve eval` uses 1000 and up.
std::uint64_t generation_seed(std::uint64_t run_seed, int g) {
  std::uint64_t z = run_seed * 0x9E3779B97F4A7C15ull + std::uint64_t(g) * 0xBF58476D1CE4E5B9ull;
  z ^= z >> 31;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 29;
  return 1 + z % 999;
}

// Terminal progress: one line rewritten in place on a terminal (cut to its
// width: a wrapped line cannot be rewritten), plain lines otherwise, nothing
// with --quiet.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(isatty(fileno(stdout)) != 0) {
    winsize ws{};
    if (tty_ && ioctl(fileno(stdout), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) columns_ = ws.ws_col;
  }
  void status(const std::string& line) {
    if (quiet_) return;
    if (tty_) fmt::print("\r\033[K{}", fit(line, columns_ - 1));
    else fmt::print("{}\n", line);
    std::fflush(stdout);
  }
  void line(const std::string& text) {
    if (quiet_) return;
    if (tty_) fmt::print("\r\033[K");
    fmt::print("{}\n", text);
    std::fflush(stdout);
  }

 private:
  // The first `cols` characters (UTF-8 code points) of line.
  static std::string fit(const std::string& line, int cols) {
    int seen = 0;
    for (std::size_t i = 0; i < line.size(); ++i)
      if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80 && seen++ == cols) return line.substr(0, i);
    return line;
  }
  bool quiet_, tty_;
  int columns_ = 80;
};

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int t = int(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, t / 60 % 60)
                   : t >= 60 ? fmt::format("{}m{:02d}s", t / 60, t % 60) : fmt::format("{}s", t);
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
  if (ck.at("generations_done").get<int>() != g)
    bad(fmt::format("generations_done {} disagrees with the GA's generation {}", ck.at("generations_done").get<int>(),
                    g));
  const auto bytes = ck.at("jsonl_bytes").get<std::uint64_t>();
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

std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9E3779B97F4A7C15ull + b * 0xBF58476D1CE4E5B9ull + 0x632BE59BD9B4E019ull;
  z ^= z >> 31;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 29;
  return 1 + z % 999;
}

// The m stream seeds of generation g: stream 0 is the generation's seed (so
// one stream gives what a run gave before streams existed), the others drawn
// from (run seed, g, s). All in [1, 999]; evaluation uses 1000 and up.
std::vector<std::uint64_t> generation_stream_seeds(std::uint64_t run_seed, int g, int m) {
  std::vector<std::uint64_t> seeds{generation_seed(run_seed, g)};
  for (int s = 1; s < m; ++s) seeds.push_back(mix_seed(generation_seed(run_seed, g) * 1000003ull + std::uint64_t(s), run_seed));
  return seeds;
}

// r validation streams no generation used: the champion's selection is not
// decided on the data that ranked it.
std::vector<std::uint64_t> final_stream_seeds(const io::RunConfig& cfg) {
  std::set<std::uint64_t> used;
  for (int g = 0; g < cfg.generations; ++g)
    for (auto s : generation_stream_seeds(cfg.seed, g, cfg.streams)) used.insert(s);
  std::vector<std::uint64_t> seeds;
  for (std::uint64_t j = 0; int(seeds.size()) < cfg.final_streams && j < 100000; ++j) {
    const std::uint64_t s = mix_seed(cfg.seed + 7777, j);
    if (used.insert(s).second) seeds.push_back(s);
  }
  if (int(seeds.size()) < cfg.final_streams)  // 999 seeds, at most 64·generations used: only for absurd runs
    throw io::ConfigError(fmt::format("fitness.final_streams {}: the generations used nearly every one of the 999 "
                                      "evolution seeds; lower fitness.streams or ga.generations",
                                      cfg.final_streams));
  return seeds;
}

// The control rules, their EWC strengths and labels, in config order.
struct Controls {
  std::vector<std::string> names;
  std::vector<engine::Rule> rules;
  std::vector<float> lambda;
};

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
double total_images_per_s(const Runs& runs) {
  double total = 0;
  for (const auto& r : runs.ranks) total += r.images_per_s;
  return total;
}

std::string throughput_text(const Runs& runs) {
  const double total = total_images_per_s(runs);
  const bool machines = std::any_of(runs.ranks.begin(), runs.ranks.end(),
                                    [&](const RankShare& r) { return r.host != runs.ranks.front().host; });
  std::string each;
  for (std::size_t r = 0; r < runs.ranks.size(); ++r) {
    const RankShare& share = runs.ranks[r];
    each += fmt::format("{}rank {}{}: {:.0f} ({} nets)", r ? ", " : "", r, machines ? " on " + share.host : "",
                        share.images_per_s, share.nets);
  }
  return runs.ranks.size() > 1 ? fmt::format("{:.0f} network-images/s ({})", total, each)
                               : fmt::format("{:.0f} network-images/s", total);
}

// Training throughput of a generation (a timing, like "seconds"): the total
// network-images/s and each rank's (one in a single process), with its machine.
json throughput_json(const Runs& runs) {
  json each = json::array();
  for (const auto& r : runs.ranks)
    each.push_back({{"nets", r.nets}, {"network_images_per_s", r.images_per_s}, {"host", r.host}});
  return {{"network_images_per_s", total_images_per_s(runs)}, {"ranks", each}};
}

// Message tags between rank 0 and the others.
enum Tag : int { kSetup = 1, kReady = 2, kOrder = 3, kResult = 4 };

// Trains and scores a list of rules on streams of the run's protocols. Under
// mpirun rank 0 sends the list to every rank, trains its own share, and
// gathers the others' (each rank keys its nets' random streams by their
// index in the whole list, so the results are those of one process).
class Evaluator {
 public:
  Evaluator(engine::Backend& backend, const std::vector<engine::ProtocolConfig>& pcs,
            const std::map<std::string, io::Dataset>& datasets, const io::RunConfig& cfg, const Ranks& ranks,
            double rank_timeout_s)
      : backend_(backend), pcs_(pcs), datasets_(datasets), cfg_(cfg), ranks_(ranks), timeout_s_(rank_timeout_s) {
    for (auto pc : pcs_) epochs_ += int(engine::make_protocol(pc, datasets_).phases.size()) * cfg_.epochs;
  }
  int epochs_per_stream() const { return epochs_; }

  // Rank 0: every net's results, in the order of rules.
  Runs run(const std::vector<engine::Rule>& rules, const std::vector<float>& ewc_lambda,
           const std::vector<std::uint64_t>& seeds, const std::function<void(const std::string&)>& on_epoch) const {
    const int n = int(rules.size()), K = ranks_.size();
    if (K > 1) {
      json order = {{"rules", json::array()}, {"lambda", ewc_lambda}, {"seeds", seeds}};
      for (const auto& r : rules) order["rules"].push_back(engine::rule_to_json(r));
      const auto bytes = json::to_cbor(order);
      for (int w = 1; w < K; ++w) ranks_.send(w, kOrder, bytes, timeout_s_);
    }
    Runs out = run_share(rules, ewc_lambda, seeds, share_of(n, 0, K), on_epoch);
    for (int w = 1; w < K; ++w) {
      const json part = json::from_cbor(ranks_.receive(w, kResult, timeout_s_));
      if (part.contains("error"))
        throw RankFailure(w, false,
                          fmt::format("rank {} on {}: {}", w, ranks_.host(w), part.at("error").get<std::string>()));
      merge(out, part, share_of(n, w, K), ranks_.host(w));
    }
    return out;
  }

  // Ranks other than 0: train the share of every order until told to stop.
  void serve() const {
    for (;;) {
      const json order = json::from_cbor(ranks_.receive(0, kOrder, -1));
      if (order.contains("stop")) return;
      json reply;
      try {
        std::vector<engine::Rule> rules;
        for (const auto& text : order.at("rules")) rules.push_back(engine::rule_from_json(text.get<std::string>(), "rank 0"));
        const auto share = share_of(int(rules.size()), ranks_.rank(), ranks_.size());
        const Runs runs = run_share(rules, order.at("lambda").get<std::vector<float>>(),
                                    order.at("seeds").get<std::vector<std::uint64_t>>(), share, {});
        reply = {{"streams", json::array()}, {"nets", share.count}};
        for (const auto& sr : runs.streams) {
          json protocols = json::array();
          for (const auto& res : sr.results) {
            json nets = json::array();
            for (const auto& r : res.nets) nets.push_back(io::net_result_json(r));
            protocols.push_back({{"nets", nets}, {"seconds", res.seconds}, {"train_seconds", res.train_seconds},
                                 {"images", res.images_trained}});
          }
          reply["streams"].push_back(protocols);
        }
      } catch (const std::exception& e) {
        reply = {{"error", e.what()}};
      }
      ranks_.send(0, kResult, json::to_cbor(reply), -1);
    }
  }

 private:
  // This rank's nets (share of rules) on every stream and protocol.
  Runs run_share(const std::vector<engine::Rule>& rules, const std::vector<float>& ewc_lambda,
                 const std::vector<std::uint64_t>& seeds, Share share,
                 const std::function<void(const std::string&)>& on_epoch) const {
    const std::vector<engine::Rule> mine(rules.begin() + share.first, rules.begin() + share.first + share.count);
    const std::vector<float> lambda(ewc_lambda.begin() + share.first,
                                    ewc_lambda.begin() + share.first + share.count);
    Runs out;
    for (std::uint64_t seed : seeds) {
      engine::ContinualConfig cc;
      cc.net = cfg_.net;
      cc.epochs = cfg_.epochs;
      cc.batch = cfg_.batch;
      cc.lr = float(cfg_.lr);
      cc.eval_batch = cfg_.eval_batch;
      cc.seed = seed;
      cc.eval_every_epoch = true;
      cc.first_net = share.first;
      StreamRun sr{seed, {}, {}};
      for (auto pc : pcs_) {
        pc.seed = seed;
        sr.protocols.push_back(engine::make_protocol(pc, datasets_));
        // A rank with no nets (more ranks than nets) trains nothing.
        sr.results.push_back(share.count == 0 ? engine::ContinualResult{}
                                              : engine::run_continual(backend_, sr.protocols.back(), mine, lambda, cc,
                                                                      on_epoch));
        out.seconds += sr.results.back().seconds;
        out.train_seconds += sr.results.back().train_seconds;
        out.images += double(sr.results.back().images_trained);
      }
      out.streams.push_back(std::move(sr));
    }
    out.ranks.push_back(
        {share.count, share.count * out.images / std::max(out.train_seconds, 1e-9), ranks_.host(ranks_.rank())});
    return out;
  }

  // Appends rank w's nets (its reply) to every stream and protocol of out; host: where it ran.
  static void merge(Runs& out, const json& part, Share share, const std::string& host) {
    if (part.at("nets").get<int>() != share.count)
      throw engine::EngineError(fmt::format("a rank answered for {} nets, not its {}", part.at("nets").get<int>(),
                                            share.count));
    double seconds = 0, train_seconds = 0, images = 0;
    for (std::size_t s = 0; s < out.streams.size(); ++s)
      for (std::size_t q = 0; q < out.streams[s].results.size(); ++q) {
        const json& pj = part.at("streams").at(s).at(q);
        auto& res = out.streams[s].results[q];
        for (const auto& nj : pj.at("nets")) res.nets.push_back(io::net_result_from_json(nj));
        res.seconds = std::max(res.seconds, pj.at("seconds").get<double>());
        res.train_seconds = std::max(res.train_seconds, pj.at("train_seconds").get<double>());
        res.images_trained = std::max(res.images_trained, pj.at("images").get<std::int64_t>());
        seconds += pj.at("seconds").get<double>();
        train_seconds += pj.at("train_seconds").get<double>();
        images += double(pj.at("images").get<std::int64_t>());
      }
    out.seconds += seconds;
    out.train_seconds += train_seconds;
    out.ranks.push_back(
        {share.count, share.count * images / std::max(train_seconds, 1e-9), host});
  }

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

StreamFitness stream_fitness(const Runs& runs, std::size_t i, const io::RunConfig& cfg) {
  const engine::FitnessSpec spec{cfg.fitness,
                                 {cfg.w_val_loss, cfg.w_train_loss, cfg.w_minutes},
                                 {cfg.w_acc, cfg.w_bwt}};
  StreamFitness f;
  for (const auto& sr : runs.streams) {
    double v = 0;
    for (const auto& res : sr.results) {
      f.diverged |= res.nets[i].diverged;
      v += engine::net_fitness(res, i, spec);
    }
    v /= double(sr.results.size());
    f.diverged |= !std::isfinite(v) || v <= engine::kWorstFitness;
    f.values.push_back(v);
  }
  if (f.diverged) f.values.clear();
  else f.mean = engine::mean_ci95(f.values).mean;
  return f;
}

// Net i's record: the first stream's first protocol at the top (what the
// report draws), every (stream, protocol) under "protocols".
json record(const Runs& runs, std::size_t i, bool full) {
  const StreamRun& first = runs.streams.front();
  json line = io::protocol_record(first.protocols[0], first.seed, first.results[0].nets[i], full);
  line["protocols"] = json::array();
  for (const auto& sr : runs.streams)
    for (std::size_t q = 0; q < sr.results.size(); ++q)
      line["protocols"].push_back(io::protocol_record(sr.protocols[q], sr.seed, sr.results[q].nets[i], false));
  return line;
}

std::string ci_text(const json& ci) {
  return ci.is_array() && ci.size() == 2 && ci[0].is_number()
             ? fmt::format("[{:.4f}, {:.4f}]", ci[0].get<double>(), ci[1].get<double>())
             : std::string("(no interval from one stream)");
}

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

// The champion: the finalists re-evaluated beside the controls on fresh
// validation streams; the best mean wins. Writes best_rule.json (final) and
// returns it. A finished selection (best_rule.json no longer provisional) is
// read back instead of redone.
json select_champion(const Evaluator& evaluator, const ga::GenomeSchema& schema, const Controls& controls,
                     const fs::path& dir, const io::RunConfig& cfg, Progress& progress) {
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
  std::vector<engine::Rule> rules;
  for (std::size_t k = 0; k < candidates.size(); ++k)
    rules.push_back(schema.decode(candidates[k].genome, fmt::format("finalist{}", k)));
  std::vector<float> lambda(rules.size(), 0.0f);
  rules.insert(rules.end(), controls.rules.begin(), controls.rules.end());
  lambda.insert(lambda.end(), controls.lambda.begin(), controls.lambda.end());
  int done = 0;
  const int units = evaluator.epochs_per_stream() * int(seeds.size());
  const auto runs = evaluator.run(rules, lambda, seeds, [&](const std::string& what) {
    progress.status(fmt::format("champion: {} finalists beside {} controls on {} fresh streams · {} · {}/{}",
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
                        {"program", {{"name", "evolve"}, {"version", program_version()}, {"commit", program_commit()}}}});
  io::write_atomically(dir / "best_rule.json", best_json.dump(2) + "\n");
  return best_json;
}

// The protocols of train.protocol (comma-separated: every individual is
// trained on each, and its fitness is the mean), with the run's data sizes.
std::vector<engine::ProtocolConfig> protocol_configs(const io::RunConfig& cfg) {
  std::vector<engine::ProtocolConfig> pcs;
  std::stringstream list(cfg.protocol);
  for (std::string name; std::getline(list, name, ',');) {
    if (name.empty()) continue;
    engine::ProtocolConfig pc;
    engine::parse_protocol_name(name, pc);
    pc.dataset = cfg.dataset;
    pc.validation = cfg.validation;
    pc.train_per_task = cfg.train_per_task;
    pc.val_per_task = cfg.val_per_task;
    pc.test_per_task = cfg.test_per_task;
    pcs.push_back(pc);
  }
  if (pcs.empty()) throw io::ConfigError("config key 'train.protocol': name at least one protocol");
  return pcs;
}

std::map<std::string, io::Dataset> load_datasets(const std::vector<engine::ProtocolConfig>& pcs,
                                                 const io::RunConfig& cfg, bool verify) {
  const auto data_dir = io::resolve_data_dir(cfg.data_dir.empty() ? std::nullopt : std::optional(cfg.data_dir));
  std::map<std::string, io::Dataset> datasets;
  for (const auto& pc : pcs)
    for (auto& [name, d] : engine::load_protocol_datasets(pc, data_dir, verify))
      if (!datasets.count(name)) datasets.emplace(name, std::move(d));
  return datasets;
}

// A rank other than 0: the run's configuration from rank 0, its own copy of
// the data, then its share of every evaluation until rank 0 is done.
int serve_run(const RunOptions& o, const Ranks& ranks) {
  const json setup = json::from_cbor(ranks.receive(0, kSetup, -1));
  if (setup.contains("stop")) return 0;  // rank 0 failed before the run began (and says why)
  std::optional<Evaluator> evaluator;
  std::unique_ptr<engine::Backend> backend;
  io::RunConfig cfg;
  std::vector<engine::ProtocolConfig> pcs;
  std::map<std::string, io::Dataset> datasets;
  json ready = json::object();
  try {
    io::apply_toml(cfg, setup.at("config").get<std::string>(), "rank 0's configuration");
    cfg.data_dir = setup.at("data_dir").get<std::string>();
    cfg.backend = setup.at("backend").get<std::string>();
    pcs = protocol_configs(cfg);
    datasets = load_datasets(pcs, cfg, !o.no_verify);
    use_cpu_threads(rank_threads(cfg.threads, ranks));
    ranks.pin_device();
    backend = engine::make_backend(cfg.backend, cfg.precision);
    evaluator.emplace(*backend, pcs, datasets, cfg, ranks, -1);
  } catch (const std::exception& e) {
    ready = {{"error", e.what()}};
  }
  ready["pid"] = int(getpid());
  ranks.send(0, kReady, json::to_cbor(ready), -1);
  if (evaluator) evaluator->serve();
  else (void)ranks.receive(0, kOrder, -1);  // the stop that follows the error
  return 0;
}

// Rank 0's side of the other ranks' life: the setup they wait for, and a stop
// however the run ends (without one they would wait for orders forever).
class RankRelease {
 public:
  explicit RankRelease(const Ranks& ranks) : ranks_(ranks) {}
  ~RankRelease() {
    const auto stop = json::to_cbor(json{{"stop", true}});
    for (int w = 1; w < ranks_.size(); ++w) {
      try {
        ranks_.send(w, set_up_ ? kOrder : kSetup, stop, 2);
      } catch (const RankFailure&) {  // a rank that does not listen is ended with the job
      }
    }
  }
  // Sends the setup and waits until every rank has loaded its data (or names the one that could not).
  void set_up(const json& setup, double timeout_s) {
    const auto bytes = json::to_cbor(setup);
    for (int w = 1; w < ranks_.size(); ++w) ranks_.send(w, kSetup, bytes, timeout_s);
    set_up_ = true;
    std::vector<std::pair<int, int>> local;  // (rank, pid) of the ranks on this machine
    for (int w = 1; w < ranks_.size(); ++w) {
      const json ready = json::from_cbor(ranks_.receive(w, kReady, timeout_s));
      if (ready.contains("error"))  // on a cluster, the node is the thing to fix (its data, its GPU)
        throw engine::EngineError(
            fmt::format("rank {} on {}: {}", w, ranks_.host(w), ready.at("error").get<std::string>()));
      if (ranks_.host(w) == ranks_.host(0)) local.push_back({w, ready.value("pid", 0)});
    }
    Ranks::watch_local_ranks(local);
  }

 private:
  const Ranks& ranks_;
  bool set_up_ = false;
};

// The run's configuration: the preset, config file, --set and options of a
// new run, or the run directory's own for --resume (where options that would
// change the run are refused; where the data is, the backend and the output
// are not part of the result and may change, after the config check).
io::RunConfig resolve_config(const RunOptions& o) {
  io::RunConfig cfg;
  if (!o.resume.empty()) {
    std::vector<std::string> changing;
    if (!o.preset.empty()) changing.push_back("--preset");
    if (!o.config_file.empty()) changing.push_back("--config");
    if (!o.settings.empty()) changing.push_back("--set");
    if (o.population) changing.push_back("--population");
    if (o.generations) changing.push_back("--generations");
    if (o.epochs) changing.push_back("--epochs");
    if (o.train_per_task) changing.push_back("--train-per-task");
    if (o.val_per_task) changing.push_back("--val-per-task");
    if (o.test_per_task) changing.push_back("--test-per-task");
    if (o.seed) changing.push_back("--seed");
    if (!o.out.empty()) changing.push_back("--out");
    if (!changing.empty())
      throw io::ConfigError(fmt::format("--resume continues a run with its own configuration, so {} cannot be "
                                        "given with it (it takes --data-dir, --backend, --quiet, --no-verify, "
                                        "--rank-timeout); "
                                        "start a new run to change the run",
                                        fmt::join(changing, ", ")));
    const fs::path dir = o.resume;
    if (!fs::exists(dir / "checkpoint.json"))
      throw io::IoError(fmt::format("--resume {}: no checkpoint.json there (not a run directory, or "
                                    "no generation finished)",
                                    dir.string()));
    io::apply_toml(cfg, io::read_text(dir / "config.toml"), (dir / "config.toml").string());
  } else {
    cfg = io::preset(o.preset.empty() ? "smoke" : o.preset);
    if (!o.config_file.empty()) io::apply_toml(cfg, io::read_text(o.config_file), o.config_file);
    for (const auto& s : o.settings) io::apply_setting(cfg, s);
    if (o.population) cfg.population = *o.population;
    if (o.generations) cfg.generations = *o.generations;
    if (o.epochs) cfg.epochs = *o.epochs;
    if (o.train_per_task) cfg.train_per_task = *o.train_per_task;
    if (o.val_per_task) cfg.val_per_task = *o.val_per_task;
    if (o.test_per_task) cfg.test_per_task = *o.test_per_task;
    if (o.seed) cfg.seed = *o.seed;
    if (o.data_dir) cfg.data_dir = *o.data_dir;
    if (o.backend) cfg.backend = *o.backend;
    if (o.precision) cfg.precision = *o.precision;
  }
  io::validate(cfg);
  (void)engine::NetSpec::parse(cfg.net);  // a bad net name or seed rule fails before any work
  for (const auto& r : cfg.seed_rules) (void)engine::named_rule(r);
  return cfg;
}

ga::GaConfig ga_config(const io::RunConfig& cfg) {
  ga::GaConfig gc{cfg.population, cfg.tournament, cfg.crossover_rate, cfg.crossover,
                  cfg.mutation_rate, cfg.mutation_sigma, cfg.elites};
  ga::validate(gc);
  return gc;
}

// The run directory of this run: a new one unless --out names one (which
// must be empty), or the one --resume names; held by an OS lock (one writer
// at a time) while this object lives, and left as it was found if the run
// fails before its first generation is recorded (until keep()).
class RunDirectory {
 public:
  RunDirectory(const RunOptions& o, const io::RunConfig& cfg) : resuming_(!o.resume.empty()) {
    if (resuming_) {
      dir_ = o.resume;
    } else if (o.out.empty()) {
      dir_ = io::create_stamped_run_dir(fmt::format("{}-seed{}", cfg.preset, cfg.seed));
      created_ = true;
    } else {
      dir_ = o.out;
      if (fs::exists(dir_ / "checkpoint.json"))
        throw io::IoError(fmt::format("{} already holds a run; continue it with --resume {} or choose "
                                      "another --out",
                                      dir_.string(), dir_.string()));
      if (fs::exists(dir_) && !fs::is_directory(dir_))
        throw io::IoError(fmt::format("--out {}: a file, not a folder; choose another --out", dir_.string()));
      if (!io::is_empty_dir(dir_))
        throw io::IoError(fmt::format("--out {}: the folder is not empty and holds no run of evoplast; choose an "
                                      "empty or new folder",
                                      dir_.string()));
      created_ = !fs::exists(dir_);
    }
    armed_ = !resuming_;
    io::prepare_run_dir(dir_);
    lock_.emplace(dir_);
  }
  ~RunDirectory() {
    lock_.reset();
    if (!armed_) return;
    std::error_code ec;
    if (created_) fs::remove_all(dir_, ec);
    else
      for (const char* f : {"config.toml", ".lock", "generations.jsonl", "best_rule.json"}) fs::remove(dir_ / f, ec);
  }
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const fs::path& path() const { return dir_; }
  bool resuming() const { return resuming_; }
  void keep() { armed_ = false; }  // a generation is recorded: the folder stays whatever happens

  // config.toml: written for a new run; for --resume it must be the run's own.
  void write_or_check_config(const std::string& config_text) const {
    const fs::path file = dir_ / "config.toml";
    if (!resuming_) io::write_atomically(file, config_text);
    else if (io::read_text(file) != config_text)
      throw io::IoError(fmt::format("{}: config.toml was edited after the run started; resume needs the original",
                                    file.string()));
  }

 private:
  fs::path dir_;
  bool resuming_, created_ = false, armed_ = false;
  std::optional<io::RunLock> lock_;
};

// The backend of rank 0, and whether its share of the nets fits it, before
// the GA holds P genomes (the other ranks check their own as they train).
std::unique_ptr<engine::Backend> open_backend(const io::RunConfig& cfg, const Ranks& ranks) {
  use_cpu_threads(rank_threads(cfg.threads, ranks));
  ranks.pin_device();
  auto backend = engine::make_backend(cfg.backend, cfg.precision);
  try {
    // The population or the finalists, and the controls beside them.
    const int nets = std::max(cfg.population, cfg.finalists) + int(cfg.controls.size());
    engine::admit_population(*backend,
                             engine::MemoryPlan(engine::NetSpec::parse(cfg.net).adapted(28, 28, 10),
                                                std::max(cfg.batch, cfg.eval_batch), cfg.batch, true,
                                                backend->fuses_conv_steps()),
                             share_of(nets, 0, ranks.size()).count, std::max(cfg.batch, cfg.eval_batch));
  } catch (const engine::PopulationTooLarge& e) {
    const long room = e.fits * ranks.size() - long(cfg.controls.size());
    throw io::ConfigError(fmt::format("{} (the population with its {} controls); {}", e.what(), cfg.controls.size(),
                                      room >= 2 ? fmt::format("lower ga.population (-P) to {}", room)
                                                : std::string("lower train.batch and train.eval_batch, or choose a "
                                                              "smaller train.net")));
  }
  return backend;
}

// The GA of a new run (the named seed rules in its first generation), or the
// checkpoint's, used whole or not at all; generations.jsonl is cut back to it.
ga::GeneticAlgorithm start_or_restore_ga(const ga::GenomeSchema& schema, const ga::GaConfig& gc,
                                         const io::RunConfig& cfg,
                                         const std::string& config_text, const RunDirectory& run) {
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

// One generation's records: a line per individual and per control appended
// to generations.jsonl. Returns the individuals' fitness for the GA (a
// diverged net ranks last) and the file's size after the last line.
std::pair<std::vector<double>, std::uint64_t> record_generation(int g, const std::vector<ga::Individual>& pop,
                                                                const std::vector<engine::Rule>& rules,
                                                                const Controls& controls,
                                                                const std::vector<std::uint64_t>& seeds,
                                                                const Runs& runs, const io::RunConfig& cfg,
                                                                const fs::path& dir) {
  std::vector<double> fitness;
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const StreamFitness f = stream_fitness(runs, i, cfg);
    const bool control = i >= pop.size();
    json line = record(runs, i, true);
    line.update(json{{"generation", g},
                     {"role", control ? "control" : "individual"},
                     {"individual", control ? json(nullptr) : json(i)},
                     {"control", control ? json(controls.names[i - pop.size()]) : json(nullptr)},
                     {"origin", control ? std::string("control") : pop[i].origin},
                     {"genome", control ? json(nullptr) : io::genome_json(pop[i].genome)},
                     {"rule", json::parse(engine::rule_to_json(rules[i]))},
                     // Records hold no sentinel: a diverged net's fitness is null, with the flag.
                     {"fitness", f.diverged ? json(nullptr) : json(f.mean)},
                     {"fitness_streams", f.values},
                     {"diverged", f.diverged},
                     {"seed", seeds.front()},
                     {"seeds", seeds},
                     {"seconds", runs.seconds / double(rules.size())},
                     {"throughput", throughput_json(runs)}});
    bytes = io::append_line(dir / "generations.jsonl", line.dump());
    if (!control) fitness.push_back(f.diverged ? engine::kWorstFitness : f.mean);
  }
  return {fitness, bytes};
}

// best_rule.json during the run: the best mean over every evaluation so far.
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

// The console line of a finished generation.
std::string generation_line(int g, const io::RunConfig& cfg, const std::vector<double>& fitness,
                            const Controls& controls, std::size_t population, const Runs& runs, double seconds) {
  double mean = 0;
  int counted = 0, best_i = 0;
  for (std::size_t i = 0; i < fitness.size(); ++i) {
    if (fitness[i] > engine::kWorstFitness) mean += fitness[i], ++counted;
    if (fitness[i] > fitness[std::size_t(best_i)]) best_i = int(i);
  }
  std::string beside;
  for (std::size_t c = 0; c < controls.names.size(); ++c) {
    const StreamFitness f = stream_fitness(runs, population + c, cfg);
    beside += fmt::format("{}{} {}", beside.empty() ? "" : ", ", controls.names[c],
                          f.diverged ? std::string("diverged") : fmt::format("{:.4f}", f.mean));
  }
  return fmt::format("generation {} of 0–{}: best {:.4f} (individual {}), mean {:.4f}{}, {}, {}", g,
                     cfg.generations - 1, fitness[std::size_t(best_i)], best_i, counted ? mean / counted : 0.0,
                     beside.empty() ? "" : "; controls " + beside, throughput_text(runs), duration(seconds));
}

// The closing lines: the champion beside the controls, where the files are.
void print_champion(const json& champion, const io::RunConfig& cfg, const fs::path& dir, const fs::path& report) {
  std::string beside;
  for (auto it = champion.at("controls").begin(); it != champion.at("controls").end(); ++it)
    beside += fmt::format("{}{} {}", beside.empty() ? "" : ", ", it.key(),
                          it.value().at("fitness").is_number() ? fmt::format("{:.4f}", it.value().at("fitness").get<double>())
                                                               : std::string("diverged"));
  fmt::print("champion ({}): fitness {:.4f}, 95% CI {} on {} fresh validation streams{}\nbest rule in {}, report in {}\n",
             champion.at("origin").at("text").get<std::string>(), champion.at("fitness").get<double>(),
             ci_text(champion.at("fitness_ci95")), cfg.final_streams, beside.empty() ? "" : "; controls " + beside,
             (dir / "best_rule.json").string(), report.string());
}

int run_evolution(const RunOptions& o, const Ranks& ranks) {
  if (ranks.rank() != 0) return serve_run(o, ranks);
  RankRelease release(ranks);
  io::RunConfig cfg = resolve_config(o);
  // Bad GA settings or protocols fail before the run directory exists.
  const ga::GaConfig gc = ga_config(cfg);
  const std::vector<engine::ProtocolConfig> pcs = protocol_configs(cfg);
  RunDirectory run(o, cfg);
  const fs::path& dir = run.path();
  const std::string config_text = io::to_toml(cfg);
  run.write_or_check_config(config_text);
  if (run.resuming()) {  // after the config check: these do not change the result
    if (o.data_dir) cfg.data_dir = *o.data_dir;
    if (o.backend) cfg.backend = *o.backend;
  }
  auto backend = open_backend(cfg, ranks);
  const ga::GenomeSchema schema(engine::NetSpec::parse(cfg.net).hidden_plastic_layers());
  ga::GeneticAlgorithm ga = start_or_restore_ga(schema, gc, cfg, config_text, run);

  // The other ranks load their own copy of the data meanwhile (from the same
  // path: on a cluster, a shared file system or the same path on every node).
  const auto datasets = load_datasets(pcs, cfg, !o.no_verify);
  if (ranks.distributed())
    release.set_up({{"config", config_text}, {"data_dir", cfg.data_dir}, {"backend", cfg.backend}}, o.rank_timeout_s);

  const Controls controls = make_controls(cfg);
  // Where a run that a rank failed can go on from, and what rank 0 says if
  // mpirun ends it (it does when another rank dies).
  int generations_done = ga.generation();
  const auto resume_advice = [&] {
    return generations_done > 0
               ? fmt::format("the last good checkpoint is {} ({} generation{} done): continue with evolve run "
                             "--resume {}, with any number of ranks",
                             (dir / "checkpoint.json").string(), generations_done, generations_done == 1 ? "" : "s",
                             dir.string())
               : std::string("no generation was done: start the run again");
  };
  const auto last_words = [&] {
    Ranks::set_last_words(resume_advice());
  };
  last_words();
  Progress progress(o.quiet);
  progress.line(fmt::format("evolve run: preset {}, {} on {} ({}), P={}, {} generations, {} stream{} each, "
                            "controls {}, backend {}, run directory {}{}",
                            cfg.preset, cfg.net, cfg.protocol, cfg.dataset, cfg.population, cfg.generations,
                            cfg.streams, cfg.streams == 1 ? "" : "s",
                            controls.names.empty() ? std::string("none") : fmt::format("{}", fmt::join(controls.names, ", ")),
                            backend->name(), dir.string(),
                            run.resuming() ? fmt::format(" (resuming at generation {})", ga.generation()) : ""));
  const Evaluator evaluator{*backend, pcs, datasets, cfg, ranks, o.rank_timeout_s};
  const auto t_start = Clock::now();
  const int first_generation = ga.generation();
  json champion;
  try {
    for (int g = ga.generation(); g < cfg.generations; ++g) {
      // The population, then the controls beside it on the same streams.
      const auto& pop = ga.ask();
      std::vector<engine::Rule> rules;
      for (std::size_t i = 0; i < pop.size(); ++i)
        rules.push_back(schema.decode(pop[i].genome, fmt::format("g{}i{}", g, i)));
      std::vector<float> lambda(pop.size(), 0.0f);
      rules.insert(rules.end(), controls.rules.begin(), controls.rules.end());
      lambda.insert(lambda.end(), controls.lambda.begin(), controls.lambda.end());
      const auto seeds = generation_stream_seeds(cfg.seed, g, cfg.streams);

      const int units = evaluator.epochs_per_stream() * cfg.streams;
      int done = 0;
      const auto t_gen = Clock::now();
      const auto on_epoch = [&](const std::string& what) {
        ++done;
        const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
        const double gens_done = double(g - first_generation) + double(done) / units;
        const double eta = elapsed / gens_done * (cfg.generations - first_generation - gens_done);
        // Generations are counted from 0 on the console as in the files (0 is the initial population).
        progress.status(fmt::format("gen {} of 0–{} · {} · ETA {} (+ champion)", g, cfg.generations - 1, what,
                                    duration(eta)));
      };
      const auto runs = evaluator.run(rules, lambda, seeds, on_epoch);

      const auto [fitness, bytes] = record_generation(g, pop, rules, controls, seeds, runs, cfg, dir);
      write_provisional_best(dir);
      ga.tell(fitness);
      io::write_atomically(dir / "checkpoint.json",
                           json{{"config", config_text}, {"ga", json::parse(ga.save())}, {"jsonl_bytes", bytes},
                                {"generations_done", g + 1}}
                               .dump());
      generations_done = g + 1;
      last_words();
      run.keep();
      progress.line(generation_line(g, cfg, fitness, controls, pop.size(), runs,
                                    std::chrono::duration<double>(Clock::now() - t_gen).count()));
    }
    champion = select_champion(evaluator, schema, controls, dir, cfg, progress);
  } catch (const RankFailure& e) {  // a rank that failed or hangs: say where the run can go on from
    throw RankFailure(e.rank, e.timed_out, fmt::format("{}; {}", e.what(), resume_advice()));
  }
  if (cfg.heldout_seeds > 0) {
    progress.line(fmt::format("held-out evaluation: the champion beside finetune, ewc, si and joint on {} seeds, "
                              "into {}",
                              cfg.heldout_seeds, (dir / "heldout").string()));
    evaluate_heldout(dir, cfg.heldout_seeds, cfg.data_dir, cfg.backend, cfg.precision, cfg.threads, o.quiet);
  }
  print_champion(champion, cfg, dir, io::write_report(dir));
  return 0;
}

}  // namespace

std::function<int()> add_run_mode(CLI::App& app, Ranks& ranks) {
  auto o = std::make_shared<RunOptions>();
  auto* cmd = app.add_subcommand(
      "run",
      "Evolve plasticity rules with the genetic algorithm. Presets: smoke (under 2 minutes on 2 CPU "
      "cores), seed (the seed's experiment: P=10, 5 generations, the CNN, 14 epochs, fitness seed), "
      "continual (Split MNIST domain-IL and Permuted MNIST, MLP 2x400, fitness continual averaged over both).");
  cmd->footer("Config keys (TOML sections [ga], [train], [fitness]; --set section.key=value): " + [] {
    std::string k;
    for (const auto& s : io::config_keys()) k += (k.empty() ? "" : ", ") + s;
    return k;
  }());
  cmd->add_option("--preset", o->preset, "smoke (default), seed or continual")
      ->check(CLI::IsMember(io::preset_names()));
  cmd->add_option("--config", o->config_file, "TOML file of config keys (over the preset)");
  cmd->add_option("--set", o->settings, "key=value over the config, e.g. --set ga.population=20 (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("-P,--population", o->population, "= ga.population");
  cmd->add_option("-g,--generations", o->generations, "= ga.generations");
  cmd->add_option("-e,--epochs", o->epochs, "= train.epochs (per task)");
  // The same names as evolve eval and evolve train.
  cmd->add_option("--train-per-task", o->train_per_task, "= train.train_per_task (0: all)");
  cmd->add_option("--val-per-task", o->val_per_task, "= train.val_per_task (0: all)");
  cmd->add_option("--test-per-task", o->test_per_task, "= train.test_per_task (0: all)");
  cmd->add_option("--seed", o->seed, "Run seed: initial population, GA draws, generation seeds")
      ->check(kSeed);
  cmd->add_option("--data-dir", o->data_dir, "= data_dir");
  cmd->add_option("--backend", o->backend, "= backend: cpu, cuda or auto");
  cmd->add_option("--precision", o->precision,
                  "= precision: fp32 (default), or on a GPU's tensor cores tf32, tf32x3 (split TF32, about fp32's "
                  "accuracy) or bf16");
  cmd->add_option("-o,--out", o->out, "Run directory (default: a new runs/<preset>-seed<seed>-<time>)");
  cmd->add_option("--resume", o->resume,
                  "Continue the run in this directory with its own config (only --data-dir, --backend, --quiet "
                  "and --no-verify may be given with it)");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress output");
  cmd->add_flag("--no-verify", o->no_verify, "Skip the MD5 check of the data files");
  cmd->add_option("--rank-timeout", o->rank_timeout_s,
                  "Under mpirun: seconds rank 0 waits for a rank's share of a generation before it ends the run, "
                  "naming the rank and the checkpoint to resume from (default 3600)")
      ->check(CLI::Range(1.0, 1e7));
  return [o, &ranks] { return run_evolution(*o, ranks); };
}

std::function<int()> add_report_mode(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("report", "Write (again) the report of a run directory: report.html and its SVG charts");
  cmd->add_option("dir", *dir, "Run directory")->required();
  return [dir] {
    const auto path = io::write_report(*dir);
    fmt::print("wrote {}\n", path.string());
    return 0;
  };
}

}  // namespace evoplast::apps
