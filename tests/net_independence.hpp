// The nets of a population share launches, tiles and scratch but nothing
// else, on any backend: checks shared by the CPU tests and the CUDA suite
// (GPU and simulator).
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/backend.hpp"
#include "engine/continual.hpp"
#include "engine/metrics.hpp"
#include "engine/rule.hpp"
#include "synthetic.hpp"

// One diverging individual never poisons the population: a net whose rule
// explodes is marked diverged and scored worst, with finite records, and its
// neighbours' records are bit for bit those of a run beside a calm net.
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

// A slice of the population trains exactly as inside the whole (what MPI
// ranks rely on): nets 0–1 and 2–5 run as two populations with first_net 0
// and 2 give the records of the 6 run as one: feedback weights (FA, DFA),
// k-WTA, EWC and the label-gated readout keyed by the global net index, and
// no kernel's choice (tiles, splits, chunks) changing a net's sums with P.
inline void check_slices_train_as_the_whole(evoplast::engine::Backend& be, const std::string& net,
                                            int train_images = 600, int test_images = 200) {
  using namespace evoplast::engine;
  const synthetic::Protocol sp("split-class", train_images, test_images, test_images / 2);
  ContinualConfig cc;
  cc.net = net;
  cc.batch = 16;
  Rule fa = named_rule("finetune");
  fa.feedback = Feedback::fa;
  const std::vector<Rule> rules = {named_rule("finetune"), fa, named_rule("dfa"), named_rule("hebb"),
                                   named_rule("fly"), named_rule("si")};
  const std::vector<float> lambda = {0, 0, 0, 0, 0, 50};
  const auto whole = run_continual(be, sp.protocol, rules, lambda, cc);
  for (int cut : {2, 5}) {
    CAPTURE(cut);
    ContinualConfig head_cc = cc, tail_cc = cc;
    tail_cc.first_net = cut;
    const auto head = run_continual(be, sp.protocol, {rules.begin(), rules.begin() + cut},
                                    {lambda.begin(), lambda.begin() + cut}, head_cc);
    const auto tail = run_continual(be, sp.protocol, {rules.begin() + cut, rules.end()},
                                    {lambda.begin() + cut, lambda.end()}, tail_cc);
    for (std::size_t p = 0; p < rules.size(); ++p) {
      CAPTURE(rules[p].name);
      const NetResult& part = p < std::size_t(cut) ? head.nets[p] : tail.nets[p - std::size_t(cut)];
      CHECK(part.R_test == whole.nets[p].R_test);
      CHECK(part.L_val == whole.nets[p].L_val);
      CHECK(part.train_loss == whole.nets[p].train_loss);
    }
  }
  // Without the offset the FA and DFA nets of the tail would get other feedback weights.
  const auto unkeyed = run_continual(be, sp.protocol, {rules.begin() + 1, rules.begin() + 3}, {0, 0}, cc);
  CHECK(unkeyed.nets[0].L_val != whole.nets[1].L_val);
}
