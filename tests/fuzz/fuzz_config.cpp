// libFuzzer: a run's TOML configuration on any text: applied over a preset,
// then validated. Every input ends in a configuration or a ConfigError/IoError.
#include "fuzz_common.hpp"
#include "io/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  evoplast::io::RunConfig cfg = evoplast::io::preset("smoke");
  try {
    evoplast::io::apply_toml(cfg, fuzz::text(data, size), "fuzz.toml");
    evoplast::io::validate(cfg);
    (void)evoplast::io::to_toml(cfg);
  } catch (const evoplast::io::IoError&) {
  }
  return 0;
}
