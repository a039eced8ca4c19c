// libFuzzer: `evolve report` on any records. The input is split at the first
// NUL byte into generations.jsonl and best_rule.json; every input ends in a
// report or an IoError.
#include <algorithm>

#include "fuzz_common.hpp"
#include "io/errors.hpp"
#include "io/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto dir = fuzz::scratch() / "run";
  std::filesystem::create_directories(dir);
  const std::uint8_t* split = std::find(data, data + size, std::uint8_t(0));
  fuzz::write_file(dir / "generations.jsonl", data, std::size_t(split - data));
  if (split != data + size) fuzz::write_file(dir / "best_rule.json", split + 1, std::size_t(data + size - split - 1));
  else std::filesystem::remove(dir / "best_rule.json");
  try {
    (void)evoplast::io::write_report(dir);
  } catch (const evoplast::io::IoError&) {
  }
  return 0;
}
