#pragma once
// The program's name, version and the commit it was built from, as records
// (eval.json, a train run's config.json) and --version state them.
#include <string>

namespace evoplast::apps {

std::string program_version();  // "0.1.0"
std::string program_commit();   // short hash, "-dirty" if built from changed files, or "unknown"

}  // namespace evoplast::apps
