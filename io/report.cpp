#include "io/report.hpp"

#include "io/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "io/errors.hpp"
#include "io/run_dir.hpp"
#include "io/text_file.hpp"

namespace evoplast::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// A colour from a viridis-like ramp (purple → teal → yellow), t ∈ [0, 1].
std::string ramp(double t) {
  t = std::clamp(t, 0.0, 1.0);
  const double stops[3][3] = {{68, 1, 84}, {33, 145, 140}, {253, 231, 37}};
  const int k = t < 0.5 ? 0 : 1;
  const double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
  int c[3];
  for (int i = 0; i < 3; ++i) c[i] = int(stops[k][i] + u * (stops[k + 1][i] - stops[k][i]));
  return fmt::format("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
}

// Round tick values (multiples of 1, 2 or 5 × 10^k) inside [lo, hi], about `most` of them.
std::vector<double> nice_ticks(double lo, double hi, int most) {
  const double span = hi - lo;
  if (!(span > 0) || !std::isfinite(span)) return {lo};
  const double raw = span / std::max(most, 1), mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : std::round(v / step) * step);
  return t;
}

// A chart: data coordinates mapped into a plot area with axes, ticks and labels.
class Chart {
 public:
  Chart(int w, int h, std::string title, double x0, double x1, double y0, double y1)
      : w_(w), h_(h), x0_(x0), x1_(x1 > x0 ? x1 : x0 + 1), y0_(y0), y1_(y1 > y0 ? y1 : y0 + 1) {
    body_ += fmt::format(R"(<text x="{}" y="18" font-size="14" font-weight="bold" text-anchor="middle">{}</text>)",
                         w / 2, esc(title));
  }
  double X(double x) const { return L + (x - x0_) / (x1_ - x0_) * (w_ - L - R); }
  double Y(double y) const { return h_ - B - (y - y0_) / (y1_ - y0_) * (h_ - T - B); }
  // x_ticks = false: the caller labels the x axis itself (bar groups).
  void axes(const std::string& xlabel, const std::string& ylabel, bool integer_x, bool x_ticks = true) {
    body_ += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#444"/>)", L, T,
                         w_ - L - R, h_ - T - B);
    for (double y : nice_ticks(y0_, y1_, 5)) {
      body_ += fmt::format(R"(<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="#ddd"/>)", L, w_ - R, Y(y), Y(y));
      body_ += fmt::format(R"(<text x="{}" y="{:.1f}" font-size="11" text-anchor="end">{:g}</text>)", L - 4,
                           Y(y) + 4, y);
    }
    for (double x : x_ticks ? nice_ticks(x0_, x1_, integer_x ? 10 : 6) : std::vector<double>{}) {
      if (integer_x && x != std::round(x)) continue;
      body_ += fmt::format(R"(<text x="{:.1f}" y="{}" font-size="11" text-anchor="middle">{:g}</text>)", X(x),
                           h_ - B + 15, x);
    }
    body_ += fmt::format(R"(<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>)", (L + w_ - R) / 2,
                         h_ - 6, esc(xlabel));
    body_ += fmt::format(R"~(<text x="14" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>)~",
                         (T + h_ - B) / 2, (T + h_ - B) / 2, esc(ylabel));
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, const std::string& colour, double width,
                bool dots) {
    std::string p;
    for (auto [x, y] : pts) p += fmt::format("{:.1f},{:.1f} ", X(x), Y(y));
    body_ += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-opacity="0.85"/>)",
                         p, colour, width);
    if (dots)
      for (auto [x, y] : pts)
        body_ += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", X(x), Y(y), colour);
  }
  void legend(int row, const std::string& colour, const std::string& label) {
    const int x = w_ - R + 12, y = T + 14 + 16 * row;  // right of the plot, never over the data
    body_ += fmt::format(R"(<rect x="{}" y="{}" width="12" height="4" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>)",
                         x, y - 4, colour, x + 18, y + 1, esc(label));
  }
  std::string svg() const {
    return fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{}</svg>)",
                       w_, h_, w_, h_, body_);
  }
  std::string& body() { return body_; }

 private:
  static constexpr int L = 60, R = 200, T = 30, B = 40;  // R holds the legend
  int w_, h_;
  double x0_, x1_, y0_, y1_;
  std::string body_;
};

std::string empty_svg(const std::string& title, const std::string& why) {
  Chart c(640, 120, title, 0, 1, 0, 1);
  c.body() += fmt::format(R"(<text x="320" y="70" font-size="13" text-anchor="middle">{}</text>)", esc(why));
  return c.svg();
}

