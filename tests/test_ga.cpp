// The genetic algorithm's operators and state, and the run configuration.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "ga/ga.hpp"
#include "io/config.hpp"
#include "io/run_dir.hpp"
#include "io/text_file.hpp"

using namespace evoplast;

namespace {

ga::GeneticAlgorithm make_ga(const ga::GenomeSchema& s, ga::GaConfig c, std::uint64_t seed = 1) {
  return ga::GeneticAlgorithm(s, c, seed, {{"baseline", s.encode(engine::named_rule("baseline"))}});
}

}  // namespace

TEST_CASE("tournament selection picks the fitter with the expected frequency") {
  const ga::GenomeSchema schema(1);
  ga::GaConfig c;
  c.population = 10;
  c.tournament = 2;
  auto g = make_ga(schema, c);
  std::vector<ga::Individual> pop(10);
  for (int i = 0; i < 10; ++i) pop[std::size_t(i)].fitness = i;
  // With k = 2 draws with replacement, P(winner = i) = ((i+1)² − i²) / 100.
  std::vector<int> count(10, 0);
  const int draws = 100000;
  for (int d = 0; d < draws; ++d) ++count[std::size_t(g.tournament_select(pop))];
  for (int i = 0; i < 10; ++i) {
    CAPTURE(i);
    CHECK(double(count[std::size_t(i)]) / draws == doctest::Approx((2.0 * i + 1) / 100).epsilon(0.08));
  }
}

TEST_CASE("crossover takes every gene from a parent — segment crossover keeps segments whole") {
  const ga::GenomeSchema schema(2);
  for (const char* kind : {"uniform", "segment"}) {
    CAPTURE(kind);
    ga::GaConfig c;
    c.crossover = kind;
    auto g = make_ga(schema, c);
    std::vector<float> a(std::size_t(schema.size()), 0.25f), b(std::size_t(schema.size()), -0.75f);
    for (int i = 0; i < schema.size(); ++i) b[std::size_t(i)] = schema.genes()[std::size_t(i)].min_gene() == 0 ? 0.75f : -0.75f;
    int from_a = 0, from_b = 0;
    for (int t = 0; t < 200; ++t) {
      const auto child = g.cross(a, b);
      for (std::size_t i = 0; i < child.size(); ++i) {
        REQUIRE((child[i] == a[i] || child[i] == b[i]));
        (child[i] == a[i] ? from_a : from_b)++;
      }
      if (std::string(kind) == "segment")
        for (const auto& s : schema.segments())
          for (int i = s.begin + 1; i < s.end; ++i)
            REQUIRE((child[std::size_t(i)] == a[std::size_t(i)]) == (child[std::size_t(s.begin)] == a[std::size_t(s.begin)]));
    }
    CHECK(from_a > 0);
    CHECK(from_b > 0);
  }
}

TEST_CASE("the observed mutation rate is close to the configured one — genes stay in range") {
  const ga::GenomeSchema schema(2);
  ga::GaConfig c;
  c.mutation_rate = 0.1;
  c.mutation_sigma = 0.3;
  auto g = make_ga(schema, c);
  long changed = 0, total = 0;
  for (int t = 0; t < 2000; ++t) {
    std::vector<float> x(std::size_t(schema.size()), 0.5f);
    g.mutate(x);
    for (std::size_t i = 0; i < x.size(); ++i) {
      changed += x[i] != 0.5f;
      ++total;
      REQUIRE(x[i] >= schema.genes()[i].min_gene());
      REQUIRE(x[i] <= 1.0f);
    }
  }
  CHECK(double(changed) / double(total) == doctest::Approx(0.1).epsilon(0.05));
}

TEST_CASE("same seed · same genomes — a saved state continues exactly — elites survive") {
  const ga::GenomeSchema schema(1);
  ga::GaConfig c;
  c.population = 6;
  c.elites = 2;
  auto a = make_ga(schema, c, 7), b = make_ga(schema, c, 7), other = make_ga(schema, c, 8);
  CHECK(a.ask()[0].origin == "named:baseline");
  CHECK(a.ask()[1].genome != other.ask()[1].genome);  // random members depend on the seed
  const auto fitness = [](const ga::GeneticAlgorithm& g) {
    std::vector<double> f;
    for (const auto& i : g.ask()) f.push_back(double(i.genome[5]) - double(i.genome[9]));
    return f;
  };
  for (int gen = 0; gen < 3; ++gen) {
    const auto fa = fitness(a);
    const int best = int(std::max_element(fa.begin(), fa.end()) - fa.begin());
    const auto best_genome = a.ask()[std::size_t(best)].genome;
    a.tell(fa);
    b.tell(fitness(b));
    CHECK(a.ask()[0].genome == best_genome);  // the elite
  }
  for (std::size_t i = 0; i < a.ask().size(); ++i) CHECK(a.ask()[i].genome == b.ask()[i].genome);
  auto restored = ga::GeneticAlgorithm::load(schema, a.save());
  a.tell(fitness(a));
  restored.tell(fitness(restored));
  for (std::size_t i = 0; i < a.ask().size(); ++i) CHECK(a.ask()[i].genome == restored.ask()[i].genome);
  CHECK(a.best().fitness == restored.best().fitness);
  CHECK_THROWS(ga::GeneticAlgorithm::load(ga::GenomeSchema(2), a.save()));  // another net's schema
  CHECK_THROWS(a.tell({1.0}));
}

