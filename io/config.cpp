#include "io/config.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <cmath>
#include <functional>
#include <sstream>
#include <toml++/toml.h>

#include "engine/precision.hpp"

namespace evoplast::io {
namespace {

// One declared key: how to read it from text or TOML, and how to write it.
struct Key {
  std::string name;
  std::function<void(RunConfig&, const std::string&)> set_text;
  std::function<void(RunConfig&, const toml::node&, const std::string&)> set_node;
  std::function<std::string(const RunConfig&)> to_text;  // TOML literal
};

[[noreturn]] void bad(const std::string& key, const std::string& what) {
  throw ConfigError(fmt::format("config key '{}': {}", key, what));
}

// An integer config value, checked whole before it is narrowed to the field:
// a decimal integer, or a number written otherwise (1e9) that is an exact
// integer; within the field's range (no silent wrap-around).
template <typename T>
T checked_integer(const std::string& name, long double v, const std::string& shown) {
  if (!std::isfinite(v) || v != std::trunc(v)) bad(name, fmt::format("{} — must be an integer", shown));
  if (v < (long double)std::numeric_limits<T>::min() || v > (long double)std::numeric_limits<T>::max())
    bad(name, fmt::format("{} — must be in [{}, {}]", shown, std::numeric_limits<T>::min(),
                          std::numeric_limits<T>::max()));
  return T(v);
}

template <typename T>
T integer_from_text(const std::string& name, const std::string& v) {
  // Exact decimal first (all 64 bits), then a number in any other notation.
  std::int64_t i = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), i);
  if (ec == std::errc() && end == v.data() + v.size()) return checked_integer<T>(name, (long double)i, v);
  std::uint64_t u = 0;
  const auto [uend, uec] = std::from_chars(v.data(), v.data() + v.size(), u);
  if (uec == std::errc() && uend == v.data() + v.size()) return checked_integer<T>(name, (long double)u, v);
  char* stop = nullptr;
  const long double d = std::strtold(v.c_str(), &stop);
  if (v.empty() || stop != v.c_str() + v.size()) bad(name, fmt::format("'{}' is not a number", v));
  return checked_integer<T>(name, d, v);
}

template <typename T>
Key number_key(const std::string& name, T RunConfig::*field) {
  Key k;
  k.name = name;
  k.set_text = [name, field](RunConfig& c, const std::string& v) {
    if constexpr (std::is_floating_point_v<T>) {
      char* stop = nullptr;
      const double d = std::strtod(v.c_str(), &stop);
      if (v.empty() || stop != v.c_str() + v.size()) bad(name, fmt::format("'{}' is not a number", v));
      c.*field = T(d);
    } else {
      c.*field = integer_from_text<T>(name, v);
    }
  };
  k.set_node = [name, field](RunConfig& c, const toml::node& n, const std::string&) {
    if constexpr (std::is_floating_point_v<T>) {
      if (auto d = n.value<double>()) return void(c.*field = T(*d));
    } else {
      if (n.is_integer()) {
        const std::int64_t i = *n.value<std::int64_t>();
        return void(c.*field = checked_integer<T>(name, (long double)i, std::to_string(i)));
      }
      if (n.is_floating_point()) {
        const double d = *n.value<double>();
        return void(c.*field = checked_integer<T>(name, (long double)d, fmt::format("{}", d)));
      }
    }
    bad(name, std::is_floating_point_v<T> ? "expected a number" : "expected an integer");
  };
  k.to_text = [field](const RunConfig& c) {
    if constexpr (std::is_floating_point_v<T>) return fmt::format("{}", double(c.*field));
    else return fmt::format("{}", c.*field);
  };
  return k;
}

Key string_key(const std::string& name, std::string RunConfig::*field) {
  Key k;
  k.name = name;
  k.set_text = [field](RunConfig& c, const std::string& v) { c.*field = v; };
  k.set_node = [name, field](RunConfig& c, const toml::node& n, const std::string&) {
    if (auto s = n.value<std::string>()) return void(c.*field = *s);
    bad(name, "expected a string");
  };
  k.to_text = [field](const RunConfig& c) { return fmt::format("\"{}\"", c.*field); };
  return k;
}

