// The dataset registry: where each data set lives, its checksums and the
// normalisation constants; and the data folder's resolution.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/idx.hpp"

namespace evoplast::io {

struct DatasetFile {
  const char* stem;  // file name without .gz; either form is accepted
  const char* md5;   // of the uncompressed file
};

struct DatasetInfo {
  const char* name;     // "mnist", "fashion"
  const char* subdir;   // under the data folder
  int classes;
  float mean, stddev;   // of the training pixels in [0, 1], for normalisation
  DatasetFile train_images, train_labels, test_images, test_labels;
};

// Every registered data set, and one by name (throws IoError naming the valid ones).
const std::vector<DatasetInfo>& datasets();
const DatasetInfo& dataset_info(std::string_view name);

// The data folder: the explicit option if given, else $EVOPLAST_DATA_DIR, else
// the project's data/ folder (where scripts/setup.sh puts the files).
std::filesystem::path resolve_data_dir(const std::optional<std::string>& option);

struct Dataset {
  const DatasetInfo* info = nullptr;
  ImageSet train;  // 60 000 for MNIST / FashionMNIST
  ImageSet test;   // 10 000
};

// Loads the four files of `name` from data_dir/<subdir>/. With verify, each
// file's MD5 must match the registry (a mismatch says which file and what to do).
Dataset load_dataset(std::string_view name, const std::filesystem::path& data_dir,
                     bool verify = true);

}  // namespace evoplast::io
