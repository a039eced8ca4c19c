// One diverging individual never poisons the population: on any backend, a
// net whose rule explodes is marked diverged and scored worst, with finite
// records, and its neighbours' records are bit for bit those of a run
// beside a calm net. Shared by the CPU tests and the CUDA suite (GPU and
// simulator), where nets share launches, tiles and scratch.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "engine/backend.hpp"
#include "engine/continual.hpp"
#include "engine/metrics.hpp"
#include "engine/rule.hpp"
#include "synthetic.hpp"

inline void check_divergence_stays_in_its_net(evoplast::engine::Backend& be, const std::string& net,
                                              int train_images = 600) {
  using namespace evoplast::engine;
  const synthetic::Protocol sp("split-class", train_images, 200);
  const Protocol& proto = sp.protocol;
  ContinualConfig cc;
  cc.net = net;
  cc.batch = 16;
  Rule explode = named_rule("baseline");
  explode.adadelta = false;
  explode.lr_scale = 1e9f;
  const auto calm = run_continual(be, proto, {named_rule("baseline"), named_rule("hebb"), named_rule("si")},
                                  {0, 0, 0}, cc);
  const auto mixed = run_continual(be, proto, {named_rule("baseline"), explode, named_rule("si")}, {0, 0, 0}, cc);
  CHECK_FALSE(mixed.nets[0].diverged);
  CHECK(mixed.nets[1].diverged);
  CHECK_FALSE(mixed.nets[2].diverged);
  CHECK(mixed.nets[1].fitness == kWorstFitness);
  for (int p : {0, 2}) {
    CHECK(mixed.nets[std::size_t(p)].R_test == calm.nets[std::size_t(p)].R_test);
    CHECK(mixed.nets[std::size_t(p)].fitness == calm.nets[std::size_t(p)].fitness);
  }
  for (const auto& row : mixed.nets[1].R_test)
    for (double a : row) CHECK(std::isfinite(a));
  for (const auto& row : mixed.nets[1].L_test)
    for (double l : row) CHECK(std::isfinite(l));
  CHECK(std::isfinite(mixed.nets[1].test.acc));
  CHECK(calm.nets[0].test.acc > 0.15);  // the synthetic task is learnable
}
