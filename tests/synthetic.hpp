// A small learnable data set made in memory: class k lights up its own block
// of pixels, plus noise. For tests that need a Dataset without files.
#pragma once
#include <random>

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

inline evoplast::io::ImageSet make_set(int count, int side, std::uint32_t seed) {
  evoplast::io::ImageSet s;
  s.count = count;
  s.rows = s.cols = side;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(0, 60);
  for (int i = 0; i < count; ++i) {
    const int label = int(rng() % 10);
    s.labels.push_back(std::uint8_t(label));
    for (int p = 0; p < side * side; ++p)
      s.images.push_back(std::uint8_t(noise(rng) + ((p % 10) == label ? 180 : 0)));
  }
  return s;
}

inline evoplast::io::Dataset make(int train = 600, int test = 200, int side = 6) {
  evoplast::io::Dataset d;
  d.info = &info();
  d.train = make_set(train, side, 1);
  d.test = make_set(test, side, 2);
  return d;
}

// A protocol over a synthetic "mnist". Its tasks point into `datasets`, so
// the object stays where it was made.
struct Protocol {
  std::map<std::string, evoplast::io::Dataset> datasets;
  evoplast::engine::Protocol protocol;
  explicit Protocol(const std::string& name, int train = 400, int test = 120, std::int64_t validation = 100) {
    datasets.emplace("mnist", make(train, test));
    evoplast::engine::ProtocolConfig pc;
    evoplast::engine::parse_protocol_name(name, pc);
    pc.validation = validation;
    protocol = evoplast::engine::make_protocol(pc, datasets);
  }
  Protocol(const Protocol&) = delete;
  Protocol& operator=(const Protocol&) = delete;
};

}  // namespace synthetic
