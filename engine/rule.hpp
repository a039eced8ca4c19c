// A plasticity rule: the coefficients of the update in docs/design.md, per plastic
// layer, and the global choices (feedback pathway, learning-rate schedule).
// Host-only and free of CUDA, so the GA can decode genomes into it.
#pragma once
#include <string>
#include <vector>

#include "kernels/plasticity.hpp"
#include "kernels/sparsity.hpp"

namespace evoplast::engine {

enum class Feedback { backprop, fa, dfa, none };
const char* feedback_name(Feedback f);
// throws EngineError naming the file (origin) and the valid ones
Feedback parse_feedback(const std::string& name, const std::string& origin);

// One plastic layer's coefficients (see kernels/plasticity.hpp for the update).
struct LayerRule {
  float alpha = 1;      // error (gradient) term through opt
  float A = 0;          // Hebbian ⟨ŷ ⊗ x⟩
  float B = 0;          // presynaptic ⟨x⟩
  float C = 0;          // postsynaptic ⟨y⟩
  float D = 0;          // constant drift
  float omega = 0;      // Oja decay ω·⟨y²⟩·W
  float lambda = 0;     // weight decay
  float bcm = 0;        // BCM mix in [0, 1]
  float kappa = 0;      // consolidation: ΔW / (1 + κ·Ω)
  float rho_omega = 0;  // importance decay
  float s_g = 0;        // importance from |g ⊙ ΔW| (SI-like path integral)
  float s_h = 0;        // importance from |h| (Hebbian, MAS-like)
  float gamma_h = 0;    // homeostatic bias rate
  float rho_star = 0;   // target mean activity
  // Sparse and associative terms (docs/design.md, "Sparsity and association"):
  float k_active = 1;     // hidden: k-WTA keeps this fraction of units per sample (1: off)
  float k_normalise = 0;  // hidden: 1 rescales the winners to unit RMS, 0 leaves them
  float label_mix = 0;    // readout: share μ of the one-hot label in the Hebbian post factor
  float w_norm = 0;       // bound on each unit's incoming ‖W_o‖₂ (0: none)
  bool operator==(const LayerRule&) const = default;
};

// Every coefficient of a LayerRule, in the order declared, by the name rule
// files, genes ("hidden0.A") and reports give it: the one list a new term
// joins (docs/extending.md).
struct LayerField {
  const char* name;
  float LayerRule::*member;
};
inline constexpr LayerField kLayerFields[] = {
    {"alpha", &LayerRule::alpha},     {"A", &LayerRule::A},
    {"B", &LayerRule::B},             {"C", &LayerRule::C},
    {"D", &LayerRule::D},             {"omega", &LayerRule::omega},
    {"lambda", &LayerRule::lambda},   {"bcm", &LayerRule::bcm},
    {"kappa", &LayerRule::kappa},     {"rho_omega", &LayerRule::rho_omega},
    {"s_g", &LayerRule::s_g},         {"s_h", &LayerRule::s_h},
    {"gamma_h", &LayerRule::gamma_h}, {"rho_star", &LayerRule::rho_star},
    {"k_active", &LayerRule::k_active}, {"k_normalise", &LayerRule::k_normalise},
    {"label_mix", &LayerRule::label_mix}, {"w_norm", &LayerRule::w_norm},
};
static_assert(sizeof(LayerRule) == sizeof(kLayerFields) / sizeof(kLayerFields[0]) * sizeof(float),
              "a LayerRule field is missing from kLayerFields");

struct Rule {
  std::string name = "custom";
  Feedback feedback = Feedback::backprop;
  float lr_scale = 1;     // η = lr · lr_scale · step_gamma^epoch (epoch counted within a task)
  float step_gamma = 0.7f;
  float w_max = 0;        // weight clip, 0: none
  bool adadelta = true;   // opt: Adadelta (true) or SGD
  std::vector<LayerRule> hidden = {LayerRule{}};  // hidden layer l uses hidden[min(l, size−1)]
  LayerRule output;                               // the readout layer
  bool operator==(const Rule&) const = default;

  const LayerRule& layer(int plastic_index, int plastic_count) const;
  // The coefficients one step applies at one layer.
  kernels::PlasticityCoeffs coeffs(int plastic_index, int plastic_count, float lr, int epoch,
                                   float rho, float eps) const;
  // k-WTA at hidden plastic layer `hidden` of `units` units: keep = round(k_active·units) ≥ 1.
  kernels::KwtaParams kwta(int hidden, int hidden_count, int units) const;
};

// The named rules: baseline, finetune (= baseline), hebb, oja, bcm, si, local, dfa, fly.
std::vector<std::string> named_rules();
Rule named_rule(const std::string& name);  // throws EngineError naming the valid ones

// JSON round trip (nlohmann); load throws EngineError naming the file and key.
std::string rule_to_json(const Rule& r);
Rule rule_from_json(const std::string& text, const std::string& origin);
void save_rule(const Rule& r, const std::string& path);
Rule load_rule(const std::string& path);
// A name from named_rules(), or the path of a rule file.
Rule rule_by_name_or_file(const std::string& name_or_path);

// A float as the shortest decimal that reads back as the same float (0.05f
// → 0.05, not 0.05000000074505806), for JSON and CSV a person reads.
double exact_decimal(float v);

// The update written out for a person, e.g. "ΔW = η·(−1·opt(g) + 0.001·h) − 0.005·⟨y²⟩⊙W".
std::string describe(const LayerRule& l);

}  // namespace evoplast::engine
