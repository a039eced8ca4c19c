#include "engine/memory_plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <new>
#include <vector>

#include "engine/counting_backend.hpp"
#include "engine/errors.hpp"
#include "engine/optimizer.hpp"
#include "engine/plasticity.hpp"
#include "engine/rule.hpp"
#include "kernels/conv_plan.hpp"
#include "kernels/gemm_plan.hpp"

namespace evoplast::engine {
namespace {

// Bytes P nets hold: the net and what learns in it. For plastic nets, the
// larger of feedback alignment (a random matrix per layer; every other net,
// so a mixed population's picked weights count too) and direct feedback
// alignment (one per layer to the classes).
std::size_t count(const NetSpec& spec, int P, int max_batch, int train_batch, bool plastic,
                  bool fuses_conv_steps) {
  std::size_t most = 0;
  for (Feedback fb : plastic ? std::vector<Feedback>{Feedback::fa, Feedback::dfa} : std::vector<Feedback>{Feedback::backprop}) {
    CountingBackend be;
    be.fused_conv_steps = fuses_conv_steps;
    {
      PopulationNet net(be, spec, P, max_batch,  // as train_iid and Plasticity set it
                        plastic ? ConvReluPool::fused_keeping_activation : ConvReluPool::fused);
      if (plastic) {
        std::vector<Rule> rules(std::size_t(P), named_rule("hebb"));
        for (int p = 0; p < P; ++p) rules[std::size_t(p)].feedback = fb == Feedback::fa && p % 2 ? Feedback::backprop : fb;
        Plasticity learn(be, net, rules, 1, 0.9f, 1e-6f, train_batch);
      } else {
        Optimizer opt(be, net, {});
      }
      most = std::max(most, be.bytes);
    }
  }
  return most;
}

}  // namespace

MemoryPlan::MemoryPlan(const NetSpec& spec, int max_batch, int train_batch, bool plastic, bool fuses_conv_steps)
    : max_batch_(max_batch) {
  // Counted at 2 and 3 nets (a mixed population's buffers exist from 2 on).
  std::size_t two = 0, three = 0;
  try {
    two = count(spec, 2, max_batch, train_batch, plastic, fuses_conv_steps);
    three = count(spec, 3, max_batch, train_batch, plastic, fuses_conv_steps);
  } catch (const std::bad_alloc&) {
    // Only host-side initial values are made while counting: they alone did not fit.
    const std::string name = spec.name.size() > 40 ? spec.name.substr(0, 40) + "…" : spec.name;
    throw EngineError(fmt::format("net {}: one net is larger than this machine's memory (its initial values "
                                  "alone do not fit); choose a smaller net",
                                  name));
  }
  per_net_ = three > two ? three - two : two;
  fixed_ = two > 2 * per_net_ ? two - 2 * per_net_ : 0;
  CountingBackend probe;
  const PopulationNet net(probe, spec, 1, max_batch);
  for (const auto& l : net.layers())
    if (l.spec.kind == LayerKind::conv)
      convs_.push_back({1, max_batch, l.in_c, l.in_h, l.in_w, l.out_c, l.spec.k, l.shared_input});
    else if (l.spec.kind == LayerKind::dense)
      denses_.push_back({1, max_batch, int(l.in_per_image()), l.out_c, l.shared_input});
}

std::size_t MemoryPlan::scratch(int P) const {
  // The arena's regions persist, each at the largest request it has seen:
  // slots 0–2 are the convolutions', 3 the loss rows, 8 the dense GEMMs', 9 a conv input gradient's Wᵀ; plus
  // staging and the epoch shuffle's keys (two floats per sample of a 70 000-image phase).
  std::size_t cols = 0, out = 0, dcols = 0, transposed = 0;
  for (kernels::ConvShape s : convs_) {
    s.P = P;
    for (const auto& c : {kernels::conv_scratch(s, true, false, false),
                          kernels::conv_scratch(s, false, true, !s.shared_input)}) {
      cols = std::max(cols, c.cols);
      out = std::max(out, c.out);
      dcols = std::max(dcols, c.dcols);
    }
    cols = std::max(cols, kernels::weight_grad_partial_floats(s));  // the implicit GEMM's in slot 0
    out = std::max(out, kernels::staged_error_floats(s));  // the fused backward's staged error in slot 1
    if (!s.shared_input) transposed = std::max(transposed, kernels::transposed_weights_floats(s));
  }
  // Slot 8: a dense layer's GEMM split over blocks (our tiled GEMM; forward, dx and dW).
  std::size_t gemm_partials = 0;
  for (const kernels::DenseShape& d : denses_)
    gemm_partials = std::max({gemm_partials, kernels::gemm_partial_floats(d.N, d.Out, d.In, P),
                              kernels::gemm_partial_floats(d.N, d.In, d.Out, P),
                              kernels::gemm_partial_floats(d.Out, d.In, d.N, P)});
  const std::size_t loss_rows = std::size_t(P) * max_batch_;
  // The CUDA backend's fixed buffers beside the arena: pinned-upload staging
  // and per-net tables (1 + 4 MiB) and cuBLAS's workspace (32 MiB).
  const std::size_t staging = std::size_t(37) << 20, shuffle = 2 * 70000;
  return (cols + out + dcols + transposed + gemm_partials + loss_rows + shuffle) * sizeof(float) + staging;
}

std::size_t MemoryPlan::bytes(int P, bool with_scratch) const {
  return fixed_ + per_net_ * std::size_t(P) + (with_scratch ? scratch(P) : 0);
}

long MemoryPlan::largest_population(std::size_t available, bool with_scratch) const {
  if (bytes(1, with_scratch) > available) return 0;
  long lo = 1, hi = 1;
  while (hi < (1L << 30) && bytes(int(std::min(hi * 2, 1L << 30)), with_scratch) <= available) hi *= 2;
  hi = std::min(hi * 2, 1L << 30);  // bytes(hi) > available (or the cap)
  while (hi - lo > 1) {
    const long mid = lo + (hi - lo) / 2;
    (bytes(int(mid), with_scratch) <= available ? lo : hi) = mid;
  }
  return lo;
}

void admit_population(Backend& backend, const MemoryPlan& plan, int P, int max_batch) {
  const bool arena = backend.has_scratch_arena();
  const std::size_t need = plan.bytes(P, arena), free = backend.memory_available();
  if (need <= free) return;
  const long fits = plan.largest_population(free, arena);
  throw PopulationTooLarge(
      fmt::format("out of {} memory for {} nets at batch {}: {:.0f} MiB needed ({:.1f} MiB per net{}), {:.0f} MiB "
                  "free; {}",
                  backend.name(), P, max_batch, double(need) / (1 << 20), double(plan.per_net()) / (1 << 20),
                  arena ? fmt::format(", {:.0f} MiB scratch", double(plan.scratch(P)) / (1 << 20)) : std::string(),
                  double(free) / (1 << 20),
                  fits >= 1                ? fmt::format("{} net{} would fit", fits, fits == 1 ? "" : "s")
                  : plan.per_net() > free ? std::string("one net alone does not fit: a smaller net is needed")
                                          : std::string("not even one net fits at this batch size")),
      P, fits);
}

}  // namespace evoplast::engine
