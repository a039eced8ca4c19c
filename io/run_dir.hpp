// Files of a run directory, written so that a kill at any moment leaves
// either the old or the new version (write to a temporary name, then rename).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "io/errors.hpp"

namespace evoplast::io {

// Creates dir (and parents) and proves it writable; throws IoError naming it.
void prepare_run_dir(const std::filesystem::path& dir);

void write_atomically(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);  // throws IoError naming the file

// Appends one line; returns the file's size afterwards.
std::uint64_t append_line(const std::filesystem::path& path, const std::string& line);
// Cuts a file back to `bytes` (drops the lines of an interrupted generation).
void truncate_to(const std::filesystem::path& path, std::uint64_t bytes);

}  // namespace evoplast::io