std::string fitness_svg(const std::vector<json>& rows) {
  std::map<int, std::vector<double>> by_gen;
  std::map<std::string, std::vector<std::pair<double, double>>> controls;  // name → (generation, fitness)
  int diverged = 0;
  for (const auto& r : rows) {
    if (r.value("diverged", false) || r.at("fitness").is_null()) {  // null fitness: diverged
      ++diverged;
      continue;
    }
    const int g = r.at("generation").get<int>();
    const double f = r.at("fitness").get<double>();
    if (r.value("role", std::string("individual")) == "control") controls[r.at("control").get<std::string>()].push_back({g, f});
    else by_gen[g].push_back(f);
  }
  if (by_gen.empty()) return empty_svg("Fitness per generation", "no evaluated individuals yet");
  std::vector<std::pair<double, double>> best, mean, so_far;
  double lo = 1e300, hi = -1e300, running = -1e300;
  for (const auto& [g, f] : by_gen) {
    const double b = *std::max_element(f.begin(), f.end());
    double m = 0;
    for (double v : f) m += v;
    m /= double(f.size());
    running = std::max(running, b);
    best.push_back({g, b});
    mean.push_back({g, m});
    so_far.push_back({g, running});
    lo = std::min({lo, m, *std::min_element(f.begin(), f.end())});
    hi = std::max(hi, b);
  }
  for (const auto& [name, pts] : controls)
    for (auto [g, f] : pts) lo = std::min(lo, f), hi = std::max(hi, f);
  const double pad = (hi - lo) * 0.08 + 1e-9;
  Chart c(640, 340, "Fitness per generation", best.front().first, std::max(best.back().first, best.front().first + 1.0),
          lo - pad, hi + pad);
  c.axes("generation", "fitness (larger is better)", true);
  for (const auto& [g, f] : by_gen)
    for (double v : f)
      c.body() += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.5" fill="#999"/>)", c.X(g), c.Y(v));
  c.polyline(mean, "#1f77b4", 2, true);
  c.polyline(best, "#d62728", 2, true);
  c.polyline(so_far, "#2ca02c", 1.5, false);
  c.legend(0, "#d62728", "best of generation");
  c.legend(1, "#1f77b4", "mean of generation");
  c.legend(2, "#2ca02c", "best so far");
  c.legend(3, "#999", "individuals");
  // The controls on the same streams, never selected: what the population must beat.
  const char* control_colours[] = {"#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"};
  int row = 4;
  for (const auto& [name, pts] : controls) {
    const std::string colour = control_colours[std::size_t(row - 4) % std::size(control_colours)];
    c.polyline(pts, colour, 1.5, true);
    c.legend(row++, colour, "control: " + name);
  }
  if (diverged) c.legend(row, "white", fmt::format("{} diverged (not drawn)", diverged));
  return c.svg();
}

std::string val_loss_svg(const std::vector<json>& rows, int generations) {
  std::vector<double> all;
  std::size_t longest = 0;
  for (const auto& r : rows) {
    if (r.value("diverged", false) || !r.contains("epoch_val_loss")) continue;
    for (double v : r["epoch_val_loss"]) all.push_back(v);
    longest = std::max(longest, r["epoch_val_loss"].size());
  }
  if (longest == 0) return empty_svg("Validation loss during training", "no validation curves recorded");
  // The scale follows the bulk of the curves: a rule that nearly diverges
  // would otherwise flatten every other curve; its points are clipped.
  std::sort(all.begin(), all.end());
  const double p90 = all[std::size_t(0.9 * double(all.size() - 1))];
  const double hi = std::min(all.back(), 1.5 * p90) * 1.05;
  Chart c(640, 360, "Validation loss of every individual during training", 1, std::max<double>(double(longest), 2), 0,
          hi);
  c.axes("epoch (over all tasks)", "validation loss", true);
  int clipped = 0;
  for (const auto& r : rows) {
    if (r.value("diverged", false) || !r.contains("epoch_val_loss")) continue;
    std::vector<std::pair<double, double>> pts;
    int e = 1;
    bool over = false;
    for (double v : r["epoch_val_loss"]) {
      over |= v > hi;
      pts.push_back({e++, std::min(v, hi)});
    }
    clipped += over;
    const int g = r.at("generation").get<int>();
    c.polyline(pts, ramp(generations > 1 ? double(g) / (generations - 1) : 0.0), 1.2, longest <= 20);
  }
  int row = 0;
  for (int g = 0; g < generations; ++g)
    if (generations <= 10 || g % std::max(1, generations / 8) == 0)
      c.legend(row++, ramp(generations > 1 ? double(g) / (generations - 1) : 0.0), fmt::format("generation {}", g));
  if (clipped) c.legend(row, "white", fmt::format("{} clipped at the top", clipped));
  return c.svg();
}

