// The report of a run directory: report.html with inline SVG charts (fitness
// per generation, validation-loss curves of the individuals, the best rule's
// accuracy matrix as a heatmap, its coefficients per layer), and the same
// charts as separate .svg files. Reads only the run's files (config.toml,
// generations.jsonl, best_rule.json), so `evolve report DIR` can redo it.
#pragma once
#include <filesystem>

namespace evoplast::io {

// Writes DIR/report.html and DIR/{fitness,val_loss,matrix,coefficients}.svg;
// returns the path of report.html. Throws IoError naming a missing or damaged file.
std::filesystem::path write_report(const std::filesystem::path& run_dir);

}  // namespace evoplast::io
