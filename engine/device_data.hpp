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
  // allowed (N, classes) for `count` samples of one split.
  void load(const Sample* samples, int count, Split split);

  const float* x() const { return x_.data(); }
  const std::int32_t* y() const { return y_.data(); }
  // The allowed-outputs mask, or null where every task shares the whole head.
  const std::uint8_t* head_mask() const { return has_heads_ ? allowed_.data() : nullptr; }
  int pixels() const { return pixels_; }

 private:
  Backend& backend_;
  const Protocol& protocol_;
  int pixels_ = 0, classes_ = 10, max_batch_ = 0;
  bool has_heads_ = false;
  std::map<std::pair<const io::Dataset*, int>, std::int32_t> base_;  // (data set, split) → first image
  std::vector<std::int32_t> task_base_[3];                            // per split, per task
  Buffer<std::uint8_t> images_, labels_, head_;
  Buffer<float> mean_, stddev_;
  Buffer<std::uint16_t> perm_;
  Buffer<std::int8_t> label_map_;
  Buffer<std::int32_t> index_, task_;
  Buffer<float> x_;
  Buffer<std::int32_t> y_;
  Buffer<std::uint8_t> allowed_;
  std::vector<std::int32_t> index_host_, task_host_;
};

}  // namespace evoplast::engine
