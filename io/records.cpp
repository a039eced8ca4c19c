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

json paired_differences_json(const std::vector<std::string>& labels, const ResultsByRule& results) {
  json out = json::object();
  if (labels.size() < 2) return out;
  const std::string& first = labels.front();
  const auto& a = results.at(first);
  out["candidate"] = first;
  out["metric"] = "test ACC and forgetting, candidate − other, per seed; mean and Student-t 95% interval";
  out["vs"] = json::object();
  for (std::size_t k = 1; k < labels.size(); ++k) {
    const auto& b = results.at(labels[k]);
    std::vector<double> dacc, dfgt;
    for (std::size_t s = 0; s < a.size() && s < b.size(); ++s) {
      dacc.push_back(a[s].test.acc - b[s].test.acc);
      dfgt.push_back(a[s].test.forgetting - b[s].test.forgetting);
    }
    const auto acc = engine::mean_ci95(dacc), fgt = engine::mean_ci95(dfgt);
    json& vs = out["vs"][labels[k]];
    vs["acc"] = {{"mean", acc.mean}, {"ci95", interval_json(acc)}, {"values", dacc}};
    if (labels[k] != "joint") vs["forgetting"] = {{"mean", fgt.mean}, {"ci95", interval_json(fgt)}, {"values", dfgt}};
  }
  return out;
}

namespace {

// One seed of one rule: its matrices, curves and metrics as eval.json holds them.
json seed_run_json(std::uint64_t seed, const engine::NetResult& r) {
  return {{"seed", seed},
          {"R_test", r.R_test},
          {"R_val", r.R_val},
          {"loss_test", r.L_test},
          {"initial_acc_test", r.b_test},
          {"train_loss", r.train_loss},
          {"val", metrics_json(r.val)},
          {"fitness_continual_val", r.fitness},
          {"diverged", r.diverged}};
}

// A rule over the seeds: each metric as a list (one value per seed), the
// count of diverged seeds, every seed's run, and the rule's definition.
json rule_json(const EvalSetup& setup, const EvaluatedRule& rule, const std::vector<engine::NetResult>& runs) {
  json jr;
  std::vector<double> acc, bwt, fwt, fgt;
  int diverged = 0;
  for (const auto& r : runs) {
    acc.push_back(r.test.acc);
    bwt.push_back(r.test.bwt);
    fwt.push_back(r.test.fwt);
    fgt.push_back(r.test.forgetting);
    diverged += r.diverged;
  }
  jr["acc"] = acc;
  jr["bwt"] = bwt;
  jr["fwt"] = fwt;
  jr["forgetting"] = fgt;
  jr["diverged"] = diverged;
  jr["runs"] = json::array();
  for (std::size_t s = 0; s < runs.size(); ++s) jr["runs"].push_back(seed_run_json(setup.seed_base + s, runs[s]));
  jr["definition"] = json::parse(engine::rule_to_json(rule.rule));
  jr["ewc_lambda"] = engine::exact_decimal(rule.ewc_lambda);
  return jr;
}

}  // namespace

json eval_json(const EvalSetup& setup, const std::vector<EvaluatedRule>& rules, const ResultsByRule& results) {
  const engine::ContinualConfig& c = setup.config;
  json j;
  j["protocol"] = setup.protocol;
  j["tasks"] = setup.tasks;
  j["net"] = c.net;
  j["epochs_per_task"] = c.epochs;
  j["batch"] = c.batch;
  j["lr"] = engine::exact_decimal(c.lr);
  j["seeds"] = setup.seeds;
  j["seed_base"] = setup.seed_base;
  j["train_per_task"] = setup.train_per_task;
  j["val_per_task"] = setup.val_per_task;
  j["test_per_task"] = setup.test_per_task;
  j["seconds"] = setup.seconds;
  j["program"] = setup.program;
  j["backend"] = setup.backend;
  j["precision"] = setup.precision;
  j["dataset"] = setup.dataset;
  j["validation"] = setup.validation;
  j["eval_batch"] = c.eval_batch;
  j["optimizer"] = {{"adadelta_rho", engine::exact_decimal(c.rho)}, {"adadelta_eps", engine::exact_decimal(c.eps)}};
  j["ewc"] = {{"lambda", engine::exact_decimal(setup.ewc_lambda)}, {"fisher_samples", c.fisher_samples},
              {"form", "online diagonal empirical Fisher, applied as a proximal step"}};
  j["metrics"] = {{"acc", "mean_j R[T-1][j] (test)"},
                  {"bwt", "mean_{j<T-1} (R[T-1][j] - R[j][j])"},
                  {"fwt", "mean_{j>=1} (R[j-1][j] - b[j]), b: the untrained net"},
                  {"forgetting", "Chaudhry et al. 2018: mean_{j<T-1} (max_{j<=l<T-1} R[l][j] - R[T-1][j])"}};
  std::vector<std::string> labels;
  j["rules"] = json::object();
  for (const auto& rule : rules) {
    labels.push_back(rule.label);
    j["rules"][rule.label] = rule_json(setup, rule, results.at(rule.label));
  }
  j["labels"] = labels;  // the order evaluated: the candidate of the paired differences first
  j["paired_differences"] = paired_differences_json(labels, results);
  return j;
}

Summary summary_record(const std::vector<std::string>& folders, const std::vector<json>& evals) {
  Summary out{{{"protocols", json::array()}},
              "protocol,rule,acc_mean,acc_std,forgetting_mean,paired_acc_diff_mean,paired_acc_diff_lo,"
              "paired_acc_diff_hi\n"};
  for (std::size_t q = 0; q < evals.size(); ++q) {
    const json& e = evals[q];
    const json& pd = e.at("paired_differences");
    json entry = {
        {"protocol", folders[q]}, {"folder", folders[q]}, {"labels", e.at("labels")}, {"rules", json::object()}};
    for (const auto& label_json : e.at("labels")) {
      const std::string label = label_json.get<std::string>();
      const json& rule = e.at("rules").at(label);
      const auto a = engine::mean_ci95(rule.at("acc").get<std::vector<double>>());
      const auto f = engine::mean_ci95(rule.at("forgetting").get<std::vector<double>>());
      json row = {{"acc_mean", a.mean}, {"acc_std", a.sd}, {"forgetting_mean", f.mean}};
      std::string diff = ",,";
      if (pd.contains("vs") && pd.at("vs").contains(label)) {
        const json& d = pd.at("vs").at(label).at("acc");
        row["paired_acc_difference"] = d;
        diff = d.at("ci95").is_array() ? fmt::format("{:.6g},{:.6g},{:.6g}", d.at("mean").get<double>(),
                                                      d.at("ci95")[0].get<double>(), d.at("ci95")[1].get<double>())
                                       : fmt::format("{:.6g},,", d.at("mean").get<double>());
      }
      entry["rules"][label] = row;
      out.csv += fmt::format("{},{},{:.6g},{:.6g},{:.6g},{}\n", csv_field(folders[q]), csv_field(label), a.mean, a.sd,
                             f.mean, diff);
    }
    out.json["protocols"].push_back(entry);
  }
  return out;
}

}  // namespace evoplast::io
