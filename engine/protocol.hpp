// Continual-learning protocols: tasks are views of a data set (index lists,
// a pixel permutation, a label map, an output mask) applied on the fly when a
// minibatch is assembled; nothing of the data set is copied.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/dataset.hpp"

namespace evoplast::engine {

struct TaskView {
  std::string name;                           // e.g. "classes 3,7", "perm 2", "fashion"
  const io::Dataset* data = nullptr;
  std::vector<std::int32_t> train, val;       // indices into data->train (val: the held-out tail)
  std::vector<std::int32_t> test;             // indices into data->test
  std::vector<std::uint16_t> permutation;     // pixel i of the view = pixel permutation[i]; empty: identity
  std::array<std::int8_t, 10> label_map{};    // data label → output label
  std::vector<std::uint8_t> head;             // (classes) outputs allowed; empty: all (shared head)
};

// One training phase: samples (task, index into that task's data->train).
struct Sample {
  std::int32_t task, index;
};

struct Protocol {
  std::string name;       // "split-domain", "permuted", "joint split-class", …
  int classes = 10;       // outputs of the network
  std::vector<TaskView> tasks;                   // evaluated after every phase
  std::vector<std::vector<Sample>> phases;       // trained in order
  bool joint = false;
};

struct ProtocolConfig {
  std::string kind = "split";      // iid | split | permuted | sequence
  std::string scenario = "class";  // split only: task | domain | class
  std::string dataset = "mnist";   // iid, split, permuted: mnist | fashion
  int tasks = 10;                  // permuted: number of permutations
  std::int64_t validation = 10000; // held out from the end of each training split
  std::int64_t train_per_task = 0; // 0: all
  std::int64_t val_per_task = 0;
  std::int64_t test_per_task = 0;
  std::uint64_t seed = 1;          // class order (split), permutations (permuted)
};

// Loads the data sets a protocol needs (sequence: mnist and fashion; else c.dataset).
std::map<std::string, io::Dataset> load_protocol_datasets(const ProtocolConfig& c,
                                                          const std::filesystem::path& data_dir, bool verify);

// datasets: name → loaded data set ("sequence" needs mnist and fashion).
Protocol make_protocol(const ProtocolConfig& c, const std::map<std::string, io::Dataset>& datasets);

// The upper bound: one phase holding every task's samples, evaluated per task.
Protocol make_joint(const Protocol& p);

// Parses "split-class", "split-domain", "split-task", "permuted", "permuted5",
// "sequence", "iid" into kind/scenario/tasks; throws EngineError otherwise.
void parse_protocol_name(const std::string& name, ProtocolConfig& c);

// Normalises images (count, H, W) uint8 → float ((x/255 − mean) / std).
void normalise_images(const std::uint8_t* images, std::size_t pixels, float mean, float stddev, float* out);

// Assembles a minibatch from `count` samples: images normalised with their
// data set's constants and permuted, labels mapped, head masks per row.
struct BatchHost {
  std::vector<float> x;              // (N, 1, rows, cols)
  std::vector<std::int32_t> y;       // (N)
  std::vector<std::uint8_t> allowed; // (N, classes)
  bool masked = false;               // some row has a restricted head
};
enum class Split { train, val, test };
void assemble_batch(const Protocol& p, const Sample* samples, int count, Split split,
                    BatchHost& out);

}  // namespace evoplast::engine
