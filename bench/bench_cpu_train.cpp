// CPU benchmark: network-images/s of one training step (forward, backward,
// Adadelta) of the seed CNN for P = 1, 4, 16 on random data, and a per-phase
// breakdown. Figures, not assertions: the machine is shared and noisy.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "apps/command_line.hpp"
#include "engine/cpu_backend.hpp"
#include "engine/network.hpp"
#include "engine/optimizer.hpp"
#include "kernels/cpu_threads.hpp"
#include "kernels/gemm_cpu.hpp"

using namespace evoplast;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int run(const std::string& net_name);

int main(int argc, char** argv) {
  evoplast::kernels::cpu::restart_with_short_spin_waits(argv);
  CLI::App app{"bench_cpu_train: network-images/s of a training step on the CPU for P = 1, 4, 16"};
  std::string net_name = "cnn";
  app.add_option("net", net_name, "cnn, or an MLP such as mlp400x2")->capture_default_str();
  if (const auto exit_code = evoplast::apps::parse_command_line(app, argc, argv, "bench_cpu_train")) return *exit_code;
  try {
    return run(net_name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cpu_train: error: %s\n", e.what());
    return 1;
  }
}

int run(const std::string& net_name) {
  (void)engine::NetSpec::parse(net_name);  // a bad name fails before any output
  const int batch = 64;
  kernels::cpu::set_cpu_threads(0);
  engine::CpuBackend backend;
  fmt::print("bench_cpu_train: net {}, batch {}, {} threads, {}\n", net_name, batch,
             kernels::cpu::cpu_threads(), kernels::cpu::blas_description());
  fmt::print("{:>4} {:>7} {:>10} {:>10} {:>10} {:>22}\n", "P", "steps", "fwd ms", "bwd ms",
             "opt ms", "network-images/s");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int P : {1, 4, 16}) {
    engine::PopulationNet net(backend, engine::NetSpec::parse(net_name), P, batch);
    net.init_params(1, /*same_for_all=*/false);
    engine::Optimizer opt(backend, net, {});
    std::vector<float> xh(std::size_t(batch) * 28 * 28);
    std::vector<std::int32_t> yh(batch);
    for (auto& v : xh) v = normal(rng);
    for (int n = 0; n < batch; ++n) yh[n] = n % 10;
    engine::Buffer<float> x(backend, xh.size());
    engine::Buffer<std::int32_t> y(backend, yh.size());
    x.upload(xh);
    y.upload(yh);
    const std::vector<float> lr(P, 1.0f);
    // Warm-up, then enough steps for about 3 s.
    net.forward(x.data(), batch, true, 1, 0);
    net.backward(y.data(), batch);
    opt.step(lr);
    const int steps = std::max(2, 48 / P);
    double tf = 0, tb = 0, to = 0;
    for (int s = 0; s < steps; ++s) {
      auto t = Clock::now();
      net.forward(x.data(), batch, true, 1, s + 1);
      tf += since(t);
      t = Clock::now();
      net.backward(y.data(), batch);
      tb += since(t);
      t = Clock::now();
      opt.step(lr);
      to += since(t);
    }
    const double total = tf + tb + to;
    fmt::print("{:>4} {:>7} {:>10.2f} {:>10.2f} {:>10.2f} {:>22.0f}\n", P, steps,
               1e3 * tf / steps, 1e3 * tb / steps, 1e3 * to / steps,
               double(P) * batch * steps / total);
  }
  return 0;
}
