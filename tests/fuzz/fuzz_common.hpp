// Shared by the fuzz targets: a private scratch folder per process, and the
// rule that a target may throw only the project's own one-line errors.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace fuzz {

// Removed when the process exits normally (libFuzzer's run ending at its
// time limit), so CI leaves nothing in /tmp; a crash leaves it for a look.
struct Scratch {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("evoplast-fuzz-" + std::to_string(::getpid()));
  Scratch() { std::filesystem::create_directories(dir); }
  ~Scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

inline const std::filesystem::path& scratch() {
  static const Scratch s;
  return s.dir;
}

inline void write_file(const std::filesystem::path& p, const std::uint8_t* data, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
}

inline std::string text(const std::uint8_t* data, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace fuzz
