#include "io/run_dir.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <system_error>

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

void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw IoError(fmt::format("{}: cannot write", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw IoError(fmt::format("{}: cannot replace ({})", path.string(), ec.message()));
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint64_t append_line(const fs::path& path, const std::string& line) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << line << '\n';
  out.flush();
  if (!out) throw IoError(fmt::format("{}: cannot append", path.string()));
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
