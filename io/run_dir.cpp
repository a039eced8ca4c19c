#include "io/run_dir.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <system_error>
#include <vector>

namespace evoplast::io {

namespace fs = std::filesystem;

void prepare_run_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw IoError(fmt::format("run directory {}: cannot create it ({}); choose another with --out",
                              dir.string(), ec.message()));
  const fs::path probe = dir / ".write-test";
  {
    std::ofstream out(probe);
    out << "ok";
    if (!out)
      throw IoError(fmt::format("run directory {}: not writable; choose another with --out", dir.string()));
  }
  fs::remove(probe, ec);
}

fs::path create_new_run_dir(const fs::path& base) {
  std::error_code ec;
  if (base.has_parent_path()) fs::create_directories(base.parent_path(), ec);
  for (int i = 1; i < 10000; ++i) {
    const fs::path dir = i == 1 ? base : fs::path(base.string() + "-" + std::to_string(i));
    if (fs::create_directory(dir, ec)) return dir;
    if (ec)
      throw IoError(fmt::format("run directory {}: cannot create it ({}); choose another with --out", dir.string(),
                                ec.message()));
  }
  throw IoError(fmt::format("run directory {}: 9 999 runs of that name exist; choose another with --out",
                            base.string()));
}

fs::path create_stamped_run_dir(const std::string& name) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return create_new_run_dir(fs::path("runs") / fmt::format("{}-{}", name, stamp));
}

bool is_empty_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  return fs::is_directory(dir, ec) && fs::directory_iterator(dir, ec) == fs::directory_iterator();
}

void prepare_empty_out_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw IoError(fmt::format("--out {}: a file, not a folder; choose another --out", dir.string()));
  if (!is_empty_dir(dir))
    throw IoError(fmt::format("--out {}: the folder is not empty; choose an empty or new folder", dir.string()));
  prepare_run_dir(dir);
}

namespace {

// The folders above `path` that do not exist yet, innermost first: what
// making `path` will make besides it.
std::vector<fs::path> missing_parents(const fs::path& path) {
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = path.parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;  // a root that does not exist
  }
  return missing;
}

}  // namespace

OutputDir::OutputDir(const fs::path& out, const std::string& stamp_name)
    : made_parents_(missing_parents(out.empty() ? fs::path("runs") / stamp_name : out)) {
  try {
    if (out.empty()) {
      dir_ = create_stamped_run_dir(stamp_name);
      prepare_run_dir(dir_);
      return;
    }
    dir_ = out;
    created_ = !fs::exists(dir_);
    prepare_empty_out_dir(dir_);
  } catch (const IoError&) {  // the destructor of a half-made object does not run
    if (created_) remove_what_was_made();
    throw;
  }
}

OutputDir::~OutputDir() {
  if (kept_) return;
  if (created_) {
    remove_what_was_made();
    return;
  }
  std::error_code ec;
  std::vector<fs::path> entries;  // collected first: removing while iterating skips entries
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(it->path());
  for (const auto& entry : entries) fs::remove_all(entry, ec);
}

void OutputDir::remove_what_was_made() const {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
  // A parent made for it goes too, only while empty: another run may have
  // put its own folder there meanwhile (fs::remove leaves a full one).
  for (const auto& parent : made_parents_)
    if (!fs::remove(parent, ec)) break;
}

RunLock::RunLock(const fs::path& dir) {
  const fs::path path = dir / ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw IoError(fmt::format("run directory {}: cannot open its lock ({}); choose another with --out", dir.string(),
                              std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw IoError(fmt::format("run directory {} is in use by another evolve (pid {}): wait for it to finish, or "
                              "stop it before --resume",
                              dir.string(), n > 0 ? std::string(pid, std::size_t(n)) : std::string("unknown")));
  }
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size())) {
    // The lock holds all the same; only the pid shown to a second writer is missing.
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      const int err = errno;  // ENOSPC: the disk is full
      out.close();
      fs::remove(tmp, ec);  // no half-written file left behind
      throw IoError(fmt::format("{}: cannot write ({}){}", path.string(), std::strerror(err),
                                err == ENOSPC ? "; free some space and --resume the run" : ""));
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw IoError(fmt::format("{}: cannot replace ({})", path.string(), ec.message()));
  }
}

std::uint64_t append_line(const fs::path& path, const std::string& line) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << line << '\n';
  out.flush();
  if (!out)
    throw IoError(fmt::format("{}: cannot append ({}){}", path.string(), std::strerror(errno),
                              errno == ENOSPC ? "; free some space and --resume the run" : ""));
  return std::uint64_t(out.tellp());
}

void truncate_to(const fs::path& path, std::uint64_t bytes) {
  std::error_code ec;
  if (!fs::exists(path)) {
    if (bytes == 0) return;
    throw IoError(fmt::format("{}: missing, but the checkpoint expects {} bytes", path.string(), bytes));
  }
  const auto size = fs::file_size(path, ec);
  if (ec || size < bytes)
    throw IoError(fmt::format("{}: shorter than the checkpoint says ({} < {} bytes): the run "
                              "directory is damaged",
                              path.string(), size, bytes));
  fs::resize_file(path, bytes, ec);
  if (ec) throw IoError(fmt::format("{}: cannot truncate ({})", path.string(), ec.message()));
}

}  // namespace evoplast::io
