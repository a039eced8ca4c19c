// A genome: a vector of floats with named genes, decoded into a plasticity
// rule. Every gene lives in [−1, 1] (signed) or [0, 1] (unsigned) and maps to
// its value through a codec, so a mutation of σ moves every gene by the same
// fraction of its range: coefficients that span decades are signed
// log-magnitudes (a dead zone around 0 decodes to exactly 0; whole powers of
// ten decode exactly, so α = 1 is exact). Host-only: no CUDA, no engine state.
#pragma once
#include <string>
#include <vector>

#include "engine/rule.hpp"

namespace evoplast::ga {

enum class Codec {
  signed_log,    // gene ∈ [−1, 1]: |g| < dead → 0, else sign·10^(lo + (|g|−dead)/(1−dead)·(hi−lo))
  positive_log,  // gene ∈ [0, 1]: g < dead → 0, else 10^(…) as above
  log,           // gene ∈ [0, 1]: 10^(lo + g·(hi−lo)), never 0
  linear,        // gene ∈ [0, 1]: lo + g·(hi − lo)
  category,      // gene ∈ [0, 1]: ⌊g·count⌋ (count = hi)
};

struct GeneSpec {
  std::string name;  // "hidden0.A", "output.alpha", "lr_scale", "feedback"
  Codec codec;
  double lo, hi;     // decades for the log codecs; values for linear; count for category
  double min_gene() const { return codec == Codec::signed_log ? -1.0 : 0.0; }
};

struct Segment {
  std::string name;  // "global", "hidden0", …, "output"
  int begin, end;    // gene index range
};

// The genes of a rule for a net with `hidden_layers` hidden plastic layers
// (the readout has its own segment).
class GenomeSchema {
 public:
  explicit GenomeSchema(int hidden_layers);
  int size() const { return int(genes_.size()); }
  int hidden_layers() const { return hidden_layers_; }
  const std::vector<GeneSpec>& genes() const { return genes_; }
  const std::vector<Segment>& segments() const { return segments_; }
  int index(const std::string& name) const;  // throws for an unknown name

  double decode_gene(int i, double gene) const;
  double encode_value(int i, double value) const;  // nearest gene, clamped to the range

  engine::Rule decode(const std::vector<float>& genome, const std::string& name = "evolved") const;
  std::vector<float> encode(const engine::Rule& rule) const;

 private:
  int hidden_layers_;
  std::vector<GeneSpec> genes_;
  std::vector<Segment> segments_;
};

constexpr double kDeadZone = 0.05;

}  // namespace evoplast::ga
