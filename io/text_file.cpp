#include "io/text_file.hpp"

#include <fmt/format.h>

#include <fstream>

namespace evoplast::io {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (fs::is_directory(status)) throw IoError(fmt::format("{}: a folder, not a file", path.string()));
  if (!fs::exists(status)) throw IoError(fmt::format("{}: no such file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read", path.string()));
  // A pipe or a device (a process substitution, /dev/stdin) has no size to
  // check first, and one that never ends (/dev/zero) must not be read until
  // the memory runs out: it is read up to a cap, far above any config or rule.
  const bool capped = !fs::is_regular_file(status);
  std::string text;
  if (const auto size = fs::file_size(path, ec); !capped && !ec) text.reserve(std::size_t(size));
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, std::size_t(in.gcount()));
    if (capped && text.size() > kMaxStreamedText)
      throw IoError(fmt::format("{}: more than {} MiB from a pipe or device, not a regular file; give a file",
                                path.string(), kMaxStreamedText >> 20));
  }
  if (in.bad()) throw IoError(fmt::format("{}: cannot read", path.string()));
  return text;
}

}  // namespace evoplast::io
