// The genetic algorithm, ask/tell: ask() hands out the genomes of the current
// generation, tell() takes their fitness (larger is better) and breeds the
// next one by elitism, tournament selection, crossover and mutation. Every
// random draw comes from one seeded generator whose state is part of the
// saved state, so a resumed run continues exactly. Host-only.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ga/genome.hpp"

namespace evoplast::ga {

struct GaConfig {
  int population = 10;
  int tournament = 3;             // k
  double crossover_rate = 0.5;    // probability a child has two parents
  std::string crossover = "segment";  // "segment" (whole per-layer segments) or "uniform" (per gene)
  double mutation_rate = 0.1;     // per-gene probability
  double mutation_sigma = 0.1;    // in gene units (a fraction of each gene's range)
  int elites = 1;                 // copied unchanged into the next generation
};

// Throws std::invalid_argument naming the value and its valid range.
void validate(const GaConfig& c);

struct Individual {
  std::vector<float> genome;
  double fitness = 0;
  bool evaluated = false;
  // "named:hebb", "random", "elite: g3i2" (kept from generation 3's
  // individual 2), "child: g3i2 × g3i5" (its parents; one parent: mutation only).
  std::string origin;
};

class GeneticAlgorithm {
 public:
  // The first generation: the seed genomes (named rules, in order), then random ones.
  GeneticAlgorithm(const GenomeSchema& schema, GaConfig config, std::uint64_t seed,
                   const std::vector<std::pair<std::string, std::vector<float>>>& seeds);

  const std::vector<Individual>& ask() const { return population_; }
  void tell(const std::vector<double>& fitness);

  int generation() const { return generation_; }  // 0-based, of the population ask() returns
  const Individual& best() const { return best_; }  // best evaluated so far
  int best_generation() const { return best_generation_; }
  const GaConfig& config() const { return config_; }

  // The whole state (population, best, generation, generator) as JSON text, and back.
  std::string save() const;
  static GeneticAlgorithm load(const GenomeSchema& schema, const std::string& json_text);

  // The operators, exposed for tests.
  int tournament_select(const std::vector<Individual>& pop);
  std::vector<float> cross(const std::vector<float>& a, const std::vector<float>& b);
  void mutate(std::vector<float>& g);

 private:
  GeneticAlgorithm(const GenomeSchema& schema, GaConfig config);
  float random_gene(int i);

  const GenomeSchema* schema_;
  GaConfig config_;
  std::mt19937_64 rng_;
  std::vector<Individual> population_;
  Individual best_;
  int best_generation_ = -1;
  int generation_ = 0;
};

}  // namespace evoplast::ga
