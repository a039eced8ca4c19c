#include "io/dataset.hpp"

#include <fmt/format.h>

#include <cstdlib>

namespace evoplast::io {

const std::vector<DatasetInfo>& datasets() {
  static const std::vector<DatasetInfo> all = {
      {"mnist", "mnist", 10, 0.1307f, 0.3081f,
       {"train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"},
       {"train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"},
       {"t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"},
       {"t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"}},
      {"fashion", "fashion", 10, 0.2860f, 0.3530f,
       {"train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"},
       {"train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"},
       {"t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"},
       {"t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"}},
  };
  return all;
}

const DatasetInfo& dataset_info(std::string_view name) {
  std::string names;
  for (const auto& d : datasets()) {
    if (name == d.name) return d;
    names += names.empty() ? d.name : fmt::format(", {}", d.name);
  }
  throw IoError(fmt::format("unknown dataset '{}': choose one of {}", name, names));
}

std::filesystem::path resolve_data_dir(const std::optional<std::string>& option) {
  if (option && !option->empty()) return *option;
  if (const char* env = std::getenv("EVOPLAST_DATA_DIR"); env && *env) return env;
  return EVOPLAST_DEFAULT_DATA_DIR;
}

namespace {

std::filesystem::path locate(const std::filesystem::path& dir, const DatasetInfo& info,
                             const DatasetFile& f) {
  const auto raw = dir / f.stem;
  if (std::filesystem::exists(raw)) return raw;
  const auto gz = dir / (std::string(f.stem) + ".gz");
  if (std::filesystem::exists(gz)) return gz;
  throw IdxError(IdxError::Kind::missing,
                 fmt::format("{}: missing {} file (raw or .gz): run scripts/setup.sh, or put the "
                             "four {} IDX files in {} (or point --data-dir / EVOPLAST_DATA_DIR "
                             "at a folder holding {}/)",
                             raw.string(), info.name, info.name, dir.string(), info.subdir));
}

void check_md5(const std::filesystem::path& path, const std::string& got, const char* want) {
  if (got != want)
    throw IoError(fmt::format("{}: MD5 {} does not match the expected {}: the file is corrupt or "
                              "not the official one; delete it and run scripts/setup.sh (or pass "
                              "--no-verify to use it anyway)",
                              path.string(), got, want));
}

}  // namespace

Dataset load_dataset(std::string_view name, const std::filesystem::path& data_dir, bool verify) {
  const DatasetInfo& info = dataset_info(name);
  const auto dir = data_dir / info.subdir;
  Dataset d;
  d.info = &info;
  const auto tri = locate(dir, info, info.train_images), trl = locate(dir, info, info.train_labels);
  const auto tei = locate(dir, info, info.test_images), tel = locate(dir, info, info.test_labels);
  d.train = read_image_set(tri, trl, info.classes);
  d.test = read_image_set(tei, tel, info.classes);
  if (verify) {
    check_md5(tri, d.train.images_md5, info.train_images.md5);
    check_md5(trl, d.train.labels_md5, info.train_labels.md5);
    check_md5(tei, d.test.images_md5, info.test_images.md5);
    check_md5(tel, d.test.labels_md5, info.test_labels.md5);
  }
  return d;
}

}  // namespace evoplast::io
