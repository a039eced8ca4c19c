#include "ga/ga.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace evoplast::ga {

void validate(const GaConfig& c) {
  const auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (c.population < 2) fail(fmt::format("ga.population = {}: must be at least 2", c.population));
  if (c.tournament < 1 || c.tournament > c.population)
    fail(fmt::format("ga.tournament = {}: must be in [1, population = {}]", c.tournament, c.population));
  if (!(c.crossover_rate >= 0 && c.crossover_rate <= 1))
    fail(fmt::format("ga.crossover_rate = {}: must be in [0, 1]", c.crossover_rate));
  if (!(c.mutation_rate >= 0 && c.mutation_rate <= 1))
    fail(fmt::format("ga.mutation_rate = {}: must be in [0, 1]", c.mutation_rate));
  if (!(c.mutation_sigma >= 0 && c.mutation_sigma <= 2))
    fail(fmt::format("ga.mutation_sigma = {}: must be in [0, 2]", c.mutation_sigma));
  if (c.elites < 0 || c.elites >= c.population)
    fail(fmt::format("ga.elites = {}: must be in [0, population − 1 = {}]", c.elites, c.population - 1));
  if (c.crossover != "segment" && c.crossover != "uniform")
    fail(fmt::format("ga.crossover = '{}': choose segment or uniform", c.crossover));
}

GeneticAlgorithm::GeneticAlgorithm(const GenomeSchema& schema, GaConfig config)
    : schema_(&schema), config_(std::move(config)) {
  validate(config_);
}

GeneticAlgorithm::GeneticAlgorithm(const GenomeSchema& schema, GaConfig config, std::uint64_t seed,
                                   const std::vector<std::pair<std::string, std::vector<float>>>& seeds)
    : GeneticAlgorithm(schema, std::move(config)) {
  rng_.seed(seed);
  for (const auto& [name, genome] : seeds) {
    if (int(population_.size()) == config_.population) break;
    if (int(genome.size()) != schema.size())
      throw std::invalid_argument(fmt::format("seed genome '{}' has {} genes, the schema {}", name,
                                              genome.size(), schema.size()));
    population_.push_back({genome, 0, false, "named:" + name});
  }
  while (int(population_.size()) < config_.population) {
    std::vector<float> g(static_cast<std::size_t>(schema.size()));
    for (int i = 0; i < schema.size(); ++i) g[std::size_t(i)] = random_gene(i);
    population_.push_back({g, 0, false, "random"});
  }
}

float GeneticAlgorithm::random_gene(int i) {
  std::uniform_real_distribution<double> u(schema_->genes()[std::size_t(i)].min_gene(), 1.0);
  return float(u(rng_));
}

int GeneticAlgorithm::tournament_select(const std::vector<Individual>& pop) {
  std::uniform_int_distribution<int> pick(0, int(pop.size()) - 1);
  int best = pick(rng_);
  for (int t = 1; t < config_.tournament; ++t) {
    const int c = pick(rng_);
    if (pop[std::size_t(c)].fitness > pop[std::size_t(best)].fitness) best = c;
  }
  return best;
}

std::vector<float> GeneticAlgorithm::cross(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> child = a;
  std::bernoulli_distribution coin(0.5);
  if (config_.crossover == "uniform") {
    for (std::size_t i = 0; i < child.size(); ++i)
      if (coin(rng_)) child[i] = b[i];
  } else {
    for (const Segment& s : schema_->segments())
      if (coin(rng_))
        std::copy(b.begin() + s.begin, b.begin() + s.end, child.begin() + s.begin);
  }
  return child;
}

void GeneticAlgorithm::mutate(std::vector<float>& g) {
  std::bernoulli_distribution hit(config_.mutation_rate);
  std::normal_distribution<double> step(0.0, config_.mutation_sigma);
  for (std::size_t i = 0; i < g.size(); ++i)
    if (hit(rng_))
      g[i] = float(std::clamp(double(g[i]) + step(rng_), schema_->genes()[i].min_gene(), 1.0));
}

