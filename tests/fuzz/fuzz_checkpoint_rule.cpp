// libFuzzer: a checkpoint's GA state and a rule file on any text. Every input
// ends in a loaded state or rule, or the loader's one-line error.
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine/errors.hpp"
#include "engine/rule.hpp"
#include "fuzz_common.hpp"
#include "ga/ga.hpp"
#include "ga/genome.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text = fuzz::text(data, size);
  static const evoplast::ga::GenomeSchema schema(1);
  try {
    const auto ga = evoplast::ga::GeneticAlgorithm::load(schema, text);
    (void)ga.save();
  } catch (const nlohmann::json::exception&) {
  } catch (const std::invalid_argument&) {
  }
  try {
    const auto rule = evoplast::engine::rule_from_json(text, "fuzz.json");
    (void)evoplast::engine::rule_to_json(rule);
  } catch (const evoplast::engine::EngineError&) {
  }
  return 0;
}
