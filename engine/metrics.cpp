#include "engine/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "engine/errors.hpp"

namespace evoplast::engine {

ContinualMetrics continual_metrics(const Matrix& R, const std::vector<double>& b) {
  const std::size_t T = R.size();
  if (T == 0) throw EngineError("continual_metrics: empty accuracy matrix");
  for (const auto& row : R)
    if (row.size() != T) throw EngineError("continual_metrics: the accuracy matrix must be T×T");
  if (b.size() != T) throw EngineError("continual_metrics: one baseline accuracy per task");
  ContinualMetrics m;
  for (std::size_t j = 0; j < T; ++j) m.acc += R[T - 1][j];
  m.acc /= double(T);
  if (T == 1) return m;
  for (std::size_t j = 0; j + 1 < T; ++j) {
    m.bwt += R[T - 1][j] - R[j][j];
    m.forgetting += forgetting(R, T - 1, j);
  }
  m.bwt /= double(T - 1);
  m.forgetting /= double(T - 1);
  for (std::size_t j = 1; j < T; ++j) m.fwt += R[j - 1][j] - b[j];
  m.fwt /= double(T - 1);
  return m;
}

double forgetting(const Matrix& R, std::size_t i, std::size_t j) {
  if (j >= i || i >= R.size()) return 0.0;
  double best = -INFINITY;
  for (std::size_t l = j; l < i; ++l) best = std::max(best, R[l][j]);
  return best - R[i][j];
}

ContinualMetrics joint_metrics(const Matrix& R) {
  if (R.size() != 1 || R[0].empty()) throw EngineError("joint_metrics: one row expected");
  ContinualMetrics m;
  for (double a : R[0]) m.acc += a;
  m.acc /= double(R[0].size());
  return m;
}

double fitness_seed(double best_val_loss, double final_train_loss, double train_seconds,
                    const SeedFitnessWeights& w) {
  const double f =
      -(w.val_loss * best_val_loss + w.train_loss * final_train_loss + w.minutes * train_seconds / 60);
  return std::isfinite(f) ? f : kWorstFitness;
}

double fitness_continual(const ContinualMetrics& m, const ContinualFitnessWeights& w) {
  const double f = w.acc * m.acc + w.bwt * m.bwt;
  return std::isfinite(f) ? f : kWorstFitness;
}

Interval mean_ci95(const std::vector<double>& v) {
  Interval r;
  r.n = int(v.size());
  if (v.empty()) return r;
  for (double x : v) r.mean += x;
  r.mean /= double(v.size());
  if (v.size() < 2) {
    r.half_width = NAN;
    return r;
  }
  double ss = 0;
  for (double x : v) ss += (x - r.mean) * (x - r.mean);
  r.sd = std::sqrt(ss / double(v.size() - 1));
  // t_{0.975, df} for df = 1…30, then the normal quantile (within 2% from df 30 on).
  static constexpr double t[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  const std::size_t df = v.size() - 1;
  r.half_width = (df <= std::size(t) ? t[df - 1] : 1.960) * r.sd / std::sqrt(double(v.size()));
  return r;
}

}  // namespace evoplast::engine