Key list_key(const std::string& name, std::vector<std::string> RunConfig::*field) {
  Key k;
  k.name = name;
  k.set_text = [field](RunConfig& c, const std::string& v) {
    std::vector<std::string> out;
    std::stringstream ss(v);
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) out.push_back(item);
    c.*field = out;
  };
  k.set_node = [name, field](RunConfig& c, const toml::node& n, const std::string&) {
    const auto* arr = n.as_array();
    if (!arr) bad(name, "expected an array of strings");
    std::vector<std::string> out;
    for (const auto& e : *arr) {
      auto s = e.value<std::string>();
      if (!s) bad(name, "expected an array of strings");
      out.push_back(*s);
    }
    c.*field = out;
  };
  k.to_text = [field](const RunConfig& c) {
    std::vector<std::string> q;
    for (const auto& s : c.*field) q.push_back(fmt::format("\"{}\"", s));
    return fmt::format("[{}]", fmt::join(q, ", "));
  };
  return k;
}

const std::vector<Key>& keys() {
  static const std::vector<Key> all = {
      string_key("preset", &RunConfig::preset),
      number_key("seed", &RunConfig::seed),
      string_key("backend", &RunConfig::backend),
      string_key("precision", &RunConfig::precision),
      string_key("data_dir", &RunConfig::data_dir),
      number_key("ga.population", &RunConfig::population),
      number_key("ga.generations", &RunConfig::generations),
      number_key("ga.tournament", &RunConfig::tournament),
      number_key("ga.elites", &RunConfig::elites),
      number_key("ga.crossover_rate", &RunConfig::crossover_rate),
      string_key("ga.crossover", &RunConfig::crossover),
      number_key("ga.mutation_rate", &RunConfig::mutation_rate),
      number_key("ga.mutation_sigma", &RunConfig::mutation_sigma),
      list_key("ga.seed_rules", &RunConfig::seed_rules),
      string_key("train.protocol", &RunConfig::protocol),
      string_key("train.dataset", &RunConfig::dataset),
      string_key("train.net", &RunConfig::net),
      number_key("train.epochs", &RunConfig::epochs),
      number_key("train.batch", &RunConfig::batch),
      number_key("train.eval_batch", &RunConfig::eval_batch),
      number_key("train.threads", &RunConfig::threads),
      number_key("train.lr", &RunConfig::lr),
      number_key("train.validation", &RunConfig::validation),
      number_key("train.train_per_task", &RunConfig::train_per_task),
      number_key("train.val_per_task", &RunConfig::val_per_task),
      number_key("train.test_per_task", &RunConfig::test_per_task),
      string_key("fitness.kind", &RunConfig::fitness),
      number_key("fitness.w_val_loss", &RunConfig::w_val_loss),
      number_key("fitness.w_train_loss", &RunConfig::w_train_loss),
      number_key("fitness.w_minutes", &RunConfig::w_minutes),
      number_key("fitness.w_acc", &RunConfig::w_acc),
      number_key("fitness.w_bwt", &RunConfig::w_bwt),
      number_key("fitness.streams", &RunConfig::streams),
      list_key("fitness.controls", &RunConfig::controls),
      number_key("fitness.ewc_lambda", &RunConfig::ewc_lambda),
      number_key("fitness.finalists", &RunConfig::finalists),
      number_key("fitness.final_streams", &RunConfig::final_streams),
      number_key("heldout.seeds", &RunConfig::heldout_seeds),
  };
  return all;
}

const Key& find_key(const std::string& name) {
  for (const auto& k : keys())
    if (k.name == name) return k;
  for (const auto& k : keys())  // `ga = 5`: a section given a value
    if (k.name.starts_with(name + "."))
      throw ConfigError(fmt::format("config key '{}' is a section, not a value: set its keys, such as '{}'", name,
                                    k.name));
  throw ConfigError(fmt::format("unknown config key '{}' (did you mean '{}'?)", name, nearest_key(name)));
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

void walk(RunConfig& c, const toml::table& t, const std::string& prefix, const std::string& origin) {
  for (const auto& [k, node] : t) {
    const std::string name = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      walk(c, *sub, name, origin);
      continue;
    }
    if (name == "preset") continue;  // applied first
    try {
      find_key(name).set_node(c, node, origin);
    } catch (const ConfigError& e) {
      throw ConfigError(fmt::format("{}: {}", origin, e.what()));
    }
  }
}

}  // namespace

