// Only this file sees the generated commit header, so a new commit recompiles
// one small file.
#include "apps/program.hpp"

#include "evoplast_commit.hpp"

namespace evoplast::apps {

std::string program_version() { return EVOPLAST_VERSION; }
std::string program_commit() { return EVOPLAST_COMMIT; }

}  // namespace evoplast::apps