// Accuracy on each task as training moves through the tasks (R[i][j] over i),
// one panel per rule: the champion and the controls on the same stream. Grid
// lines mark the task boundaries; a task's curve starts where it is trained.
std::string task_curves_svg(const json& best) {
  std::vector<std::pair<std::string, const json*>> panels;
  if (best.contains("R_test")) panels.push_back({"champion", &best});
  if (best.contains("controls") && best["controls"].is_object())
    for (auto it = best["controls"].begin(); it != best["controls"].end(); ++it)
      if (it.value().contains("R_test")) panels.push_back({it.key(), &it.value()});
  if (panels.empty() || best["R_test"].size() < 2)
    return empty_svg("Accuracy per task across training", "one task or no accuracy matrix: no curves");
  const int pw = 250, ph = 220, cols = std::min<int>(int(panels.size()), 4);
  const int rows = (int(panels.size()) + cols - 1) / cols, w = std::max(cols * pw, 1000), h = rows * ph + 40;
  const char* colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::string body = fmt::format(
      R"(<text x="{}" y="18" font-size="14" font-weight="bold" text-anchor="middle">Test accuracy on each task (%) after training task i: the champion beside the controls, one stream</text>)",
      w / 2);
  for (std::size_t k = 0; k < panels.size(); ++k) {
    const auto R = panels[k].second->at("R_test").get<std::vector<std::vector<double>>>();
    const int T = int(R.size()), x0 = int(k % std::size_t(cols)) * pw, y0 = 30 + int(k / std::size_t(cols)) * ph;
    const int L = 34, B = 30, top = 22, right = 10;
    const auto X = [&](double i) { return x0 + L + i / std::max(T - 1, 1) * (pw - L - right); };
    const auto Y = [&](double a) { return y0 + top + (1 - a) * (ph - top - B); };
    body += fmt::format(R"(<text x="{}" y="{}" font-size="12" font-weight="bold" text-anchor="middle">{}</text>)",
                        x0 + pw / 2, y0 + 14, esc(panels[k].first));
    for (int i = 0; i < T; ++i)  // task boundaries
      body += fmt::format(R"(<line x1="{0:.1f}" x2="{0:.1f}" y1="{1:.1f}" y2="{2:.1f}" stroke="#ddd"/><text x="{0:.1f}" y="{3}" font-size="10" text-anchor="middle">{4}</text>)",
                          X(i), Y(1), Y(0), y0 + ph - B + 12, i);
    for (double a : {0.0, 0.5, 1.0})
      body += fmt::format(R"(<text x="{}" y="{:.1f}" font-size="10" text-anchor="end">{:g}</text>)", x0 + L - 3,
                          Y(a) + 3, 100 * a);
    for (int j = 0; j < T; ++j) {
      std::string pts;
      for (int i = j; i < T; ++i)
        if (std::size_t(j) < R[std::size_t(i)].size())
          pts += fmt::format("{:.1f},{:.1f} ", X(i), Y(std::clamp(R[std::size_t(i)][std::size_t(j)], 0.0, 1.0)));
      body += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="1.8"/>)", pts,
                          colours[std::size_t(j) % std::size(colours)]);
    }
  }
  body += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="middle">x: tasks trained (i); one line per task j, from the phase it is learned; colours: task 0, 1, 2 … in order</text>)",
                      w / 2, h - 6);
  return fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{}</svg>)",
                     w, h, w, h, body);
}

