#include "engine/protocol.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <numeric>
#include <random>

#include "engine/errors.hpp"

namespace evoplast::engine {
namespace {

const io::Dataset& need(const std::map<std::string, io::Dataset>& d, const std::string& name) {
  auto it = d.find(name);
  if (it == d.end()) throw EngineError(fmt::format("protocol needs the '{}' data set", name));
  return it->second;
}

std::vector<std::int32_t> take(const std::vector<std::int32_t>& v, std::int64_t limit) {
  if (limit <= 0 || std::int64_t(v.size()) <= limit) return v;
  return {v.begin(), v.begin() + limit};
}

// The view of `data` restricted to `classes`; train from the head of the
// training split, val from its held-out tail.
TaskView class_view(const io::Dataset& data, const std::vector<int>& classes,
                    const ProtocolConfig& c) {
  TaskView t;
  t.data = &data;
  std::array<bool, 256> in{};
  for (int k : classes) in[std::size_t(k)] = true;
  const std::int64_t pool = data.train.count - c.validation;
  for (std::int64_t i = 0; i < data.train.count; ++i)
    if (in[data.train.labels[std::size_t(i)]]) (i < pool ? t.train : t.val).push_back(std::int32_t(i));
  for (std::int64_t i = 0; i < data.test.count; ++i)
    if (in[data.test.labels[std::size_t(i)]]) t.test.push_back(std::int32_t(i));
  t.train = take(t.train, c.train_per_task);
  t.val = take(t.val, c.val_per_task);
  t.test = take(t.test, c.test_per_task);
  for (int k = 0; k < 10; ++k) t.label_map[std::size_t(k)] = std::int8_t(k);
  return t;
}

std::vector<int> all_classes() {
  std::vector<int> v(10);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

void parse_protocol_name(const std::string& name, ProtocolConfig& c) {
  if (name == "iid") c.kind = "iid";
  else if (name == "sequence") c.kind = "sequence";
  else if (name.starts_with("split-")) {
    c.kind = "split";
    c.scenario = name.substr(6);
    if (c.scenario != "task" && c.scenario != "domain" && c.scenario != "class")
      throw EngineError(fmt::format("--protocol {}: split-task, split-domain or split-class", name));
  } else if (name.starts_with("permuted")) {
    c.kind = "permuted";
    if (name.size() > 8) {
      // The whole rest must be the number: "permuted3x" is no protocol.
      const char* first = name.data() + 8;
      const char* last = name.data() + name.size();
      const auto [end, ec] = std::from_chars(first, last, c.tasks);
      if (ec != std::errc() || end != last) c.tasks = 0;
      if (c.tasks < 1 || c.tasks > 100)
        throw EngineError(fmt::format("--protocol {}: permutedT with T in [1, 100]", name));
    }
  } else {
    throw EngineError(fmt::format("--protocol '{}': choose iid, split-task, split-domain, "
                                  "split-class, permuted (or permutedT, e.g. permuted3), sequence",
                                  name));
  }
}

std::map<std::string, io::Dataset> load_protocol_datasets(const ProtocolConfig& c,
                                                          const std::filesystem::path& data_dir, bool verify) {
  std::map<std::string, io::Dataset> d;
  if (c.kind == "sequence")
    for (const char* name : {"mnist", "fashion"}) d[name] = io::load_dataset(name, data_dir, verify);
  else
    d[c.dataset] = io::load_dataset(c.dataset, data_dir, verify);
  return d;
}

Protocol make_protocol(const ProtocolConfig& c, const std::map<std::string, io::Dataset>& ds) {
  Protocol p;
  std::mt19937_64 rng(c.seed * 0x9E3779B97F4A7C15ull + 17);
  if (c.kind == "iid") {
    p.name = "iid " + c.dataset;
    p.tasks.push_back(class_view(need(ds, c.dataset), all_classes(), c));
    p.tasks.back().name = c.dataset;
  } else if (c.kind == "split") {
    p.name = "split-" + c.scenario + " " + c.dataset;
    std::vector<int> order = all_classes();
    std::shuffle(order.begin(), order.end(), rng);
    p.classes = c.scenario == "domain" ? 2 : 10;
    for (int t = 0; t < 5; ++t) {
      const int a = order[std::size_t(2 * t)], b = order[std::size_t(2 * t + 1)];
      TaskView v = class_view(need(ds, c.dataset), {a, b}, c);
      v.name = fmt::format("classes {},{}", a, b);
      if (c.scenario == "domain") {
        v.label_map[std::size_t(a)] = 0;  // first class of the pair → 0, second → 1
        v.label_map[std::size_t(b)] = 1;
      } else if (c.scenario == "task") {
        v.head.assign(10, 0);
        v.head[std::size_t(a)] = v.head[std::size_t(b)] = 1;
      }
      p.tasks.push_back(std::move(v));
    }
  } else if (c.kind == "permuted") {
    p.name = fmt::format("permuted{} {}", c.tasks, c.dataset);
    const io::Dataset& d = need(ds, c.dataset);
    const std::size_t px = std::size_t(d.train.rows) * d.train.cols;
    for (int t = 0; t < c.tasks; ++t) {
      TaskView v = class_view(d, all_classes(), c);
      v.name = fmt::format("perm {}", t);
      v.permutation.resize(px);
      std::iota(v.permutation.begin(), v.permutation.end(), 0);
      std::shuffle(v.permutation.begin(), v.permutation.end(), rng);
      p.tasks.push_back(std::move(v));
    }
  } else if (c.kind == "sequence") {
    p.name = "sequence mnist→fashion";
    for (const char* name : {"mnist", "fashion"}) {
      p.tasks.push_back(class_view(need(ds, name), all_classes(), c));
      p.tasks.back().name = name;
    }
  } else {
    throw EngineError(fmt::format("protocol kind '{}': iid, split, permuted or sequence", c.kind));
  }
  for (std::size_t t = 0; t < p.tasks.size(); ++t) {
    if (p.tasks[t].train.empty() || p.tasks[t].val.empty() || p.tasks[t].test.empty())
      throw EngineError(fmt::format("protocol {}: task {} has no training, validation or test "
                                    "images; check the limits and --validation",
                                    p.name, t));
    std::vector<Sample> phase;
    for (std::int32_t i : p.tasks[t].train) phase.push_back({std::int32_t(t), i});
    p.phases.push_back(std::move(phase));
  }
  return p;
}

Protocol make_joint(const Protocol& p) {
  Protocol j = p;
  j.name = "joint " + p.name;
  j.joint = true;
  j.phases.assign(1, {});
  for (const auto& phase : p.phases) j.phases[0].insert(j.phases[0].end(), phase.begin(), phase.end());
  return j;
}

void normalise_images(const std::uint8_t* images, std::size_t pixels, float mean, float stddev,
                      float* out) {
  const float scale = 1.0f / (255.0f * stddev), shift = mean / stddev;
  for (std::size_t i = 0; i < pixels; ++i) out[i] = float(images[i]) * scale - shift;
}

void assemble_batch(const Protocol& p, const Sample* samples, int count, Split split,
                    BatchHost& out) {
  const io::Dataset& first = *p.tasks[std::size_t(samples[0].task)].data;
  const std::size_t px = std::size_t(first.train.rows) * first.train.cols;
  out.x.resize(std::size_t(count) * px);
  out.y.resize(std::size_t(count));
  out.allowed.assign(std::size_t(count) * p.classes, 1);
  out.masked = false;
  std::vector<float> plain(px);
  for (int n = 0; n < count; ++n) {
    const TaskView& t = p.tasks[std::size_t(samples[n].task)];
    const io::ImageSet& set = split == Split::test ? t.data->test : t.data->train;
    const std::size_t idx = std::size_t(samples[n].index);
    float* dst = out.x.data() + std::size_t(n) * px;
    if (t.permutation.empty()) {
      normalise_images(set.images.data() + idx * px, px, t.data->info->mean, t.data->info->stddev,
                       dst);
    } else {
      normalise_images(set.images.data() + idx * px, px, t.data->info->mean, t.data->info->stddev,
                       plain.data());
      for (std::size_t i = 0; i < px; ++i) dst[i] = plain[t.permutation[i]];
    }
    out.y[std::size_t(n)] = t.label_map[set.labels[idx]];
    if (!t.head.empty()) {
      std::copy(t.head.begin(), t.head.end(), out.allowed.begin() + std::ptrdiff_t(n) * p.classes);
      out.masked = true;
    }
  }
}

}  // namespace evoplast::engine
