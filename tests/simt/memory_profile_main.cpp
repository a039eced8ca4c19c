// simt_memory_profile: how each CUDA kernel of a training step uses the
// memory system, counted on the CPU by the SIMT simulator (memory_profile.cpp):
// per kernel, device-memory sectors per warp-wide request and shared-memory
// bank passes (wavefronts) per request, each beside the fewest that serve the
// same bytes. The step is bench_population's: the seed CNN (or another net)
// for a population of P nets on one minibatch, forward, backward and the
// update (Adadelta, or a named rule's plasticity). Counts, not timings: they
// show uncoalesced loads and bank conflicts without a GPU, at small P and batch
// (the simulator runs every thread; the counts per request barely change with size).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cuda_runtime.h>
#include <optional>
#include <random>
#include <vector>

#include "apps/command_line.hpp"
#include "bench/synthetic_batch.hpp"
#include "engine/backend.hpp"
#include "engine/network.hpp"
#include "engine/optimizer.hpp"
#include "engine/plasticity.hpp"

using namespace evoplast;

namespace {

// "units / request (ideal / units as %)", or "-" where there were no requests.
std::string per_request(const simt::MemoryTraffic& t) {
  if (t.requests == 0) return "-";
  return fmt::format("{:.2f} ({:.0f}%)", double(t.units) / double(t.requests), 100.0 * double(t.ideal) /
                                                                                     double(t.units));
}

void print_profile(const std::map<std::string, simt::KernelMemory>& profile) {
  std::vector<std::pair<std::string, simt::KernelMemory>> rows(profile.begin(), profile.end());
  // The kernels moving most first: device sectors and shared wavefronts.
  const auto moved = [](const simt::KernelMemory& k) {
    return k.global_load.units + k.global_store.units + k.shared_load.units + k.shared_store.units;
  };
  std::sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) { return moved(a.second) > moved(b.second); });
  fmt::print("{:>10} {:>10} {:>16} {:>16} {:>10} {:>16} {:>16}  {}\n", "blocks", "ld req", "ld sect/req",
             "st sect/req", "sh req", "sh ld wf/req", "sh st wf/req", "kernel");
  simt::KernelMemory all;
  for (const auto& [name, k] : rows) {
    fmt::print("{:>10} {:>10} {:>16} {:>16} {:>10} {:>16} {:>16}  {}\n", k.blocks,
               k.global_load.requests + k.global_store.requests, per_request(k.global_load),
               per_request(k.global_store), k.shared_load.requests + k.shared_store.requests,
               per_request(k.shared_load), per_request(k.shared_store), name);
    all += k;
  }
  fmt::print("all kernels: device sectors {} (fewest {}), shared wavefronts {} (fewest {})\n",
             all.global_load.units + all.global_store.units, all.global_load.ideal + all.global_store.ideal,
             all.shared_load.units + all.shared_store.units, all.shared_load.ideal + all.shared_store.ideal);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"simt_memory_profile: device sectors and shared-memory bank passes per request of each CUDA kernel "
               "of a training step, counted in the SIMT simulator"};
  int P = 2, batch = 16, steps = 1;
  std::string net_name = "cnn", rule = "backprop", precision = "fp32";
  app.add_option("-P,--population", P, "Nets")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("-b,--batch", batch, "Minibatch")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--steps", steps, "Steps profiled (after one that is not)")
      ->check(CLI::Range(1, 10))
      ->capture_default_str();
  app.add_option("--net", net_name, "Architecture")->capture_default_str();
  app.add_option("--rule", rule, "backprop (Adadelta) or a named rule through the plasticity path")
      ->capture_default_str();
  app.add_option("--precision", precision, "GEMM arithmetic: fp32, tf32, tf32x3 or bf16")
      ->check(CLI::IsMember(engine::kPrecisions))
      ->capture_default_str();
  if (const auto exit_code = apps::parse_command_line(app, argc, argv, "simt_memory_profile")) return *exit_code;
  try {
    auto backend = engine::make_backend("cuda", precision);
    const engine::NetSpec spec = engine::NetSpec::parse(net_name);
    if (rule != "backprop") (void)engine::named_rule(rule);
    engine::PopulationNet net(*backend, spec, P, batch,
                              rule == "backprop" ? engine::ConvReluPool::fused
                                                 : engine::ConvReluPool::fused_keeping_activation);
    net.init_params(1, false);
    std::optional<engine::Optimizer> opt;
    std::optional<engine::Plasticity> plastic;
    if (rule == "backprop") opt.emplace(*backend, net, engine::OptimizerConfig{});
    else plastic.emplace(*backend, net, std::vector<engine::Rule>(std::size_t(P), engine::named_rule(rule)), 1);
    std::mt19937 rng(1);
    bench::SyntheticBatch input(*backend, spec, batch, rng);
    auto& x = input.x;
    auto& y = input.y;
    const std::vector<float> lr(std::size_t(P), 1.0f);
    const auto step = [&](int s) {
      backend->run_step(batch, [&] {
        net.forward(x.data(), batch, true, 1, std::uint64_t(s));
        if (opt) opt->backward_and_step(y.data(), batch, lr);
        else plastic->step_async(y.data(), batch, 1.0f, 0);
      });
      backend->synchronize();
    };
    step(0);
    simt::start_memory_profile();
    for (int s = 1; s <= steps; ++s) step(s);
    const auto profile = simt::stop_memory_profile();
    fmt::print("simt_memory_profile: {} on {}, P {}, batch {}, rule {}, {} step(s)\n", net_name, backend->name(), P,
               batch, rule, steps);
    print_profile(profile);
  } catch (const std::exception& e) {
    fmt::print(stderr, "simt_memory_profile: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