std::string matrix_svg(const json& best, const std::string& title = "Best rule: test accuracy R[i][j] (%)") {
  if (!best.contains("R_test") || best["R_test"].empty())
    return empty_svg("Accuracy matrix of the best rule", "no accuracy matrix recorded");
  const auto R = best["R_test"].get<std::vector<std::vector<double>>>();
  const int rows = int(R.size()), cols = int(R[0].size());
  for (const auto& row : R)  // ragged rows would be read past their end
    if (int(row.size()) != cols)
      throw IoError(fmt::format("best_rule.json: R_test has rows of {} and {} entries: an accuracy matrix has rows of one length",
                                cols, row.size()));
  const int cell = std::clamp(420 / std::max(cols, 1), 28, 80), L = 120, T = 56;
  // Wide enough for the title too (about 8 px a character at 14 px bold).
  const int w = std::max(L + cols * cell + 30, int(title.size()) * 8 + 20), h = T + rows * cell + 50;
  std::string body = fmt::format(
      R"(<text x="{}" y="18" font-size="14" font-weight="bold" text-anchor="middle">{}</text>)", w / 2, esc(title));
  const auto tasks = best.value("tasks", std::vector<std::string>{});
  for (int j = 0; j < cols; ++j)
    body += fmt::format(R"(<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>)", L + j * cell + cell / 2,
                        T - 8, esc(j < int(tasks.size()) ? tasks[std::size_t(j)] : fmt::format("task {}", j)));
  for (int i = 0; i < rows; ++i) {
    body += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>)", L - 6,
                        T + i * cell + cell / 2 + 4, rows == 1 ? std::string("after all") : fmt::format("after task {}", i));
    for (int j = 0; j < cols; ++j) {
      const double a = R[std::size_t(i)][std::size_t(j)];
      body += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="white"/>)", L + j * cell,
                          T + i * cell, cell, cell, ramp(a));
      body += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="{}">{:.1f}</text>)",
                          L + j * cell + cell / 2, T + i * cell + cell / 2 + 4, a > 0.6 ? "black" : "white", 100 * a);
    }
  }
  body += fmt::format(R"(<text x="{}" y="{}" font-size="11" text-anchor="middle">task evaluated (j) → ; rows: after training task i ↓</text>)",
                      L + cols * cell / 2, h - 16);
  return fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{}</svg>)",
                     w, h, w, h, body);
}

const char* kCoefficients[] = {"alpha", "A",   "B",   "C",       "D",        "omega",       "lambda",
                               "bcm",   "kappa", "rho_omega", "s_g", "s_h", "gamma_h", "rho_star",
                               "k_active", "k_normalise", "label_mix", "w_norm"};

std::vector<std::pair<std::string, json>> layers_of(const json& rule) {
  std::vector<std::pair<std::string, json>> out;
  if (rule.contains("hidden"))
    for (std::size_t i = 0; i < rule["hidden"].size(); ++i) out.push_back({fmt::format("hidden{}", i), rule["hidden"][i]});
  if (rule.contains("output")) out.push_back({"output", rule["output"]});
  return out;
}

// sign(v)·(log10|v| + 8), so values from 1e-8 to 1e6 read on one axis and 0 is 0.
double signed_log(double v) { return v == 0 ? 0 : std::copysign(std::max(0.0, std::log10(std::abs(v)) + 8), v); }

std::string coefficients_svg(const json& best) {
  if (!best.contains("rule")) return empty_svg("Coefficients of the best rule", "no best rule yet");
  const auto layers = layers_of(best["rule"]);
  const int n = int(std::size(kCoefficients)), rows = int(layers.size());
  const int bw = 14, gw = n * bw + 40, L = 60, T = 40, H = 220;
  const int w = L + rows * gw + 20, h = T + H + 90;
  std::string body = fmt::format(
      R"(<text x="{}" y="18" font-size="14" font-weight="bold" text-anchor="middle">Coefficients of the best rule per layer: sign·(log10|c| + 8), 0 = off</text>)",
      w / 2);
  const double ymax = 15;  // up to 1e7
  const auto Y = [&](double v) { return T + H / 2 - v / ymax * (H / 2); };
  body += fmt::format(R"(<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#444"/>)", L, w - 20, Y(0), Y(0));
  for (int t : {-12, -8, -4, 4, 8, 12})
    body += fmt::format(R"(<text x="{}" y="{:.1f}" font-size="10" text-anchor="end">{}1e{}</text>)", L - 4, Y(t) + 3,
                        t < 0 ? "−" : "", std::abs(t) - 8);
  for (int li = 0; li < rows; ++li) {
    const int x0 = L + li * gw + 20;
    body += fmt::format(R"(<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>)", x0 + n * bw / 2, T + H + 62,
                        esc(layers[std::size_t(li)].first));
    for (int k = 0; k < n; ++k) {
      const double v = layers[std::size_t(li)].second.value(kCoefficients[k], 0.0);
      const double s = signed_log(v);
      const double y = Y(std::max(s, 0.0)), hgt = std::abs(Y(s) - Y(0));
      body += fmt::format(R"(<rect x="{}" y="{:.1f}" width="{}" height="{:.1f}" fill="{}"><title>{} = {:.4g}</title></rect>)",
                          x0 + k * bw, y, bw - 2, hgt, v < 0 ? "#d62728" : "#1f77b4", kCoefficients[k], v);
      body += fmt::format(R"~(<text x="{}" y="{}" font-size="9" text-anchor="end" transform="rotate(-60 {} {})">{}</text>)~",
                          x0 + k * bw + 6, T + H + 8, x0 + k * bw + 6, T + H + 8, kCoefficients[k]);
    }
  }
  return fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{}</svg>)",
                     w, h, w, h, body);
}

