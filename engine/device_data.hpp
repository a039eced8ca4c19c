// A protocol's data resident in the backend's memory: every image of every
// data set and split it uses, as uint8, uploaded once; the per-task tables
// (normalisation, permutation, label map, allowed outputs) beside them. A
// minibatch then costs one small upload of sample indices and one gather on
// the device — no image crosses from the host during training.
#pragma once
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "engine/backend.hpp"
#include "engine/protocol.hpp"

namespace evoplast::engine {

class DeviceData {
 public:
  DeviceData(Backend& backend, const Protocol& protocol, int max_batch);

  // Fills x (N, pixels), y (N) and, where the protocol has per-task heads,
  // allowed (N, classes) for `count` samples of one split (indices uploaded).
  void load(const Sample* samples, int count, Split split);

  // Training without host traffic: a phase's samples go up once; each epoch
  // is shuffled on the device (Backend::shuffle_order: the same order on CPU
  // and GPU); batches are then slices of that order.
  void set_phase(const std::vector<Sample>& samples);
  void shuffle(std::uint64_t seed);
  // Or an order of the phase's samples drawn elsewhere (one upload per epoch).
  void set_order(const std::vector<std::int32_t>& order);
  void load_shuffled(std::size_t offset, int count);
  // The first `count` samples of the current shuffled order (host; reads the device).
  std::vector<Sample> shuffled_samples(std::size_t count);

  const float* x() const { return x_.data(); }
  const std::int32_t* y() const { return y_.data(); }
  // The allowed-outputs mask, or null where every task shares the whole head.
  const std::uint8_t* head_mask() const { return has_heads_ ? allowed_.data() : nullptr; }
  int pixels() const { return pixels_; }

 private:
  Backend& backend_;
  int pixels_ = 0, classes_ = 10, max_batch_ = 0;
  bool has_heads_ = false;
  std::map<std::pair<const io::Dataset*, int>, std::int32_t> base_;  // (data set, split) → first image
  std::vector<std::int32_t> task_base_[3];                            // per split, per task
  Buffer<std::uint8_t> images_, labels_, head_;
  Buffer<float> mean_, stddev_;
  Buffer<std::uint16_t> perm_;
  Buffer<std::int8_t> label_map_;
  Buffer<std::int32_t> index_, task_;
  std::vector<Sample> phase_;
  Buffer<std::int32_t> phase_index_, phase_task_, order_;
  Buffer<float> x_;
  Buffer<std::int32_t> y_;
  Buffer<std::uint8_t> allowed_;
  std::vector<std::int32_t> index_host_, task_host_;
};

class PopulationNet;

// Mean loss and accuracy (in [0, 1]) of every net on the given images of one
// task's split, read through `data` with the task's head mask; (P) each.
struct EvalResult {
  std::vector<double> loss, acc;
};
EvalResult evaluate(PopulationNet& net, DeviceData& data, int task, const std::vector<std::int32_t>& indices,
                    Split split, int batch);

}  // namespace evoplast::engine