std::vector<std::string> preset_names() { return {"seed", "continual", "smoke"}; }

RunConfig preset(const std::string& name) {
  RunConfig c;  // the defaults are the smoke preset
  c.preset = name;
  if (name == "smoke") return c;
  if (name == "seed") {
    // The seed's experiment: population 10, 5 generations, mutation 0.1,
    // crossover 0.5, the PyTorch-example CNN, 14 epochs, batch 64, lr 1.0 (γ 0.7 is a gene).
    c.population = 10;
    c.generations = 5;
    c.tournament = 3;
    c.protocol = "iid";
    c.net = "cnn";
    c.epochs = 14;
    c.train_per_task = c.val_per_task = c.test_per_task = 0;
    c.fitness = "seed";
    c.seed_rules = {"baseline", "hebb", "si", "dfa"};
    c.controls = {"baseline"};  // the seed's rule itself; one task, so no EWC or SI to compare
    return c;
  }
  if (name == "continual") {
    c.population = 10;
    c.generations = 5;
    c.tournament = 3;
    c.protocol = "split-domain,permuted";  // fitness: the mean over both
    c.net = "mlp400x2";
    c.epochs = 1;
    c.train_per_task = 0;
    c.val_per_task = 2000;
    c.test_per_task = 0;
    c.fitness = "continual";
    c.seed_rules = {"baseline", "hebb", "local", "si", "oja", "bcm", "dfa", "fly"};
    c.streams = 2;
    c.finalists = 3;
    c.final_streams = 5;
    c.heldout_seeds = 5;
    return c;
  }
  throw ConfigError(fmt::format("preset '{}': choose seed, continual or smoke", name));
}

void apply_toml(RunConfig& c, const std::string& text, const std::string& origin) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    throw ConfigError(fmt::format("{}:{}:{}: {}", origin, src.begin.line, src.begin.column,
                                  std::string(e.description())));
  }
  if (const auto* p = t.get("preset")) {
    const auto name = p->value<std::string>();
    if (!name) throw ConfigError(fmt::format("{}: 'preset' must be a string", origin));
    c = preset(*name);
  }
  walk(c, t, "", origin);
}

void apply_setting(RunConfig& c, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(fmt::format("--set '{}': expected key=value, e.g. ga.population=20", assignment));
  const std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  if (key == "preset") {
    c = preset(value);
    return;
  }
  find_key(key).set_text(c, value);
}