// The terms a step multiplies by η (the rest act on W directly, per step).
bool scaled_by_eta(const std::string& k) { return k == "alpha" || k == "A" || k == "B" || k == "C" || k == "D"; }

// Each coefficient as the genome holds it and, for the terms scaled by η, as
// it acts in the first epoch of a task: × η = train.lr · lr_scale (lr: the
// run's, when known), so terms of one rule compare on one scale.
std::string coefficient_table(const json& rule, double lr) {
  const auto layers = layers_of(rule);
  const double eta = lr * rule.value("lr_scale", 1.0);
  std::string t = "<table><tr><th>coefficient</th>";
  for (const auto& [name, _] : layers)
    t += "<th>" + esc(name) + "</th>" + (lr > 0 ? "<th>" + esc(name) + ", effective</th>" : std::string());
  t += "</tr>";
  for (const char* k : kCoefficients) {
    t += fmt::format("<tr><td>{}</td>", k);
    for (const auto& [_, l] : layers) {
      const double v = l.value(k, 0.0);
      t += fmt::format("<td>{:.4g}</td>", v);
      if (lr > 0) t += scaled_by_eta(k) ? fmt::format("<td>{:.4g}</td>", v * eta) : fmt::format("<td>{:.4g}</td>", v);
    }
    t += "</tr>";
  }
  t += "</table>";
  if (lr > 0)
    t += fmt::format("<p>Effective: α, A, B, C and D × η = train.lr {:g} × lr_scale {:.4g} = {:.4g} (the first "
                     "epoch of a task; later epochs × step γ per epoch); the other terms act per step as they "
                     "are.</p>",
                     lr, rule.value("lr_scale", 1.0), eta);
  return t;
}

}  // namespace

namespace {
fs::path write_report_unchecked(const fs::path& dir);
}  // namespace

// The rules of one protocol of heldout/summary.json in the order evaluated
// (the champion first), or by name in a summary that does not record it.
std::vector<std::string> rule_order(const json& protocol) {
  std::vector<std::string> order;
  if (protocol.contains("labels"))
    for (const auto& l : protocol.at("labels")) order.push_back(l.get<std::string>());
  else
    for (auto it = protocol.at("rules").begin(); it != protocol.at("rules").end(); ++it) order.push_back(it.key());
  return order;
}

// One group of bars per protocol, one bar per rule (the same colour in every
// group), from heldout/summary.json: `key` is acc_mean or forgetting_mean, in %.
std::string heldout_bars_svg(const json& summary, const std::string& key, const std::string& title) {
  std::vector<std::string> rules;
  double hi = 0;
  for (const auto& p : summary.at("protocols"))
    for (const auto& label : rule_order(p)) {
      if (std::find(rules.begin(), rules.end(), label) == rules.end()) rules.push_back(label);
      if (p.at("rules").at(label).contains(key)) hi = std::max(hi, 100 * p.at("rules").at(label).at(key).get<double>());
    }
  const int groups = int(summary.at("protocols").size());
  if (groups == 0 || rules.empty()) return empty_svg(title, "no held-out evaluation");
  Chart c(760, 320, title, 0, groups, 0, std::max(hi * 1.08, 1.0));
  c.axes("", "%", false, false);
  const char* colours[] = {"#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  const double slot = 0.8 / double(rules.size());
  int g = 0;
  for (const auto& p : summary.at("protocols")) {
    for (std::size_t r = 0; r < rules.size(); ++r) {
      if (!p.at("rules").contains(rules[r]) || !p.at("rules").at(rules[r]).contains(key)) continue;
      const double v = 100 * p.at("rules").at(rules[r]).at(key).get<double>();
      const double x0 = g + 0.1 + slot * double(r);
      c.body() += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>)", c.X(x0),
                              c.Y(std::max(v, 0.0)), c.X(x0 + slot * 0.9) - c.X(x0),
                              std::abs(c.Y(0) - c.Y(std::max(v, 0.0))), colours[r % std::size(colours)]);
    }
    c.body() += fmt::format(R"(<text x="{:.1f}" y="{}" font-size="11" text-anchor="middle">{}</text>)", c.X(g + 0.5),
                            320 - 40 + 28, esc(p.at("protocol").get<std::string>()));
    ++g;
  }
  for (std::size_t r = 0; r < rules.size(); ++r) c.legend(int(r), colours[r % std::size(colours)], rules[r]);
  return c.svg();
}