TEST_CASE("GA configuration out of range is refused") {
  ga::GaConfig c;
  c.population = 1;
  CHECK_THROWS_AS(ga::validate(c), std::invalid_argument);
  c = {};
  c.tournament = 11;
  CHECK_THROWS_AS(ga::validate(c), std::invalid_argument);
  c = {};
  c.crossover_rate = 1.5;
  CHECK_THROWS_AS(ga::validate(c), std::invalid_argument);
  c = {};
  c.mutation_rate = -0.1;
  CHECK_THROWS_AS(ga::validate(c), std::invalid_argument);
}

TEST_CASE("run config: presets · TOML · --set · validation and the nearest valid key") {
  io::RunConfig c = io::preset("seed");
  CHECK(c.population == 10);
  CHECK(c.generations == 5);
  CHECK(c.epochs == 14);
  CHECK(c.mutation_rate == 0.1);
  CHECK(c.crossover_rate == 0.5);
  CHECK(c.net == "cnn");
  CHECK(c.fitness == "seed");
  io::validate(c);
  io::apply_toml(c, "preset = \"continual\"\n[ga]\npopulation = 12\nseed_rules = [\"hebb\"]\n", "x.toml");
  CHECK(c.preset == "continual");
  CHECK(c.population == 12);
  CHECK(c.seed_rules == std::vector<std::string>{"hebb"});
  io::apply_setting(c, "train.net=mlp100x2");
  CHECK(c.net == "mlp100x2");
  // Round trip through the resolved TOML.
  io::RunConfig d;
  io::apply_toml(d, io::to_toml(c), "resolved");
  CHECK(io::to_toml(d) == io::to_toml(c));
  // precision: left out at fp32 (runs from before it stay resumable), kept otherwise.
  CHECK(io::to_toml(c).find("precision") == std::string::npos);
  io::apply_setting(c, "precision=tf32x3");
  CHECK(io::to_toml(c).find("precision = \"tf32x3\"") != std::string::npos);
  io::RunConfig e;
  io::apply_toml(e, io::to_toml(c), "resolved");
  CHECK(e.precision == "tf32x3");

  CHECK_THROWS_WITH_AS(io::apply_toml(c, "[ga]\npopulaton = 3\n", "x.toml"),
                       doctest::Contains("did you mean 'ga.population'"), io::ConfigError);
  CHECK_THROWS_WITH_AS(io::apply_setting(c, "mutation=0.2"), doctest::Contains("ga.mutation_rate"), io::ConfigError);
  CHECK_THROWS_WITH_AS(io::apply_toml(c, "ga = 5\n", "section.toml"),
                       doctest::Contains("config key 'ga' is a section, not a value: set its keys, such as 'ga."),
                       io::ConfigError);
  CHECK_THROWS_WITH_AS(io::apply_setting(c, "ga.population=ten"), doctest::Contains("not a number"), io::ConfigError);
  CHECK_THROWS_WITH_AS(io::apply_toml(c, "[ga\n", "broken.toml"), doctest::Contains("broken.toml:"), io::ConfigError);
  for (const char* bad : {"ga.population=1", "ga.tournament=99", "ga.crossover_rate=1.2", "ga.mutation_rate=-1",
                          "train.batch=0", "fitness.kind=vibes", "ga.elites=20"}) {
    CAPTURE(bad);
    io::RunConfig e = io::preset("smoke");
    io::apply_setting(e, bad);
    CHECK_THROWS_AS(io::validate(e), io::ConfigError);
  }
}

TEST_CASE("an unwritable run directory is refused with its name") {
  CHECK_THROWS_WITH_AS(io::prepare_run_dir("/proc/evoplast-cannot-be-here"), doctest::Contains("/proc/evoplast"),
                       io::IoError);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("evoplast-rundir-test-{}", ::getpid());
  io::prepare_run_dir(dir);
  io::write_atomically(dir / "a.txt", "hello");
  CHECK(io::read_text(dir / "a.txt") == "hello");
  CHECK(io::append_line(dir / "l.txt", "x") == 2);
  CHECK(io::append_line(dir / "l.txt", "yz") == 5);
  io::truncate_to(dir / "l.txt", 2);
  CHECK(io::read_text(dir / "l.txt") == "x\n");
  CHECK_THROWS_AS(io::truncate_to(dir / "l.txt", 10), io::IoError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a text file read from a pipe is read whole; from an endless device, refused at the cap") {
  // A process substitution's pipe (evolve run --config <(…)): a writer feeds it while it is read.
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("evoplast-fifo-test-{}", ::getpid());
  std::filesystem::create_directories(dir);
  const auto fifo = dir / "config.toml";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string text(200000, 'x');  // more than one chunk of the reader's
  std::thread writer([&] { std::ofstream(fifo, std::ios::binary) << text; });
  const std::string got = io::read_text(fifo);
  writer.join();
  CHECK(got == text);
  std::filesystem::remove_all(dir);
  // /dev/zero never ends: refused once the cap is passed, naming the file, never read until memory runs out.
  CHECK_THROWS_WITH_AS(io::read_text("/dev/zero"), doctest::Contains("/dev/zero: more than 64 MiB from a pipe"),
                       io::IoError);
  CHECK(io::read_text("/dev/null").empty());
}
