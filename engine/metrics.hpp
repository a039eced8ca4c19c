// Continual-learning metrics from an accuracy matrix, and the fitness functions.
// R[i][j] = accuracy on task j after training phase i (T phases, T tasks);
// b[j] = accuracy on task j of the untrained (initial) net, for FWT.
#pragma once
#include <vector>

namespace evoplast::engine {

using Matrix = std::vector<std::vector<double>>;

struct ContinualMetrics {
  double acc = 0;         // mean_j R[T−1][j]
  double bwt = 0;         // mean_{j<T−1} (R[T−1][j] − R[j][j])           (Lopez-Paz & Ranzato 2017)
  double fwt = 0;         // mean_{j≥1} (R[j−1][j] − b[j])                 (GEM)
  double forgetting = 0;  // mean_{j<T−1} forgetting(R, T−1, j)             (Chaudhry et al. 2018)
};

// R square (T×T). With one task, bwt = fwt = forgetting = 0.
ContinualMetrics continual_metrics(const Matrix& R, const std::vector<double>& b);

// Forgetting of task j after training task i (Chaudhry et al. 2018), the one
// definition used everywhere (eval.json, the CSVs, fitness):
// max_{j ≤ l < i} R[l][j] − R[i][j] for j < i, and 0 otherwise. The mean of the
// last row over j < T−1 is ContinualMetrics::forgetting.
double forgetting(const Matrix& R, std::size_t i, std::size_t j);

// Joint training has one phase (1×T): only ACC is defined.
ContinualMetrics joint_metrics(const Matrix& R);

// Fitness, larger is better. A diverged net gets kWorstFitness (finite, so
// it never puts NaN or Inf into logs or selection).
constexpr double kWorstFitness = -1e9;

struct SeedFitnessWeights {
  double val_loss = 1, train_loss = 1, minutes = 0.01;
};
// The seed's: −(w·best validation loss + w·final train loss + w·training minutes).
double fitness_seed(double best_val_loss, double final_train_loss, double train_seconds,
                    const SeedFitnessWeights& w = {});

struct ContinualFitnessWeights {
  double acc = 1, bwt = 1;
};
// On validation data only: w·ACC + w·BWT.
double fitness_continual(const ContinualMetrics& m, const ContinualFitnessWeights& w = {});

// The mean of n values and its 95% confidence interval by Student's t
// (mean ± t_{0.975, n−1}·s/√n, s the sample standard deviation): for a
// fitness over n streams, or a paired difference over n seeds. n < 2 leaves
// the half-width NaN (no interval from one value).
struct Interval {
  double mean = 0, sd = 0, half_width = 0;
  int n = 0;
  double lo() const { return mean - half_width; }
  double hi() const { return mean + half_width; }
};
Interval mean_ci95(const std::vector<double>& values);

}  // namespace evoplast::engine