// The held-out evaluation (heldout/summary.json): per protocol, each rule's
// test ACC and the champion's paired difference to it with its 95% interval.
// Training throughput per generation (its first record's "throughput"): the
// total network-images/s and, under mpirun, each rank's with its nets.
std::string throughput_table(const std::vector<json>& rows) {
  std::string body;
  int last = -1;
  std::size_t most_ranks = 1;
  for (const auto& r : rows) {
    const int g = r.value("generation", -1);
    if (g == last || !r.contains("throughput") || !r["throughput"].is_object()) continue;
    last = g;
    const json& t = r["throughput"];
    std::string each;
    const json ranks = t.value("ranks", json::array());
    most_ranks = std::max(most_ranks, ranks.size());
    // Each rank's machine where they ran on more than one (records before 2026-12-02 name none).
    std::vector<std::string> hosts;
    for (const auto& rank : ranks) hosts.push_back(rank.value("host", std::string()));
    const bool machines = std::any_of(hosts.begin(), hosts.end(), [&](const auto& h) { return h != hosts[0]; });
    for (std::size_t k = 0; k < ranks.size(); ++k)
      each += fmt::format("{}{:.0f} ({} nets{})", k ? ", " : "", ranks[k].value("network_images_per_s", 0.0),
                          ranks[k].value("nets", 0), machines ? " on " + esc(hosts[k]) : "");
    body += fmt::format("<tr><td>{}</td><td>{:.0f}</td><td style=\"text-align:left\">{}</td></tr>", g,
                        t.value("network_images_per_s", 0.0), each);
  }
  if (body.empty()) return "";
  return fmt::format("<h2>Throughput</h2><p>Training network-images per second in each generation{}.</p>"
                     "<table><tr><th>generation</th><th>total</th><th>per rank (its nets)</th></tr>{}</table>",
                     most_ranks > 1 ? ", summed over the MPI ranks that trained at the same time" : "", body);
}

std::string heldout_table(const json& summary) {
  std::string h = "<h2>Held-out evaluation</h2><p>Test data, seeds from 1000, protocols the run did not evolve on; "
                  "the difference is champion − rule, paired by seed, with its 95% interval (Student's t). "
                  "Per-protocol folders under heldout/ hold every matrix.</p>"
                  "<table><tr><th>protocol</th><th>rule</th><th>ACC %</th><th>forgetting %</th>"
                  "<th>champion − rule (ACC points)</th></tr>";
  for (const auto& p : summary.at("protocols")) {
    for (const auto& label : rule_order(p)) {
      const json& r = p.at("rules").at(label);
      std::string diff = "—";
      if (r.contains("paired_acc_difference")) {
        const json& d = r["paired_acc_difference"];
        diff = d["ci95"].is_array() ? fmt::format("{:+.2f} [{:+.2f}, {:+.2f}]", 100 * d["mean"].get<double>(),
                                                  100 * d["ci95"][0].get<double>(), 100 * d["ci95"][1].get<double>())
                                    : fmt::format("{:+.2f}", 100 * d["mean"].get<double>());
      }
      h += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.2f}</td><td>{:.2f}</td><td>{}</td></tr>",
                       esc(p.at("protocol").get<std::string>()), esc(label), 100 * r.at("acc_mean").get<double>(),
                       100 * r.at("forgetting_mean").get<double>(), diff);
    }
  }
  return h + "</table>";
}

// Any value of the wrong type in the records (a null where a number belongs,
// a string coefficient) is one line naming the run directory, not a crash.
fs::path write_report(const fs::path& dir) {
  try {
    return write_report_unchecked(dir);
  } catch (const json::exception& e) {
    throw IoError(fmt::format("{}: generations.jsonl or best_rule.json holds a value of the wrong type ({}); the "
                              "records are damaged",
                              dir.string(), e.what()));
  }
}