void validate(const RunConfig& c) {
  const auto need = [](bool ok, const std::string& key, const std::string& what) {
    if (!ok) bad(key, what);
  };
  need(c.population >= 2, "ga.population", fmt::format("{} — must be at least 2", c.population));
  need(c.generations >= 1, "ga.generations", fmt::format("{} — must be at least 1", c.generations));
  need(c.tournament >= 1 && c.tournament <= c.population, "ga.tournament",
       fmt::format("{} — must be in [1, ga.population = {}]", c.tournament, c.population));
  need(c.elites >= 0 && c.elites < c.population, "ga.elites",
       fmt::format("{} — must be in [0, ga.population − 1]", c.elites));
  for (auto [key, v] : {std::pair{"ga.crossover_rate", c.crossover_rate},
                        std::pair{"ga.mutation_rate", c.mutation_rate}})
    need(v >= 0 && v <= 1, key, fmt::format("{} — a rate must be in [0, 1]", v));
  need(c.mutation_sigma >= 0 && c.mutation_sigma <= 2, "ga.mutation_sigma",
       fmt::format("{} — must be in [0, 2]", c.mutation_sigma));
  need(c.crossover == "segment" || c.crossover == "uniform", "ga.crossover",
       fmt::format("'{}' — choose segment or uniform", c.crossover));
  need(c.epochs >= 1, "train.epochs", fmt::format("{} — must be at least 1", c.epochs));
  need(c.batch >= 1 && c.batch <= 65536, "train.batch", fmt::format("{} — must be in [1, 65536]", c.batch));
  need(c.eval_batch >= 1 && c.eval_batch <= 65536, "train.eval_batch",
       fmt::format("{} — must be in [1, 65536]", c.eval_batch));
  need(std::isfinite(c.lr) && c.lr > 0, "train.lr", fmt::format("{} — must be positive", c.lr));
  need(c.validation >= 1, "train.validation", fmt::format("{} — must be at least 1", c.validation));
  need(c.threads >= 0, "train.threads", fmt::format("{} — 0 (all cores) or more", c.threads));
  for (auto [key, v] : {std::pair{"train.train_per_task", c.train_per_task},
                        std::pair{"train.val_per_task", c.val_per_task},
                        std::pair{"train.test_per_task", c.test_per_task}})
    need(v >= 0, key, fmt::format("{} — 0 (all) or positive", v));
  need(c.dataset == "mnist" || c.dataset == "fashion", "train.dataset",
       fmt::format("'{}' — choose mnist or fashion", c.dataset));
  need(c.fitness == "seed" || c.fitness == "continual", "fitness.kind",
       fmt::format("'{}' — choose seed or continual", c.fitness));
  need(c.backend == "auto" || c.backend == "cpu" || c.backend == "cuda", "backend",
       fmt::format("'{}' — choose auto, cpu or cuda", c.backend));
  need(engine::valid_precision(c.precision), "precision",
       fmt::format("'{}' — choose {}", c.precision, engine::precision_choices()));
  for (auto [key, v] : {std::pair{"fitness.w_val_loss", c.w_val_loss}, std::pair{"fitness.w_train_loss", c.w_train_loss},
                        std::pair{"fitness.w_minutes", c.w_minutes}, std::pair{"fitness.w_acc", c.w_acc},
                        std::pair{"fitness.w_bwt", c.w_bwt}})
    need(std::isfinite(v), key, "must be a finite number");
  need(c.streams >= 1 && c.streams <= 64, "fitness.streams", fmt::format("{} — must be in [1, 64]", c.streams));
  need(c.finalists >= 1 && c.finalists <= 64, "fitness.finalists",
       fmt::format("{} — must be in [1, 64]", c.finalists));
  need(c.final_streams >= 1 && c.final_streams <= 64, "fitness.final_streams",
       fmt::format("{} — must be in [1, 64]", c.final_streams));
  need(c.heldout_seeds >= 0 && c.heldout_seeds <= 100, "heldout.seeds",
       fmt::format("{} — 0 (no held-out evaluation) to 100", c.heldout_seeds));
  need(std::isfinite(c.ewc_lambda) && c.ewc_lambda >= 0, "fitness.ewc_lambda",
       fmt::format("{} — must be ≥ 0", c.ewc_lambda));
}

std::string to_toml(const RunConfig& c) {
  std::string out = "# evoplast run configuration (resolved)\n";
  std::string section;
  for (const auto& k : keys()) {
    const auto dot = k.name.find('.');
    const std::string sec = dot == std::string::npos ? "" : k.name.substr(0, dot);
    const std::string leaf = dot == std::string::npos ? k.name : k.name.substr(dot + 1);
    if (sec != section) {
      out += fmt::format("\n[{}]\n", sec);
      section = sec;
    }
    // precision came after runs were made whose config.toml lacks it: at its
    // default it is left out, so they stay resumable (the text is compared).
    if (k.name == "precision" && c.precision == "fp32") continue;
    out += fmt::format("{} = {}\n", leaf, k.to_text(c));
  }
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& k : keys()) out.push_back(k.name);
  return out;
}

std::string nearest_key(const std::string& key) {
  std::string best;
  std::size_t best_d = ~std::size_t(0);
  for (const auto& k : keys()) {
    // Compare with and without the section, so "population" suggests "ga.population".
    const auto dot = k.name.find('.');
    const std::string leaf = dot == std::string::npos ? k.name : k.name.substr(dot + 1);
    std::size_t d = std::min(edit_distance(key, k.name), edit_distance(key, leaf));
    if (key.size() >= 3 && k.name.find(key) != std::string::npos) d = std::min<std::size_t>(d, 1);  // "mutation" → ga.mutation_rate
    if (d < best_d) best_d = d, best = k.name;
  }
  return best;
}

}  // namespace evoplast::io
