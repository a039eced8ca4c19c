// The modes of `evolve`: each adds its subcommand and options to the CLI and
// runs when chosen. Errors propagate as exceptions; main prints one line.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace evoplast::apps {

// Adds the mode; returns the function that runs it after parsing.
std::function<int()> add_train_mode(CLI::App& app);
std::function<int()> add_eval_mode(CLI::App& app);
std::function<int()> add_run_mode(CLI::App& app);
std::function<int()> add_report_mode(CLI::App& app);

}  // namespace evoplast::apps