namespace {

// What a run directory holds for its report; any part may be missing, not all.
struct RunRecords {
  std::string config;      // config.toml's text
  std::vector<json> rows;  // generations.jsonl, a row a generation
  json best;               // best_rule.json
};

RunRecords read_run_records(const fs::path& dir) {
  RunRecords r;
  if (fs::exists(dir / "config.toml")) r.config = read_text(dir / "config.toml");
  if (fs::exists(dir / "generations.jsonl")) {
    std::istringstream in(read_text(dir / "generations.jsonl"));
    int line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (line.empty()) continue;
      try {
        r.rows.push_back(json::parse(line));
      } catch (const json::exception&) {
        throw IoError(fmt::format("{}:{}: not a JSON line; the file is damaged",
                                  (dir / "generations.jsonl").string(), line_no));
      }
    }
  }
  if (fs::exists(dir / "best_rule.json")) {
    try {
      r.best = json::parse(read_text(dir / "best_rule.json"));
    } catch (const json::exception&) {
      throw IoError(fmt::format("{}: not valid JSON", (dir / "best_rule.json").string()));
    }
  }
  if (r.rows.empty() && r.best.is_null())
    throw IoError(fmt::format("{}: no generations.jsonl or best_rule.json — not a run directory, or "
                              "no generation finished yet",
                              dir.string()));
  return r;
}

