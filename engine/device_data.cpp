#include "engine/device_data.hpp"

#include <algorithm>
#include <numeric>

#include "engine/errors.hpp"
#include "engine/network.hpp"

namespace evoplast::engine {

DeviceData::DeviceData(Backend& backend, const Protocol& p, int max_batch)
    : backend_(backend), classes_(p.classes), max_batch_(max_batch) {
  const io::ImageSet& first = p.tasks.at(0).data->train;
  pixels_ = first.rows * first.cols;
  // Every (data set, split) once, in task order.
  std::vector<const io::ImageSet*> sets;
  std::int32_t total = 0;
  for (const TaskView& t : p.tasks)
    for (int split : {0, 1}) {  // 0: the training split (train and val views), 1: test
      const auto key = std::make_pair(t.data, split);
      if (base_.count(key)) continue;
      const io::ImageSet& set = split == 0 ? t.data->train : t.data->test;
      if (set.rows * set.cols != pixels_) throw EngineError("protocol mixes image sizes");
      base_[key] = total;
      total += std::int32_t(set.count);
      sets.push_back(&set);
    }
  std::vector<std::uint8_t> images, labels;
  images.reserve(std::size_t(total) * pixels_);
  for (const io::ImageSet* s : sets) {
    images.insert(images.end(), s->images.begin(), s->images.end());
    labels.insert(labels.end(), s->labels.begin(), s->labels.end());
  }
  images_ = Buffer<std::uint8_t>(backend_, images.size());
  labels_ = Buffer<std::uint8_t>(backend_, labels.size());
  images_.upload(images);
  labels_.upload(labels);

  const std::size_t T = p.tasks.size();
  std::vector<float> mean(T), stddev(T);
  std::vector<std::uint16_t> perm(T * pixels_);
  std::vector<std::int8_t> label_map(T * 10);
  std::vector<std::uint8_t> head(T * classes_, 1);
  for (std::size_t t = 0; t < T; ++t) {
    const TaskView& v = p.tasks[t];
    mean[t] = v.data->info->mean;
    stddev[t] = v.data->info->stddev;
    if (v.permutation.empty())
      std::iota(perm.begin() + std::ptrdiff_t(t * pixels_), perm.begin() + std::ptrdiff_t((t + 1) * pixels_), 0);
    else
      std::copy(v.permutation.begin(), v.permutation.end(), perm.begin() + std::ptrdiff_t(t * pixels_));
    std::copy(v.label_map.begin(), v.label_map.end(), label_map.begin() + std::ptrdiff_t(t * 10));
    if (!v.head.empty()) {
      has_heads_ = true;
      std::copy(v.head.begin(), v.head.end(), head.begin() + std::ptrdiff_t(t * classes_));
    }
    task_base_[int(Split::train)].push_back(base_.at({v.data, 0}));
    task_base_[int(Split::val)].push_back(base_.at({v.data, 0}));
    task_base_[int(Split::test)].push_back(base_.at({v.data, 1}));
  }
  mean_ = Buffer<float>(backend_, T);
  stddev_ = Buffer<float>(backend_, T);
  perm_ = Buffer<std::uint16_t>(backend_, perm.size());
  label_map_ = Buffer<std::int8_t>(backend_, label_map.size());
  head_ = Buffer<std::uint8_t>(backend_, head.size());
  mean_.upload(mean);
  stddev_.upload(stddev);
  perm_.upload(perm);
  label_map_.upload(label_map);
  head_.upload(head);
  index_ = Buffer<std::int32_t>(backend_, std::size_t(max_batch));
  task_ = Buffer<std::int32_t>(backend_, std::size_t(max_batch));
  x_ = Buffer<float>(backend_, std::size_t(max_batch) * pixels_);
  y_ = Buffer<std::int32_t>(backend_, std::size_t(max_batch));
  allowed_ = Buffer<std::uint8_t>(backend_, std::size_t(max_batch) * classes_);
}

void DeviceData::load(const Sample* samples, int count, Split split) {
  if (count < 1 || count > max_batch_) throw EngineError("DeviceData::load: batch outside [1, max batch]");
  index_host_.resize(std::size_t(count));
  task_host_.resize(std::size_t(count));
  const auto& bases = task_base_[int(split)];
  for (int n = 0; n < count; ++n) {
    task_host_[std::size_t(n)] = samples[n].task;
    index_host_[std::size_t(n)] = bases[std::size_t(samples[n].task)] + samples[n].index;
  }
  index_.upload(std::span<const std::int32_t>(index_host_.data(), std::size_t(count)));
  task_.upload(std::span<const std::int32_t>(task_host_.data(), std::size_t(count)));
  backend_.gather_batch(GatherShape{count, pixels_, classes_}, images_.data(), labels_.data(), nullptr,
                        index_.data(), task_.data(), mean_.data(), stddev_.data(), perm_.data(), label_map_.data(), head_.data(),
                        x_.data(), y_.data(), allowed_.data());
}

void DeviceData::set_phase(const std::vector<Sample>& samples) {
  phase_ = samples;
  std::vector<std::int32_t> index(samples.size()), task(samples.size());
  const auto& bases = task_base_[int(Split::train)];
  for (std::size_t i = 0; i < samples.size(); ++i) {
    task[i] = samples[i].task;
    index[i] = bases[std::size_t(samples[i].task)] + samples[i].index;
  }
  phase_index_ = Buffer<std::int32_t>(backend_, samples.size());
  phase_task_ = Buffer<std::int32_t>(backend_, samples.size());
  order_ = Buffer<std::int32_t>(backend_, samples.size());
  phase_index_.upload(index);
  phase_task_.upload(task);
}

void DeviceData::shuffle(std::uint64_t seed) { backend_.shuffle_order(phase_.size(), seed, order_.data()); }

void DeviceData::set_order(const std::vector<std::int32_t>& order) {
  if (order.size() != phase_.size()) throw EngineError("DeviceData::set_order: one entry per sample of the phase");
  order_.upload(order);
}

void DeviceData::load_shuffled(std::size_t offset, int count) {
  if (count < 1 || count > max_batch_ || offset + std::size_t(count) > phase_.size())
    throw EngineError("DeviceData::load_shuffled: batch outside the phase");
  backend_.gather_batch(GatherShape{count, pixels_, classes_}, images_.data(), labels_.data(),
                        order_.data() + offset, phase_index_.data(), phase_task_.data(), mean_.data(), stddev_.data(),
                        perm_.data(), label_map_.data(), head_.data(), x_.data(), y_.data(), allowed_.data());
}

std::vector<Sample> DeviceData::shuffled_samples(std::size_t count) {
  count = std::min(count, phase_.size());
  std::vector<std::int32_t> order(count);
  if (count) backend_.to_host(order.data(), order_.data(), count * sizeof(std::int32_t));
  std::vector<Sample> out;
  for (std::int32_t i : order) out.push_back(phase_[std::size_t(i)]);
  return out;
}

EvalResult evaluate(PopulationNet& net, DeviceData& data, int task, const std::vector<std::int32_t>& indices,
                    Split split, int batch) {
  const int P = net.population();
  batch = std::min(batch, net.max_batch());
  std::vector<double> loss_sum(std::size_t(P), 0.0);
  std::vector<std::int64_t> correct(std::size_t(P), 0);
  std::vector<Sample> samples;
  for (std::size_t n0 = 0; n0 < indices.size(); n0 += std::size_t(batch)) {
    const int N = int(std::min<std::size_t>(std::size_t(batch), indices.size() - n0));
    samples.clear();
    for (int n = 0; n < N; ++n) samples.push_back({task, indices[n0 + std::size_t(n)]});
    data.load(samples.data(), N, split);
    net.set_head_mask(data.head_mask());
    net.forward(data.x(), N, /*train=*/false);
    net.score(data.y(), N, loss_sum, correct);
  }
  net.set_head_mask(nullptr);
  EvalResult r;
  for (int p = 0; p < P; ++p) {
    r.loss.push_back(loss_sum[std::size_t(p)] / double(indices.size()));
    r.acc.push_back(double(correct[std::size_t(p)]) / double(indices.size()));
  }
  return r;
}

}  // namespace evoplast::engine
