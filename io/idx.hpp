// IDX files (LeCun's MNIST format), raw or gzip-compressed (detected by content).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/errors.hpp"

namespace evoplast::io {

class IdxError : public IoError {
 public:
  enum class Kind {
    missing,           // no such file, or it cannot be opened
    bad_magic,         // first two bytes not zero, or a dimension count of 0 or > 4
    unsupported_type,  // a type code other than 0x08 (unsigned byte)
    bad_dimensions,    // dimensions the file cannot hold (zero, overflow, or more data than present)
    truncated,         // the file ends before the data the header announces
    trailing_data,     // more bytes than the header announces
    corrupt,           // the gzip stream is damaged
    count_mismatch,    // images and labels disagree on the count
    label_range,       // a label outside [0, classes)
  };
  IdxError(Kind kind, const std::string& what) : IoError(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct IdxArray {
  std::vector<std::uint32_t> dims;  // e.g. (count, rows, cols) for images, (count) for labels
  std::vector<std::uint8_t> data;   // row-major, product(dims) bytes
  std::string md5;                  // MD5 of the whole uncompressed file, header included
};

// Reads an unsigned-byte IDX file. Memory is allocated only for bytes that are
// really in the file, never for what a header merely claims.
IdxArray read_idx(const std::filesystem::path& path);

// A labelled image set: images (count, rows, cols) uint8, labels (count) in [0, classes).
struct ImageSet {
  std::int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<std::uint8_t> images;  // (count, rows, cols)
  std::vector<std::uint8_t> labels;  // (count)
  std::string images_md5, labels_md5;
};

ImageSet read_image_set(const std::filesystem::path& images, const std::filesystem::path& labels,
                        int classes);

}  // namespace evoplast::io
