#include "ga/genome.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string_view>

namespace evoplast::ga {
namespace {

// The per-layer genes: each coefficient of engine::kLayerFields, in its order,
// with the codec and range the GA searches it over.
struct LayerGene {
  const char* name;
  Codec codec;
  double lo, hi;
};
constexpr LayerGene kLayerGenes[] = {
    {"alpha", Codec::positive_log, -3, 6},     {"A", Codec::signed_log, -7, 1},
    {"B", Codec::signed_log, -7, 1},           {"C", Codec::signed_log, -7, 1},
    {"D", Codec::signed_log, -7, 1},           {"omega", Codec::positive_log, -8, 0},
    {"lambda", Codec::positive_log, -8, 0},    {"bcm", Codec::linear, 0, 1},
    {"kappa", Codec::positive_log, -2, 7},     {"rho_omega", Codec::linear, 0, 1},
    {"s_g", Codec::positive_log, -4, 2},       {"s_h", Codec::positive_log, -4, 2},
    {"gamma_h", Codec::positive_log, -8, 0},   {"rho_star", Codec::linear, 0, 1},
    // Sparsity (hidden layers) and association (the readout); a segment
    // carries all four, the engine reads the ones its layer uses.
    {"k_active", Codec::log, -2.30103, 0},     // 0.5% … 100% (gene 1: off, exactly)
    {"k_normalise", Codec::category, 0, 2},    {"label_mix", Codec::linear, 0, 1},
    {"w_norm", Codec::positive_log, -1, 2},
};

static_assert(std::size(kLayerGenes) == std::size(engine::kLayerFields));
// Each gene's name is its coefficient's, in the same order.
constexpr bool genes_name_the_fields() {
  for (std::size_t k = 0; k < std::size(kLayerGenes); ++k)
    if (std::string_view(kLayerGenes[k].name) != engine::kLayerFields[k].name) return false;
  return true;
}
static_assert(genes_name_the_fields(), "kLayerGenes must follow engine::kLayerFields, name for name");

float* field(engine::LayerRule& l, int k) { return &(l.*engine::kLayerFields[k].member); }

// 10^e, exact at whole decades (so 1, 0.01, 1e-4 decode to their float exactly).
double pow10_snapped(double e) {
  const double r = std::round(e);
  return std::abs(e - r) < 1e-6 ? std::pow(10.0, r) : std::pow(10.0, e);
}

}  // namespace

GenomeSchema::GenomeSchema(int hidden_layers) : hidden_layers_(hidden_layers) {
  if (hidden_layers < 1) throw std::invalid_argument("GenomeSchema: at least one hidden layer");
  genes_ = {{"lr_scale", Codec::log, -6, 1},
            {"step_gamma", Codec::linear, 0.5, 1.0},
            {"feedback", Codec::category, 0, 4},
            {"w_max", Codec::positive_log, -1, 2}};
  segments_.push_back({"global", 0, int(genes_.size())});
  const auto add_layer = [&](const std::string& prefix) {
    const int begin = int(genes_.size());
    for (const auto& g : kLayerGenes) genes_.push_back({prefix + "." + g.name, g.codec, g.lo, g.hi});
    segments_.push_back({prefix, begin, int(genes_.size())});
  };
  for (int l = 0; l < hidden_layers; ++l) add_layer(fmt::format("hidden{}", l));
  add_layer("output");
}

int GenomeSchema::index(const std::string& name) const {
  for (std::size_t i = 0; i < genes_.size(); ++i)
    if (genes_[i].name == name) return int(i);
  throw std::invalid_argument(fmt::format("no gene named '{}'", name));
}

double GenomeSchema::decode_gene(int i, double g) const {
  const GeneSpec& s = genes_[std::size_t(i)];
  g = std::clamp(g, s.min_gene(), 1.0);
  const auto mag = [&](double a) {
    return pow10_snapped(s.lo + (a - kDeadZone) / (1 - kDeadZone) * (s.hi - s.lo));
  };
  switch (s.codec) {
    case Codec::signed_log: return std::abs(g) < kDeadZone ? 0.0 : std::copysign(mag(std::abs(g)), g);
    case Codec::positive_log: return g < kDeadZone ? 0.0 : mag(g);
    case Codec::log: return pow10_snapped(s.lo + g * (s.hi - s.lo));
    case Codec::linear: return s.lo + g * (s.hi - s.lo);
    case Codec::category: return std::min(std::floor(g * s.hi), s.hi - 1);
  }
  return 0;
}

double GenomeSchema::encode_value(int i, double v) const {
  const GeneSpec& s = genes_[std::size_t(i)];
  const auto gene_of_mag = [&](double a) {  // inverse of mag, clamped to [dead, 1]
    const double e = std::clamp(std::log10(a), s.lo, s.hi);
    return kDeadZone + (e - s.lo) / (s.hi - s.lo) * (1 - kDeadZone);
  };
  switch (s.codec) {
    case Codec::signed_log: return v == 0 ? 0.0 : std::copysign(gene_of_mag(std::abs(v)), v);
    case Codec::positive_log: return v <= 0 ? 0.0 : gene_of_mag(v);
    case Codec::log: return std::clamp((std::log10(v) - s.lo) / (s.hi - s.lo), 0.0, 1.0);
    case Codec::linear: return std::clamp((v - s.lo) / (s.hi - s.lo), 0.0, 1.0);
    case Codec::category: return (std::clamp(v, 0.0, s.hi - 1) + 0.5) / s.hi;
  }
  return 0;
}

engine::Rule GenomeSchema::decode(const std::vector<float>& genome, const std::string& name) const {
  if (int(genome.size()) != size())
    throw std::invalid_argument(fmt::format("genome of {} genes for a schema of {}", genome.size(), size()));
  engine::Rule r;
  r.name = name;
  r.lr_scale = float(decode_gene(0, genome[0]));
  r.step_gamma = float(decode_gene(1, genome[1]));
  r.feedback = engine::Feedback(int(decode_gene(2, genome[2])));
  r.w_max = float(decode_gene(3, genome[3]));
  r.hidden.assign(std::size_t(hidden_layers_), {});
  for (int l = 0; l <= hidden_layers_; ++l) {
    engine::LayerRule& lr = l < hidden_layers_ ? r.hidden[std::size_t(l)] : r.output;
    const int base = segments_[std::size_t(l + 1)].begin;
    for (int k = 0; k < int(std::size(kLayerGenes)); ++k)
      *field(lr, k) = float(decode_gene(base + k, genome[std::size_t(base + k)]));
  }
  return r;
}

std::vector<float> GenomeSchema::encode(const engine::Rule& rule) const {
  std::vector<float> g(static_cast<std::size_t>(size()));
  g[0] = float(encode_value(0, rule.lr_scale));
  g[1] = float(encode_value(1, rule.step_gamma));
  g[2] = float(encode_value(2, double(int(rule.feedback))));
  g[3] = float(encode_value(3, rule.w_max));
  for (int l = 0; l <= hidden_layers_; ++l) {
    engine::LayerRule lr = l < hidden_layers_ ? rule.layer(l, hidden_layers_ + 1) : rule.output;
    const int base = segments_[std::size_t(l + 1)].begin;
    for (int k = 0; k < int(std::size(kLayerGenes)); ++k)
      g[std::size_t(base + k)] = float(encode_value(base + k, *field(lr, k)));
  }
  return g;
}

}  // namespace evoplast::ga
