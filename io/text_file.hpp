// Reading a whole text file (a config, a rule, a run's records), bounded
// where the file has no size: the rule library reads its files here too, so
// this stays apart from the run directory's code.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>

#include "io/errors.hpp"

namespace evoplast::io {

// The whole of a text file; from a pipe or a device (not a regular file) at
// most kMaxStreamedText bytes, more refused. Throws IoError naming the file.
constexpr std::size_t kMaxStreamedText = std::size_t(64) << 20;
std::string read_text(const std::filesystem::path& path);

}  // namespace evoplast::io
