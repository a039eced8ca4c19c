// libFuzzer: the IDX reader on any bytes, as a raw file and gzip-wrapped.
// Every input ends in a result or an IdxError; never a crash, a hang or an
// allocation larger than the input warrants.
#include <zlib.h>

#include <vector>

#include "fuzz_common.hpp"
#include "io/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto raw = fuzz::scratch() / "raw-idx";
  fuzz::write_file(raw, data, size);
  try {
    (void)evoplast::io::read_idx(raw);
  } catch (const evoplast::io::IdxError&) {
  }
  // The same bytes gzip-compressed (the reader detects gzip by content).
  std::vector<std::uint8_t> gz(compressBound(uLong(size)) + 64);
  z_stream z{};
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
    z.next_in = const_cast<Bytef*>(data);
    z.avail_in = uInt(size);
    z.next_out = gz.data();
    z.avail_out = uInt(gz.size());
    deflate(&z, Z_FINISH);
    const std::size_t n = gz.size() - z.avail_out;
    deflateEnd(&z);
    const auto packed = fuzz::scratch() / "packed-idx.gz";
    fuzz::write_file(packed, gz.data(), n);
    try {
      (void)evoplast::io::read_idx(packed);
    } catch (const evoplast::io::IdxError&) {
    }
  }
  return 0;
}
