// The evaluation of `evolve run` (evaluator.hpp): the streams' seeds, the
// population trained on them across ranks, and what is read off the results.
#include "apps/evaluator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/errors.hpp"
#include "io/records.hpp"

namespace evoplast::apps {

using nlohmann::json;

namespace {

// Generation g's seed, in [1, 999].
std::uint64_t generation_seed(std::uint64_t run_seed, int g) {
  std::uint64_t z = run_seed * 0x9E3779B97F4A7C15ull + std::uint64_t(g) * 0xBF58476D1CE4E5B9ull;
  z ^= z >> 31;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 29;
  return 1 + z % 999;
}

// A seed in [1, 999] drawn from two.
std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9E3779B97F4A7C15ull + b * 0xBF58476D1CE4E5B9ull + 0x632BE59BD9B4E019ull;
  z ^= z >> 31;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 29;
  return 1 + z % 999;
}

// The sum of the ranks' throughputs (they train at the same time).
double total_images_per_s(const Runs& runs) {
  double total = 0;
  for (const auto& r : runs.ranks) total += r.images_per_s;
  return total;
}

}  // namespace

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

json throughput_json(const Runs& runs) {
  json each = json::array();
  for (const auto& r : runs.ranks)
    each.push_back({{"nets", r.nets}, {"network_images_per_s", r.images_per_s}, {"host", r.host}});
  return {{"network_images_per_s", total_images_per_s(runs)}, {"ranks", each}};
}

std::vector<std::uint64_t> generation_stream_seeds(std::uint64_t run_seed, int g, int m) {
  std::vector<std::uint64_t> seeds{generation_seed(run_seed, g)};
  for (int s = 1; s < m; ++s)
    seeds.push_back(mix_seed(generation_seed(run_seed, g) * 1000003ull + std::uint64_t(s), run_seed));
  return seeds;
}

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

Evaluator::Evaluator(engine::Backend& backend, const std::vector<engine::ProtocolConfig>& pcs,
          const std::map<std::string, io::Dataset>& datasets, const io::RunConfig& cfg, const Ranks& ranks,
          double rank_timeout_s)
    : backend_(backend), pcs_(pcs), datasets_(datasets), cfg_(cfg), ranks_(ranks), timeout_s_(rank_timeout_s) {
  for (auto pc : pcs_) epochs_ += int(engine::make_protocol(pc, datasets_).phases.size()) * cfg_.epochs;
}

Runs Evaluator::run(const std::vector<engine::Rule>& rules, const std::vector<float>& ewc_lambda,
                    const std::vector<std::uint64_t>& seeds,
                    const std::function<void(const std::string&)>& on_epoch) const {
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

void Evaluator::serve() const {
  for (;;) {
    const json order = json::from_cbor(ranks_.receive(0, kOrder, -1));
    if (order.contains("stop")) return;
    json reply;
    try {
      std::vector<engine::Rule> rules;
      for (const auto& text : order.at("rules"))
        rules.push_back(engine::rule_from_json(text.get<std::string>(), "rank 0"));
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

// This rank's nets (share of rules) on every stream and protocol.
Runs Evaluator::run_share(const std::vector<engine::Rule>& rules, const std::vector<float>& ewc_lambda,
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
void Evaluator::merge(Runs& out, const json& part, Share share, const std::string& host) {
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

json record(const Runs& runs, std::size_t i, bool full) {
  const StreamRun& first = runs.streams.front();
  json line = io::protocol_record(first.protocols[0], first.seed, first.results[0].nets[i], full);
  line["protocols"] = json::array();
  for (const auto& sr : runs.streams)
    for (std::size_t q = 0; q < sr.results.size(); ++q)
      line["protocols"].push_back(io::protocol_record(sr.protocols[q], sr.seed, sr.results[q].nets[i], false));
  return line;
}

}  // namespace evoplast::apps
