// The modes of `evolve`: each adds its subcommand and options to the CLI and
// runs when chosen. Errors propagate as exceptions; main prints one line.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace evoplast::apps {

// A seed: a whole number ≥ 0 (CLI11 would wrap −1 into an unsigned value).
inline const CLI::Validator kSeed(
    [](std::string& v) { return v.starts_with('-') ? std::string("must be a whole number ≥ 0") : std::string(); },
    "SEED");

// Adds the mode; returns the function that runs it after parsing.
std::function<int()> add_train_mode(CLI::App& app);
std::function<int()> add_eval_mode(CLI::App& app);
std::function<int()> add_run_mode(CLI::App& app);
std::function<int()> add_report_mode(CLI::App& app);

}  // namespace evoplast::apps
