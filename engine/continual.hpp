// Runs a continual-learning protocol for a population of nets, each learning
// by its own rule, on one shared stream of minibatches; evaluates every net on
// every task after every phase (validation and test), giving accuracy matrices.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "engine/metrics.hpp"
#include "engine/protocol.hpp"
#include "engine/rule.hpp"

namespace evoplast::engine {

struct ContinualConfig {
  std::string net = "mlp400x2";
  int epochs = 1;              // per phase
  int batch = 64;
  float lr = 1.0f;             // η before each rule's lr_scale and step γ
  float rho = 0.9f, eps = 1e-6f;
  int eval_batch = 256;
  std::uint64_t seed = 1;      // initial weights, shuffling, dropout, feedback weights
  int fisher_samples = 200;    // EWC: samples per task for the diagonal Fisher
  bool eval_every_epoch = false;  // validation curves (the seed's fitness and Figure 1)
  int first_net = 0;           // the rules are nets first_net… of a larger population (PopulationNet::set_first_net)
};

struct NetResult {
  Matrix R_val, R_test, L_val, L_test;   // (phases × tasks) accuracy in [0, 1], mean loss
  std::vector<double> b_val, b_test;     // (tasks) accuracy before any training (for FWT)
  std::vector<std::vector<float>> train_loss;  // (phases × epochs)
  // With eval_every_epoch: after every epoch, mean validation loss and
  // accuracy over the tasks trained so far (all tasks when joint).
  std::vector<float> epoch_val_loss, epoch_val_acc;
  ContinualMetrics val, test;
  bool diverged = false;
  double fitness = 0;          // fitness_continual on validation, or kWorstFitness
};

struct ContinualResult {
  std::vector<NetResult> nets;  // (P)
  double seconds = 0, train_seconds = 0;
  std::int64_t images_trained = 0;  // per net
};

// How a run scores a net: the seed's fitness (best validation loss, final
// training loss, time) or the continual one (ACC + BWT on validation data).
struct FitnessSpec {
  std::string kind = "continual";  // seed | continual
  SeedFitnessWeights seed;
  ContinualFitnessWeights continual;
};
// Net i's fitness on one protocol's result (kWorstFitness where it diverged).
double net_fitness(const ContinualResult& result, std::size_t i, const FitnessSpec& spec);

// rules and ewc_lambda: one per net (λ = 0: no EWC).
ContinualResult run_continual(Backend& backend, const Protocol& protocol,
                              const std::vector<Rule>& rules, const std::vector<float>& ewc_lambda,
                              const ContinualConfig& config,
                              const std::function<void(const std::string&)>& progress = {});

}  // namespace evoplast::engine
