// Parsing a program's command line the same way in evolve and every bench:
// --help and --version answer on stdout with exit 0; a bad option is one line
// on stderr ("NAME: error: … (see NAME --help)") and exit 2, never CLI11's
// two-line report or an uncaught exception.
#pragma once
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace evoplast::apps {

// std::nullopt: go on; otherwise the exit code. speak: this process prints
// (under mpirun only rank 0 does).
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv, const std::string& name,
                                             bool speak = true) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (speak) fmt::print(stderr, "{0}: error: {1} (see {0} --help)\n", name, e.what());
    return 2;
  }
  return std::nullopt;
}

}  // namespace evoplast::apps
