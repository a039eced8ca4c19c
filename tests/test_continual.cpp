// Protocols (views, seeds, scenarios), metrics against hand-computed
// matrices, fitness, rule files and genomes.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "engine/cpu_backend.hpp"
#include "engine/device_data.hpp"
#include "engine/errors.hpp"
#include "engine/metrics.hpp"
#include "engine/protocol.hpp"
#include "engine/rule.hpp"
#include "ga/genome.hpp"
#include "synthetic.hpp"

using namespace evoplast;
using namespace evoplast::engine;

TEST_CASE("metrics: ACC · BWT · FWT and forgetting of a hand-computed matrix") {
  // R[i][j]: accuracy on task j after training task i; b: before training.
  const Matrix R = {{0.9, 0.2, 0.1},  //
                    {0.6, 0.8, 0.3},  //
                    {0.5, 0.7, 0.9}};
  const std::vector<double> b = {0.1, 0.1, 0.2};
  const auto m = continual_metrics(R, b);
  CHECK(m.acc == doctest::Approx((0.5 + 0.7 + 0.9) / 3));                 // 0.7
  CHECK(m.bwt == doctest::Approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2));        // −0.25
  CHECK(m.fwt == doctest::Approx(((0.2 - 0.1) + (0.3 - 0.2)) / 2));        // 0.1
  CHECK(m.forgetting == doctest::Approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)); // 0.25
  // Forgetting takes the best earlier accuracy, not the diagonal.
  const Matrix R2 = {{0.5, 0.0}, {0.9, 0.4}};
  const auto m2 = continual_metrics({{0.5, 0.0, 0.0}, {0.9, 0.6, 0.0}, {0.3, 0.6, 0.8}}, {0, 0, 0});
  CHECK(m2.forgetting == doctest::Approx(((0.9 - 0.3) + (0.6 - 0.6)) / 2));
  CHECK(m2.bwt == doctest::Approx(((0.3 - 0.5) + (0.6 - 0.6)) / 2));
  (void)R2;
  CHECK(joint_metrics({{0.8, 0.6}}).acc == doctest::Approx(0.7));
  CHECK_THROWS_AS(continual_metrics({{0.1, 0.2}}, {0, 0}), EngineError);
}

TEST_CASE("fitness: larger is better · never NaN") {
  CHECK(fitness_seed(0.03, 0.02, 60) == doctest::Approx(-(0.03 + 0.02 + 0.01)));
  CHECK(fitness_seed(NAN, 0.02, 60) == kWorstFitness);
  ContinualMetrics m;
  m.acc = 0.8;
  m.bwt = -0.1;
  CHECK(fitness_continual(m) == doctest::Approx(0.7));
  m.acc = INFINITY;
  CHECK(fitness_continual(m) == kWorstFitness);
}

TEST_CASE("split protocols: 5 disjoint class pairs from the seed · per scenario") {
  const io::Dataset data = synthetic::make(2000, 300);
  std::map<std::string, io::Dataset> ds;
  ds.emplace("mnist", data);
  for (const char* scenario : {"split-task", "split-domain", "split-class"}) {
    CAPTURE(scenario);
    ProtocolConfig pc;
    parse_protocol_name(scenario, pc);
    pc.validation = 500;
    pc.seed = 3;
    const Protocol p = make_protocol(pc, ds);
    REQUIRE(p.tasks.size() == 5);
    CHECK(p.classes == (std::string(scenario) == "split-domain" ? 2 : 10));
    std::set<int> seen;
    for (const auto& t : p.tasks) {
      std::set<int> classes;
      for (std::int32_t i : t.train) classes.insert(data.train.labels[std::size_t(i)]);
      for (std::int32_t i : t.val) {
        CHECK(i >= 1500);  // validation is the held-out tail
        classes.insert(data.train.labels[std::size_t(i)]);
      }
      CHECK(classes.size() == 2);
      seen.insert(classes.begin(), classes.end());
      if (std::string(scenario) == "split-domain")
        for (int c : classes) CHECK((t.label_map[std::size_t(c)] == 0 || t.label_map[std::size_t(c)] == 1));
      if (std::string(scenario) == "split-task") {
        CHECK(std::count(t.head.begin(), t.head.end(), 1) == 2);
        for (int c : classes) CHECK(t.head[std::size_t(c)] == 1);
      }
    }
    CHECK(seen.size() == 10);
    // Another seed, another class order; the same seed, the same order.
    pc.seed = 4;
    const Protocol q = make_protocol(pc, ds);
    pc.seed = 3;
    const Protocol r = make_protocol(pc, ds);
    bool differs = false;
    for (int t = 0; t < 5; ++t) {
      differs |= q.tasks[std::size_t(t)].name != p.tasks[std::size_t(t)].name;
      CHECK(r.tasks[std::size_t(t)].name == p.tasks[std::size_t(t)].name);
    }
    CHECK(differs);
  }
}