void GeneticAlgorithm::tell(const std::vector<double>& fitness) {
  if (fitness.size() != population_.size())
    throw std::invalid_argument(fmt::format("tell: {} fitness values for {} individuals",
                                            fitness.size(), population_.size()));
  for (std::size_t i = 0; i < population_.size(); ++i) {
    if (!std::isfinite(fitness[i]))
      throw std::invalid_argument(fmt::format("tell: fitness of individual {} is not finite", i));
    population_[i].fitness = fitness[i];
    population_[i].evaluated = true;
    if (best_generation_ < 0 || fitness[i] > best_.fitness) {
      best_ = population_[i];
      best_generation_ = generation_;
    }
  }
  // Elites first (stable order on ties), then children.
  std::vector<int> order(population_.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = int(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return population_[std::size_t(a)].fitness > population_[std::size_t(b)].fitness;
  });
  std::vector<Individual> next;
  for (int e = 0; e < config_.elites; ++e) {
    Individual elite = population_[std::size_t(order[std::size_t(e)])];
    elite.evaluated = false;
    elite.origin = fmt::format("elite: g{}i{}", generation_, order[std::size_t(e)]);
    next.push_back(elite);
  }
  std::bernoulli_distribution crossover(config_.crossover_rate);
  while (int(next.size()) < config_.population) {
    const int a = tournament_select(population_);
    std::vector<float> child = population_[std::size_t(a)].genome;
    std::string origin = fmt::format("child: g{}i{}", generation_, a);
    if (crossover(rng_)) {
      const int b = tournament_select(population_);
      child = cross(child, population_[std::size_t(b)].genome);
      origin += fmt::format(" × g{}i{}", generation_, b);
    }
    mutate(child);
    next.push_back({child, 0, false, origin});
  }
  population_ = std::move(next);
  ++generation_;
}

std::string GeneticAlgorithm::save() const {
  using nlohmann::json;
  const auto ind = [](const Individual& i) {
    return json{{"genome", i.genome}, {"fitness", i.fitness}, {"evaluated", i.evaluated}, {"origin", i.origin}};
  };
  json j;
  j["generation"] = generation_;
  j["config"] = {{"population", config_.population},   {"tournament", config_.tournament},
                 {"crossover_rate", config_.crossover_rate}, {"crossover", config_.crossover},
                 {"mutation_rate", config_.mutation_rate}, {"mutation_sigma", config_.mutation_sigma},
                 {"elites", config_.elites}};
  std::ostringstream rng;
  rng << rng_;
  j["rng"] = rng.str();
  for (const auto& i : population_) j["population"].push_back(ind(i));
  j["best"] = ind(best_);
  j["best_generation"] = best_generation_;
  j["genes"] = schema_->size();
  return j.dump();
}

GeneticAlgorithm GeneticAlgorithm::load(const GenomeSchema& schema, const std::string& text) {
  using nlohmann::json;
  const json j = json::parse(text);  // throws json::exception on damage; callers name the file
  GaConfig c;
  const json& jc = j.at("config");
  c.population = jc.at("population");
  c.tournament = jc.at("tournament");
  c.crossover_rate = jc.at("crossover_rate");
  c.crossover = jc.at("crossover");
  c.mutation_rate = jc.at("mutation_rate");
  c.mutation_sigma = jc.at("mutation_sigma");
  c.elites = jc.at("elites");
  if (j.at("genes").get<int>() != schema.size())
    throw std::invalid_argument(fmt::format("the checkpoint's genomes have {} genes, this run's schema {}",
                                            j.at("genes").get<int>(), schema.size()));
  validate(c);  // a damaged configuration fails here, with the field's name
  GeneticAlgorithm ga(schema, c);
  ga.generation_ = j.at("generation");
  if (ga.generation_ < 0) throw std::invalid_argument(fmt::format("generation {} is negative", ga.generation_));
  std::istringstream rng(j.at("rng").get<std::string>());
  rng >> ga.rng_;
  if (!rng) throw std::invalid_argument("the checkpoint's generator state is damaged");
  const auto ind = [&](const json& x) {
    Individual i{x.at("genome").get<std::vector<float>>(), x.at("fitness"), x.at("evaluated"),
                 x.at("origin")};
    if (int(i.genome.size()) != schema.size()) throw std::invalid_argument("a genome of the wrong size");
    for (float v : i.genome)
      if (!std::isfinite(v)) throw std::invalid_argument("a genome holds a non-finite gene");
    return i;
  };
  for (const auto& x : j.at("population")) ga.population_.push_back(ind(x));
  if (int(ga.population_.size()) != c.population)
    throw std::invalid_argument("the checkpoint's population does not match its size");
  ga.best_generation_ = j.at("best_generation");
  // -1: nothing evaluated yet; otherwise an earlier generation.
  const int b = ga.best_generation_;
  if (b != -1 && (b < 0 || b >= ga.generation_))
    throw std::invalid_argument(fmt::format("best generation {} is not before generation {}", b, ga.generation_));
  if (ga.best_generation_ >= 0) ga.best_ = ind(j.at("best"));
  return ga;
}

}  // namespace evoplast::ga
