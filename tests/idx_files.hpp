// Writes IDX files, good and bad, for the reader's tests.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace idx_files {

inline std::vector<std::uint8_t> header(std::uint8_t type, const std::vector<std::uint32_t>& dims) {
  std::vector<std::uint8_t> h = {0, 0, type, std::uint8_t(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) h.push_back(std::uint8_t(d >> s));
  return h;
}

inline void write(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes,
                  bool gzip = false) {
  if (gzip) {
    gzFile f = gzopen(path.string().c_str(), "wb");
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
}

// A well-formed unsigned-byte IDX file: header + payload.
inline std::vector<std::uint8_t> file(const std::vector<std::uint32_t>& dims,
                                      const std::vector<std::uint8_t>& payload) {
  auto b = header(0x08, dims);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// n images of rows×cols with pixel (i, r, c) = (i + r + c) % 256, and labels i % classes.
inline void write_set(const std::filesystem::path& dir, const std::string& prefix, int n, int rows,
                      int cols, int classes, bool gzip) {
  std::vector<std::uint8_t> px, lb;
  for (int i = 0; i < n; ++i) {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) px.push_back(std::uint8_t((i + r + c) % 256));
    lb.push_back(std::uint8_t(i % classes));
  }
  const std::string ext = gzip ? ".gz" : "";
  write(dir / (prefix + "-images-idx3-ubyte" + ext),
        file({std::uint32_t(n), std::uint32_t(rows), std::uint32_t(cols)}, px), gzip);
  write(dir / (prefix + "-labels-idx1-ubyte" + ext), file({std::uint32_t(n)}, lb), gzip);
}

}  // namespace idx_files
