// The modes of `evolve`: each adds its subcommand and options to the CLI and
// runs when chosen. Errors propagate as exceptions; main prints one line.
#pragma once
#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <string>
#include <functional>
#include <thread>

#include "engine/precision.hpp"
#include "kernels/gemm_cpu.hpp"

namespace evoplast::apps {

// A seed: a whole number ≥ 0 (CLI11 would wrap −1 into an unsigned value).
inline const CLI::Validator kSeed(
    [](std::string& v) { return v.starts_with('-') ? std::string("must be a whole number ≥ 0") : std::string(); },
    "SEED");

// A whole number ≥ least, the refusal in words (CLI11's own ranges print
// their bound as a 300-digit double). A value that is not a number is left
// to CLI11's conversion, which names it.
inline CLI::Validator at_least(long long least, const std::string& meaning) {
  return CLI::Validator(
      [least, meaning](std::string& v) {
        long long n = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec == std::errc() && end == v.data() + v.size() && n < least) return v + " — must be " + meaning;
        return std::string();
      },
      "INT");
}

// --backend and --precision as train and eval take them (run's name the
// config keys they set).
inline void add_device_options(CLI::App* cmd, std::string& backend, std::string& precision) {
  cmd->add_option("--backend", backend, "cpu, cuda or auto")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--precision", precision,
                  "GEMM arithmetic: fp32, or on a GPU's tensor cores tf32, tf32x3 (split TF32, about fp32's accuracy) "
                  "or bf16 (tf32 and bf16 emulated on the CPU: their accuracy, not their speed)")
      ->check(CLI::IsMember(engine::kPrecisions))
      ->capture_default_str();
}

// CPU threads for the CPU kernels: 0 is every core; more threads than cores
// only fight each other (and a huge count starves OpenBLAS's allocator), so
// they are capped at the cores, with a note saying so.
inline void use_cpu_threads(int requested) {
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (requested > cores) {
    std::fprintf(stderr, "evolve: note: %d threads capped at %d, the cores of this machine\n", requested, cores);
    requested = cores;
  }
  kernels::cpu::set_cpu_threads(requested < 0 ? 0 : requested);
}

// The held-out evaluation of a finished run, into DIR/heldout: its champion
// beside finetune, EWC, SI and joint training on the held-out protocols, at
// full data, as `evolve eval --run DIR --heldout` (skipped when done).
void evaluate_heldout(const std::filesystem::path& run_dir, int seeds, const std::string& data_dir,
                      const std::string& backend, const std::string& precision, int threads, bool quiet);

// Adds the mode; returns the function that runs it after parsing.
std::function<int()> add_train_mode(CLI::App& app);
std::function<int()> add_eval_mode(CLI::App& app);
class Ranks;
std::function<int()> add_run_mode(CLI::App& app, Ranks& ranks);
std::function<int()> add_report_mode(CLI::App& app);

}  // namespace evoplast::apps
