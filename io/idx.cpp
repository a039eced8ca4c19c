#include "io/idx.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <system_error>

#include "io/md5.hpp"

namespace evoplast::io {
namespace {

using Kind = IdxError::Kind;

// A file read through zlib: gzip streams are inflated, other files pass through.
class GzFile {
 public:
  explicit GzFile(const std::filesystem::path& path) : path_(path.string()) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      throw IdxError(Kind::missing, fmt::format("{}: a folder where an IDX file belongs; remove it and run "
                                                "scripts/setup.sh",
                                                path_));
    if (!std::filesystem::is_regular_file(path, ec))
      throw IdxError(Kind::missing, fmt::format("{}: no such file (run scripts/setup.sh, or pass "
                                                "--data-dir / set EVOPLAST_DATA_DIR)",
                                                path_));
    file_ = gzopen(path_.c_str(), "rb");
    if (!file_) throw IdxError(Kind::missing, fmt::format("{}: cannot open for reading", path_));
    gzbuffer(file_, 1 << 17);
  }
  ~GzFile() {
    if (file_) gzclose(file_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  bool compressed() const { return gzdirect(file_) == 0; }

  // Reads up to `bytes`; returns the count read (short only at end of file).
  std::size_t read(void* dst, std::size_t bytes) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t done = 0;
    while (done < bytes) {
      const unsigned want = unsigned(std::min<std::size_t>(bytes - done, 1u << 30));
      const int got = gzread(file_, out + done, want);
      if (got < 0) {
        int errnum = 0;
        std::string msg = gzerror(file_, &errnum);
        if (msg.starts_with(path_ + ": ")) msg.erase(0, path_.size() + 2);  // zlib names the file too
        throw IdxError(Kind::corrupt, fmt::format("{}: damaged gzip data ({}); delete it and run "
                                                  "scripts/setup.sh again",
                                                  path_, msg));
      }
      if (got == 0) break;
      done += std::size_t(got);
    }
    return done;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

const char* type_name(unsigned code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
  }
}

}  // namespace

IdxArray read_idx(const std::filesystem::path& path) {
  const std::string name = path.string();
  GzFile file(path);
  Md5 md5;

  unsigned char magic[4];
  if (file.read(magic, 4) != 4)
    throw IdxError(Kind::truncated, fmt::format("{}: truncated: shorter than the 4-byte IDX magic "
                                                "number; re-fetch the file",
                                                name));
  md5.update(magic, 4);
  if (magic[0] != 0 || magic[1] != 0 || magic[3] == 0 || magic[3] > 4)
    throw IdxError(Kind::bad_magic,
                   fmt::format("{}: wrong magic {:02x}{:02x}{:02x}{:02x}: not an IDX file "
                               "(an unsigned-byte IDX file starts 00 00 08 0N, N = 1 to 4 dimensions)",
                               name, magic[0], magic[1], magic[2], magic[3]));
  if (magic[2] != 0x08)
    throw IdxError(Kind::unsupported_type,
                   fmt::format("{}: unsupported IDX type code 0x{:02x} ({}): evoplast reads "
                               "unsigned-byte (0x08) files only",
                               name, magic[2], type_name(magic[2])));

  const int ndims = magic[3];
  unsigned char header[16];
  if (file.read(header, 4 * ndims) != std::size_t(4 * ndims))
    throw IdxError(Kind::truncated,
                   fmt::format("{}: truncated: the header announces {} dimensions but ends "
                               "before them; re-fetch the file",
                               name, ndims));
  md5.update(header, 4 * ndims);

  IdxArray out;
  // Cap what any header may claim: 2^34 bytes is far beyond any image data set.
  constexpr std::uint64_t kMaxBytes = std::uint64_t(1) << 34;
  std::uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    const std::uint32_t n = (std::uint32_t(header[4 * d]) << 24) |
                            (std::uint32_t(header[4 * d + 1]) << 16) |
                            (std::uint32_t(header[4 * d + 2]) << 8) | header[4 * d + 3];
    if (n == 0)
      throw IdxError(Kind::bad_dimensions,
                     fmt::format("{}: dimension {} is zero: the file holds no data", name, d));
    if (total > kMaxBytes / n)  // checked before multiplying, so it cannot overflow
      throw IdxError(Kind::bad_dimensions,
                     fmt::format("{}: header dimensions claim more than 2^34 bytes: corrupt "
                                 "header",
                                 name));
    total *= n;
    out.dims.push_back(n);
  }

  const std::uint64_t header_bytes = 4 + 4 * std::uint64_t(ndims);
  if (!file.compressed()) {
    // A raw file: its size says at once whether it can hold what the header claims.
    std::error_code ec;
    const std::uint64_t size = std::filesystem::file_size(path, ec);
    if (!ec && size < header_bytes + total)
      throw IdxError(Kind::truncated,
                     fmt::format("{}: truncated: the header announces {} data bytes but the "
                                 "file holds {}; re-fetch the file",
                                 name, total, size - header_bytes));
  }

  // Grow as data really arrives, so a lying gzip header cannot make us allocate.
  constexpr std::size_t kStep = std::size_t(1) << 22;
  std::uint64_t done = 0;
  while (done < total) {
    const std::size_t want = std::size_t(std::min<std::uint64_t>(kStep, total - done));
    out.data.resize(std::size_t(done) + want);
    const std::size_t got = file.read(out.data.data() + done, want);
    md5.update(out.data.data() + done, got);
    done += got;
    if (got < want)
      throw IdxError(Kind::truncated,
                     fmt::format("{}: truncated: the header announces {} data bytes but the "
                                 "file holds {}; re-fetch the file",
                                 name, total, done));
  }
  unsigned char extra;
  if (file.read(&extra, 1) != 0)
    throw IdxError(Kind::trailing_data,
                   fmt::format("{}: more data than the header's dimensions announce ({} bytes): "
                               "corrupt header; re-fetch the file",
                               name, total));
  out.md5 = md5.hex();
  return out;
}

ImageSet read_image_set(const std::filesystem::path& images, const std::filesystem::path& labels,
                        int classes) {
  IdxArray im = read_idx(images);
  if (im.dims.size() != 3)
    throw IdxError(Kind::bad_dimensions,
                   fmt::format("{}: an image file needs 3 dimensions (count, rows, cols), this "
                               "one has {}",
                               images.string(), im.dims.size()));
  IdxArray lb = read_idx(labels);
  if (lb.dims.size() != 1)
    throw IdxError(Kind::bad_dimensions,
                   fmt::format("{}: a label file needs 1 dimension (count), this one has {}",
                               labels.string(), lb.dims.size()));
  if (im.dims[0] != lb.dims[0])
    throw IdxError(Kind::count_mismatch,
                   fmt::format("{} holds {} images but {} holds {} labels: the files do not "
                               "belong together",
                               images.string(), im.dims[0], labels.string(), lb.dims[0]));
  for (std::size_t i = 0; i < lb.data.size(); ++i)
    if (lb.data[i] >= classes)
      throw IdxError(Kind::label_range,
                     fmt::format("{}: label {} at index {} is outside [0, {}): corrupt label "
                                 "file",
                                 labels.string(), lb.data[i], i, classes));
  ImageSet s;
  s.count = im.dims[0];
  s.rows = int(im.dims[1]);
  s.cols = int(im.dims[2]);
  s.images = std::move(im.data);
  s.labels = std::move(lb.data);
  s.images_md5 = std::move(im.md5);
  s.labels_md5 = std::move(lb.md5);
  return s;
}

}  // namespace evoplast::io