// The run's configuration, where it reads (an old or edited one: the report
// goes on without the fitness formula and the effective coefficients).
std::optional<RunConfig> readable_config(const std::string& config) {
  if (config.empty()) return std::nullopt;
  try {
    RunConfig c;
    apply_toml(c, config, "config.toml");
    return c;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The champion (or the best rule so far) and its fitness beside the controls', and its test metrics.
std::string champion_html(const json& best) {
  std::string html;
  const auto interval = [](const json& ci) {
    return ci.is_array() && ci.size() == 2 && ci[0].is_number()
               ? fmt::format(" (95% CI {:.4f} to {:.4f})", ci[0].get<double>(), ci[1].get<double>())
               : std::string();
  };
  const std::string origin = best.contains("origin") && best["origin"].is_object()
                                 ? best["origin"].value("text", std::string("?"))
                                 : std::string("?");
  if (best.value("provisional", true))
    html += fmt::format("<p>Best rule so far (provisional: the champion is chosen when the run ends): generation {}, "
                        "individual {} ({}), mean fitness <b>{:.4f}</b> over {} evaluation(s); protocol {}.</p>",
                        best.value("generation", -1), best.value("individual", -1), esc(origin),
                        best.value("fitness", 0.0), best.value("evaluations", 1),
                        esc(best.value("protocol", std::string("?"))));
  else
    html += fmt::format("<p>Champion: first seen in generation {} as individual {} ({}). Fitness on {} fresh "
                        "validation streams <b>{:.4f}</b>{}; protocol {}.</p>",
                        best.value("generation", -1), best.value("individual", -1), esc(origin),
                        best.value("fitness_streams", json::array()).size(), best.value("fitness", 0.0),
                        interval(best.value("fitness_ci95", json())), esc(best.value("protocol", std::string("?"))));
  if (best.contains("controls") && best["controls"].is_object() && !best["controls"].empty()) {
    html += "<table><tr><th>on the same streams</th><th>fitness</th><th>95% CI</th></tr>";
    html += fmt::format("<tr><td>champion</td><td>{:.4f}</td><td>{}</td></tr>", best.value("fitness", 0.0),
                        interval(best.value("fitness_ci95", json())));
    for (auto it = best["controls"].begin(); it != best["controls"].end(); ++it)
      html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(it.key()),
                          it.value()["fitness"].is_number() ? fmt::format("{:.4f}", it.value()["fitness"].get<double>())
                                                            : std::string("diverged"),
                          interval(it.value().value("fitness_ci95", json())));
    html += "</table>";
  }
  if (best.contains("test"))
    html += fmt::format("<p>Test: ACC {:.2f}%, BWT {:.2f}%, FWT {:.2f}%, forgetting {:.2f}%.</p>",
                        100 * best["test"].value("acc", 0.0), 100 * best["test"].value("bwt", 0.0),
                        100 * best["test"].value("fwt", 0.0), 100 * best["test"].value("forgetting", 0.0));
  return html;
}

std::string fitness_formula_html(const RunConfig& cfg) {
  return cfg.fitness == "seed"
             ? fmt::format("<p class=formula>fitness = −({:g}·best validation loss + {:g}·final training loss + "
                           "{:g}·training minutes)</p>",
                           cfg.w_val_loss, cfg.w_train_loss, cfg.w_minutes)
             : fmt::format("<p class=formula>fitness = {:g}·ACC + {:g}·BWT on validation data, the mean over "
                           "{} stream(s) × the protocols {}</p>",
                           cfg.w_acc, cfg.w_bwt, cfg.streams, esc(cfg.protocol));
}

// The rule's feedback, optimiser, formula per layer and coefficients (lr: the run's, 0 where unknown).
std::string rule_html(const json& r, double lr) {
  std::string html =
      fmt::format("<p>feedback <b>{}</b>, optimiser {}, lr scale {:.4g}, step γ {:.3g}, w_max {:.3g}</p>",
                  esc(r.value("feedback", std::string("?"))), esc(r.value("optimizer", std::string("?"))),
                  r.value("lr_scale", 0.0), r.value("step_gamma", 0.0), r.value("w_max", 0.0));
  if (r.contains("formula"))
    for (auto it = r["formula"].begin(); it != r["formula"].end(); ++it)
      html += fmt::format("<p class=formula>{}: {}</p>", esc(it.key()), esc(it.value().get<std::string>()));
  return html + coefficient_table(r, lr);
}

// The held-out evaluation's table and bar charts (written beside the report), or nothing.
std::string heldout_html(const fs::path& dir) {
  if (!fs::exists(dir / "heldout" / "summary.json")) return {};
  const json summary = json::parse(read_text(dir / "heldout" / "summary.json"));
  std::string html = heldout_table(summary);
  for (const auto& [name, key, title] :
       {std::tuple{"heldout_acc.svg", "acc_mean", "Held-out test ACC (%), mean over seeds"},
        std::tuple{"heldout_forgetting.svg", "forgetting_mean", "Held-out forgetting (%), mean over seeds"}}) {
    const std::string svg = heldout_bars_svg(summary, key, title);
    write_atomically(dir / name, svg);
    html += svg;
  }
  return html;
}

fs::path write_report_unchecked(const fs::path& dir) {
  const RunRecords run = read_run_records(dir);
  const std::vector<json>& rows = run.rows;
  const json& best = run.best;
  int generations = 0;
  for (const auto& r : rows) generations = std::max(generations, r.at("generation").get<int>() + 1);

  const std::string first_title =
      "Best rule" + (best.contains("protocol") ? " on " + best["protocol"].get<std::string>() : std::string()) +
      ": test accuracy R[i][j] (%)";
  // Built one by one: GCC 12 frees twice when an initialiser of a string
  // array throws part-way (an aggregate of four pairs did, here).
  std::vector<std::pair<std::string, std::string>> svgs;
  svgs.emplace_back("fitness.svg", fitness_svg(rows));
  svgs.emplace_back("val_loss.svg", val_loss_svg(rows, generations));
  svgs.emplace_back("matrix.svg", matrix_svg(best, first_title));
  svgs.emplace_back("coefficients.svg", coefficients_svg(best));
  for (const auto& [name, svg] : svgs) write_atomically(dir / name, svg);

  std::string html = R"(<!doctype html><html><head><meta charset="utf-8"><title>evoplast run report</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:24px auto;color:#222}h1{font-size:22px}
h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto}.formula{font-family:monospace;font-size:13px}</style></head><body>)";
  html += fmt::format("<h1>evoplast run: {}</h1>", esc(dir.filename().string()));
  if (!best.is_null()) html += champion_html(best);
  const std::optional<RunConfig> run_config = readable_config(run.config);
  html += "<h2>Fitness per generation</h2>";
  if (run_config) html += fitness_formula_html(*run_config);
  html += svgs[0].second;
  html += "<h2>Validation loss during training</h2>" + svgs[1].second;
  html += "<h2>Accuracy matrix of the best rule</h2>" + svgs[2].second;
  // Runs over several protocols: one matrix each (the first is above).
  if (best.contains("protocols") && best["protocols"].size() > 1)
    for (std::size_t q = 1; q < best["protocols"].size(); ++q) {
      const json& pq = best["protocols"][q];
      const std::string svg =
          matrix_svg(pq, "Best rule on " + pq.value("protocol", std::string("?")) + ": test accuracy R[i][j] (%)");
      write_atomically(dir / fmt::format("matrix_{}.svg", q + 1), svg);
      html += svg;
    }
  const std::string curves = task_curves_svg(best);
  write_atomically(dir / "task_curves.svg", curves);
  html += "<h2>Accuracy per task across training</h2>" + curves;
  html += "<h2>The best rule</h2>" + svgs[3].second;
  if (best.contains("rule")) html += rule_html(best["rule"], run_config ? run_config->lr : 0.0);
  html += heldout_html(dir);
  html += throughput_table(rows);
  html += "<h2>Configuration</h2><pre>" + esc(run.config) + "</pre></body></html>\n";
  write_atomically(dir / "report.html", html);
  return dir / "report.html";
}

}  // namespace

}  // namespace evoplast::io