TEST_CASE("permuted: views apply seeded permutations on the fly — joint holds every sample") {
  const io::Dataset data = synthetic::make(300, 100);
  std::map<std::string, io::Dataset> ds;
  ds.emplace("mnist", data);
  ProtocolConfig pc;
  parse_protocol_name("permuted3", pc);
  pc.validation = 100;
  const Protocol p = make_protocol(pc, ds);
  REQUIRE(p.tasks.size() == 3);
  CHECK(p.tasks[0].permutation != p.tasks[1].permutation);
  auto sorted = p.tasks[2].permutation;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) CHECK(sorted[i] == i);
  // The assembled image is the normalised original, permuted.
  BatchHost b;
  const Sample s{1, 7};
  assemble_batch(p, &s, 1, Split::train, b);
  const auto& perm = p.tasks[1].permutation;
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const float want = (data.train.images[7 * 36 + perm[i]] / 255.0f - 0.3f) / 0.3f;
    CHECK(b.x[i] == doctest::Approx(want));
  }
  CHECK(b.y[0] == data.train.labels[7]);
  const Protocol j = make_joint(p);
  CHECK(j.phases.size() == 1);
  CHECK(j.phases[0].size() == 3 * p.phases[0].size());
  CHECK_THROWS_AS(parse_protocol_name("permuted0", pc), EngineError);
  CHECK_THROWS_AS(parse_protocol_name("rotated", pc), EngineError);
}

TEST_CASE("rules: every named rule survives a JSON round trip — bad files say what is wrong") {
  for (const auto& name : named_rules()) {
    CAPTURE(name);
    const Rule r = named_rule(name);
    CHECK(rule_from_json(rule_to_json(r), "test") == r);
  }
  CHECK_THROWS_WITH_AS(rule_from_json(R"({"feedback": "telepathy"})", "f.json"),
                       doctest::Contains("f.json: feedback 'telepathy'"), EngineError);
  CHECK_THROWS_WITH_AS(rule_from_json(R"({"hidden": [{"alpah": 1}]})", "f.json"),
                       doctest::Contains("hidden[0].alpah"), EngineError);
  CHECK_THROWS_WITH_AS(rule_from_json("{", "f.json"), doctest::Contains("f.json"), EngineError);
  // An empty object or a genome alone is no rule (it used to run as the baseline).
  CHECK_THROWS_WITH_AS(rule_from_json("{}", "f.json"), doctest::Contains("needs 'hidden' and 'output'"), EngineError);
  CHECK_THROWS_WITH_AS(rule_from_json(R"({"genome": [0.1, 0.2]})", "f.json"), doctest::Contains("a genome alone"),
                       EngineError);
  // A run's best_rule.json is read as it is: its "rule" object.
  const Rule hebb = named_rule("hebb");
  const std::string best = R"({"generation": 3, "fitness": 0.7, "genome": [0.5], "rule": )" + rule_to_json(hebb) + "}";
  CHECK(rule_from_json(best, "best_rule.json") == hebb);
  CHECK_THROWS_AS(named_rule("nope"), EngineError);
  const auto path = std::filesystem::temp_directory_path() / fmt::format("evoplast-rule-test-{}.json", ::getpid());
  save_rule(named_rule("local"), path.string());
  CHECK(rule_by_name_or_file(path.string()) == named_rule("local"));
  std::filesystem::remove(path);
}

TEST_CASE("genome: the baseline decodes exactly — named rules survive encode/decode") {
  const ga::GenomeSchema schema(2);
  CHECK(schema.size() == 4 + 3 * 18);
  CHECK(schema.segments().size() == 4);
  Rule base = named_rule("baseline");
  base.hidden.assign(2, base.hidden[0]);
  const Rule back = schema.decode(schema.encode(base), "baseline");
  CHECK(back == base);
  for (const auto& name : named_rules()) {
    CAPTURE(name);
    Rule r = named_rule(name);
    r.hidden.assign(2, r.hidden[0]);
    const Rule d = schema.decode(schema.encode(r), name);
    CHECK(d.feedback == r.feedback);
    CHECK(d.lr_scale == doctest::Approx(r.lr_scale).epsilon(1e-4));
    CHECK(d.output.alpha == doctest::Approx(r.output.alpha).epsilon(1e-4));
    CHECK(d.hidden[0].A == doctest::Approx(r.hidden[0].A).epsilon(1e-4));
    CHECK(d.hidden[0].kappa == doctest::Approx(r.hidden[0].kappa).epsilon(1e-4));
    CHECK(d.hidden[0].k_active == doctest::Approx(r.hidden[0].k_active).epsilon(1e-4));
    CHECK(d.output.label_mix == doctest::Approx(r.output.label_mix).epsilon(1e-4));
    CHECK(d.output.w_norm == doctest::Approx(r.output.w_norm).epsilon(1e-4));
  }
  CHECK(schema.decode_gene(schema.index("hidden0.k_active"), 1) == 1.0);  // k-WTA off, exactly
  // Every gene's whole range decodes to a finite value inside its codec's bounds.
  for (int i = 0; i < schema.size(); ++i)
    for (double g = -1; g <= 1; g += 0.01) CHECK(std::isfinite(schema.decode_gene(i, g)));
  CHECK(schema.decode_gene(schema.index("hidden0.A"), 0.01) == 0.0);  // the dead zone
  CHECK(schema.decode_gene(schema.index("hidden0.A"), -1) == doctest::Approx(-10.0));
}

