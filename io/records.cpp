#include "io/records.hpp"

#include <fmt/format.h>

#include <cmath>

#include "engine/rule.hpp"
#include "io/run_dir.hpp"

namespace evoplast::io {

using nlohmann::json;

json metrics_json(const engine::ContinualMetrics& m) {
  return {{"acc", m.acc}, {"bwt", m.bwt}, {"fwt", m.fwt}, {"forgetting", m.forgetting}};
}

json protocol_record(const engine::Protocol& protocol, std::uint64_t seed, const engine::NetResult& r,
                     bool with_curves) {
  std::vector<std::string> tasks;
  for (const auto& t : protocol.tasks) tasks.push_back(t.name);
  json j = {{"protocol", protocol.name}, {"seed", seed},        {"tasks", tasks},
            {"val", metrics_json(r.val)}, {"test", metrics_json(r.test)}, {"R_val", r.R_val},
            {"R_test", r.R_test}};
  if (with_curves) {
    j["train_loss"] = r.train_loss;
    j["epoch_val_loss"] = r.epoch_val_loss;
    j["epoch_val_acc"] = r.epoch_val_acc;
  }
  return j;
}

json genome_json(const std::vector<float>& genome) {
  json g = json::array();
  for (float v : genome) g.push_back(engine::exact_decimal(v));
  return g;
}

json interval_json(const engine::Interval& iv) {
  return std::isfinite(iv.half_width) ? json::array({iv.lo(), iv.hi()}) : json(nullptr);
}

json net_result_json(const engine::NetResult& r) {
  const auto metrics = [](const engine::ContinualMetrics& m) { return json::array({m.acc, m.bwt, m.fwt, m.forgetting}); };
  return {{"R_val", r.R_val}, {"R_test", r.R_test}, {"L_val", r.L_val}, {"L_test", r.L_test},
          {"b_val", r.b_val}, {"b_test", r.b_test}, {"train_loss", r.train_loss},
          {"epoch_val_loss", r.epoch_val_loss}, {"epoch_val_acc", r.epoch_val_acc},
          {"val", metrics(r.val)}, {"test", metrics(r.test)}, {"diverged", r.diverged}, {"fitness", r.fitness}};
}

engine::NetResult net_result_from_json(const json& j) {
  const auto metrics = [](const json& a) {
    return engine::ContinualMetrics{a.at(0).get<double>(), a.at(1).get<double>(), a.at(2).get<double>(),
                                    a.at(3).get<double>()};
  };
  engine::NetResult r;
  j.at("R_val").get_to(r.R_val);
  j.at("R_test").get_to(r.R_test);
  j.at("L_val").get_to(r.L_val);
  j.at("L_test").get_to(r.L_test);
  j.at("b_val").get_to(r.b_val);
  j.at("b_test").get_to(r.b_test);
  j.at("train_loss").get_to(r.train_loss);
  j.at("epoch_val_loss").get_to(r.epoch_val_loss);
  j.at("epoch_val_acc").get_to(r.epoch_val_acc);
  r.val = metrics(j.at("val"));
  r.test = metrics(j.at("test"));
  r.diverged = j.at("diverged").get<bool>();
  r.fitness = j.at("fitness").get<double>();
  return r;
}

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void write_long_csv(const std::filesystem::path& path, const std::string& protocol,
                    const std::map<std::string, std::vector<engine::NetResult>>& results, std::uint64_t seed_base) {
  std::string text = "rule,seed,protocol,training_exp,eval_exp,accuracy,loss,forgetting,diverged\n";
  for (const auto& [label, runs] : results)
    for (std::size_t s = 0; s < runs.size(); ++s) {
      const auto& r = runs[s];
      for (std::size_t i = 0; i < r.R_test.size(); ++i)
        for (std::size_t j = 0; j < r.R_test[i].size(); ++j)
          text += fmt::format("{},{},{},{},{},{:.6g},{:.6g},{:.6g},{}\n", csv_field(label), seed_base + s,
                              csv_field(protocol), i, j, r.R_test[i][j], r.L_test[i][j],
                              r.R_test.size() > 1 ? engine::forgetting(r.R_test, i, j) : 0.0, r.diverged ? 1 : 0);
    }
  write_atomically(path, text);
}

void write_avalanche_csv(const std::filesystem::path& path, const engine::NetResult& r) {
  std::string text = "eval_exp,training_exp,eval_accuracy,eval_loss,forgetting\n";
  for (std::size_t i = 0; i < r.R_test.size(); ++i)
    for (std::size_t j = 0; j < r.R_test[i].size(); ++j)
      text += fmt::format("{},{},{:.6f},{:.6f},{:.6f}\n", j, i, r.R_test[i][j], r.L_test[i][j],
                          r.R_test.size() > 1 ? engine::forgetting(r.R_test, i, j) : 0.0);
  write_atomically(path, text);
}

}  // namespace evoplast::io
