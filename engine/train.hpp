// The seed's experiment: every net of the population trained by backprop on
// the i.i.d. stream of a data set, with per-epoch validation.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "engine/optimizer.hpp"
#include "io/dataset.hpp"

namespace evoplast::engine {

struct TrainConfig {
  std::string net = "cnn";
  int population = 1;
  int epochs = 14;
  int batch = 64;
  float lr = 1.0f;
  float gamma = 0.7f;
  OptimizerConfig optimizer;
  std::uint64_t seed = 1;
  std::int64_t train_limit = 0;  // 0: every training image not held out
  std::int64_t validation = 10000;  // the last images of the training split, held out
  std::int64_t test_limit = 0;      // 0: the whole test split
  int eval_batch = 256;
  bool same_init = true;  // every net starts from the same weights
};

struct EpochRecord {
  int epoch = 0;                 // 1-based
  float lr = 0;
  double train_seconds = 0;      // the training pass alone
  double seconds = 0;            // training + validation
  double network_images_per_s = 0;  // P · images / train_seconds
  std::vector<float> train_loss;  // (P) mean over the epoch's minibatches
  std::vector<float> val_loss;    // (P)
  std::vector<float> val_acc;     // (P) in [0, 1]
};

struct TrainResult {
  std::vector<EpochRecord> epochs;
  std::vector<float> test_loss, test_acc;  // (P)
  std::int64_t train_images = 0, val_images = 0, test_images = 0;
  double seconds = 0;
};

// The settings every training has — epochs, minibatch sizes, learning rate,
// the net — each refused by the option that sets it (EngineError).
void validate_training(int epochs, int batch, int eval_batch, float lr, const std::string& net);

// Throws EngineError naming the first setting out of range (the net's name
// included), before anything is printed, allocated or written; train_iid
// checks it again.
void validate(const TrainConfig& config, const io::Dataset& data);

TrainResult train_iid(Backend& backend, const io::Dataset& data, const TrainConfig& config,
                      const std::function<void(const EpochRecord&)>& on_epoch = {});

}  // namespace evoplast::engine
