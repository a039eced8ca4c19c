// Files of a run directory, written so that a kill at any moment leaves
// either the old or the new version (write to a temporary name, then rename).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/errors.hpp"

namespace evoplast::io {

// Creates dir (and parents) and proves it writable; throws IoError naming it.
void prepare_run_dir(const std::filesystem::path& dir);

// Creates a new run directory: `base` itself, or base-2, base-3, … where it
// exists (mkdir is atomic: two runs started in the same second get two).
std::filesystem::path create_new_run_dir(const std::filesystem::path& base);

// A new runs/<name>-<YYYYmmdd-HHMMSS> (create_new_run_dir: -2, -3, … where taken).
std::filesystem::path create_stamped_run_dir(const std::string& name);

// True when dir does not exist or holds nothing.
bool is_empty_dir(const std::filesystem::path& dir);

// --out DIR for an output folder: refused unless empty or new (never another
// run's or the user's files); then created and proven writable.
void prepare_empty_out_dir(const std::filesystem::path& dir);

// The output folder of one piece of work (a run, a training, an
// evaluation): `out` where given (refused unless empty or new:
// prepare_empty_out_dir), else a new runs/<stamp_name>-<time>. It was new or
// empty when the work began, so until keep() — once the work has written a
// result worth keeping — a failure puts it back as it was: removed where it
// was made here (and so are folders made above it, runs/ for one, while
// they are empty), emptied where it was an empty folder.
class OutputDir {
 public:
  OutputDir(const std::filesystem::path& out, const std::string& stamp_name);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::filesystem::path& path() const { return dir_; }
  void keep() { kept_ = true; }

 private:
  void remove_what_was_made() const;

  std::vector<std::filesystem::path> made_parents_;  // innermost first
  std::filesystem::path dir_;
  bool created_ = true, kept_ = false;
};

// The one writer of a run directory: an OS lock (flock on DIR/.lock) held
// until this object is destroyed or the process ends, however it ends. A
// second writer — another run, or a --resume of a live run — is refused
// with an IoError naming the process that holds it.
class RunLock {
 public:
  explicit RunLock(const std::filesystem::path& dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

void write_atomically(const std::filesystem::path& path, const std::string& text);

// Appends one line; returns the file's size afterwards.
std::uint64_t append_line(const std::filesystem::path& path, const std::string& line);
// Cuts a file back to `bytes` (drops the lines of an interrupted generation).
void truncate_to(const std::filesystem::path& path, std::uint64_t bytes);

}  // namespace evoplast::io