TEST_CASE("device-resident data: gather_batch assembles what assemble_batch defines") {
  for (const char* name : {"split-task", "permuted3", "split-domain"}) {
    CAPTURE(name);
    const synthetic::Protocol sp(name);
    const Protocol& p = sp.protocol;
    CpuBackend be;
    DeviceData dev(be, p, 32);
    for (Split split : {Split::train, Split::val, Split::test}) {
      std::vector<Sample> samples;
      for (std::size_t t = 0; t < p.tasks.size(); ++t) {
        const auto& idx = split == Split::test ? p.tasks[t].test : split == Split::val ? p.tasks[t].val : p.tasks[t].train;
        for (std::size_t i = 0; i < 4 && i < idx.size(); ++i) samples.push_back({std::int32_t(t), idx[i]});
      }
      const int N = int(samples.size());
      BatchHost want;
      assemble_batch(p, samples.data(), N, split, want);
      dev.load(samples.data(), N, split);
      std::vector<float> x(want.x.size());
      std::vector<std::int32_t> y(want.y.size());
      be.to_host(x.data(), dev.x(), x.size() * sizeof(float));
      be.to_host(y.data(), dev.y(), y.size() * sizeof(std::int32_t));
      CHECK(x == want.x);
      CHECK(y == want.y);
      CHECK((dev.head_mask() != nullptr) == want.masked);
      if (dev.head_mask()) {
        std::vector<std::uint8_t> a(want.allowed.size());
        be.to_host(a.data(), dev.head_mask(), a.size());
        CHECK(a == want.allowed);
      }
    }
  }
}

TEST_CASE("device shuffles: a seeded permutation, and load_shuffled serves the shuffled samples") {
  CpuBackend be;
  std::vector<std::int32_t> a(1000), b(1000), c(1000);
  be.shuffle_order(a.size(), 7, a.data());
  be.shuffle_order(b.size(), 7, b.data());
  be.shuffle_order(c.size(), 8, c.data());
  CHECK(a == b);
  CHECK(a != c);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) CHECK(sorted[i] == std::int32_t(i));

  const synthetic::Protocol sp("permuted3", 300, 100);
  const Protocol p = make_joint(sp.protocol);
  DeviceData dev(be, p, 16);
  dev.set_phase(p.phases[0]);
  dev.shuffle(99);
  const auto shuffled = dev.shuffled_samples(16);
  REQUIRE(shuffled.size() == 16);
  dev.load_shuffled(0, 16);
  std::vector<float> x1(16 * 36);
  std::vector<std::int32_t> y1(16);
  be.to_host(x1.data(), dev.x(), x1.size() * 4);
  be.to_host(y1.data(), dev.y(), y1.size() * 4);
  dev.load(shuffled.data(), 16, Split::train);
  std::vector<float> x2(16 * 36);
  std::vector<std::int32_t> y2(16);
  be.to_host(x2.data(), dev.x(), x2.size() * 4);
  be.to_host(y2.data(), dev.y(), y2.size() * 4);
  CHECK(x1 == x2);
  CHECK(y1 == y2);
}

TEST_CASE("forgetting has one definition: the best accuracy since the task was learned, minus the latest") {
  // Task 1 scores 0.9 before it is trained (a shared head): that is no knowledge to forget.
  const Matrix R = {{0.95, 0.90, 0.10}, {0.60, 0.80, 0.20}, {0.70, 0.50, 0.90}};
  CHECK(forgetting(R, 2, 0) == doctest::Approx(0.95 - 0.70));
  CHECK(forgetting(R, 2, 1) == doctest::Approx(0.80 - 0.50));  // not 0.90 − 0.50
  CHECK(forgetting(R, 1, 0) == doctest::Approx(0.95 - 0.60));
  CHECK(forgetting(R, 1, 1) == 0.0);
  CHECK(forgetting(R, 0, 2) == 0.0);
  // The per-(i, j) values the CSVs hold average to the metric eval.json holds.
  const ContinualMetrics m = continual_metrics(R, {0.1, 0.1, 0.1});
  CHECK(m.forgetting == doctest::Approx((forgetting(R, 2, 0) + forgetting(R, 2, 1)) / 2));
}
