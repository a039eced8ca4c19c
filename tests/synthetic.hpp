// A small learnable data set made in memory: class k lights up its own block
// of pixels, plus noise. For tests that need a Dataset without files.
#pragma once
#include <algorithm>
#include <random>
#include <vector>

#include <map>
#include <string>

#include "engine/protocol.hpp"
#include "io/dataset.hpp"

namespace synthetic {

inline const evoplast::io::DatasetInfo& info() {
  static const evoplast::io::DatasetInfo i{"synthetic", "synthetic", 10, 0.3f, 0.3f,
                                           {"-", ""}, {"-", ""}, {"-", ""}, {"-", ""}};
  return i;
}

// overlapping = false: class k lights pixels p ≡ k (mod 10), disjoint per
// class, so a net trained on new classes barely touches the old ones' weights.
// overlapping = true: class k is a shared base image plus a small random
// class pattern over every pixel (the same in every set) plus noise: classes
// share inputs, and learning new classes interferes with the old, as on MNIST.
inline evoplast::io::ImageSet make_set(int count, int side, std::uint32_t seed, bool overlapping = false) {
  evoplast::io::ImageSet s;
  s.count = count;
  s.rows = s.cols = side;
  std::mt19937 proto_rng(99);
  std::vector<int> prototype(std::size_t(10 * side * side));
  for (auto& v : prototype) v = 100 + int(proto_rng() % 60);  // a shared base, small class differences
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(0, 60);
  for (int i = 0; i < count; ++i) {
    const int label = int(rng() % 10);
    s.labels.push_back(std::uint8_t(label));
    for (int p = 0; p < side * side; ++p)
      s.images.push_back(std::uint8_t(
          overlapping ? std::min(255, prototype[std::size_t(label * side * side + p)] + noise(rng) / 2)
                      : noise(rng) + ((p % 10) == label ? 180 : 0)));
  }
  return s;
}

inline evoplast::io::Dataset make(int train = 600, int test = 200, int side = 6, bool overlapping = false) {
  evoplast::io::Dataset d;
  d.info = &info();
  d.train = make_set(train, side, 1, overlapping);
  d.test = make_set(test, side, 2, overlapping);
  return d;
}

// A protocol over a synthetic "mnist". Its tasks point into `datasets`, so
// the object stays where it was made.
struct Protocol {
  std::map<std::string, evoplast::io::Dataset> datasets;
  evoplast::engine::Protocol protocol;
  explicit Protocol(const std::string& name, int train = 400, int test = 120, std::int64_t validation = 100,
                    bool overlapping = false) {
    datasets.emplace("mnist", make(train, test, 6, overlapping));
    evoplast::engine::ProtocolConfig pc;
    evoplast::engine::parse_protocol_name(name, pc);
    pc.validation = validation;
    protocol = evoplast::engine::make_protocol(pc, datasets);
  }
  Protocol(const Protocol&) = delete;
  Protocol& operator=(const Protocol&) = delete;
};

}  // namespace synthetic
