#include "svmoe/eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "svmoe/util/strings.h"

// report.html is one self-contained file (inline SVG and CSS, no script, no fetched asset) so that
// it opens from a cluster's file share or an e-mail attachment. The pictures are the paper's
// figures: loss curves (Fig. 2), expert selection per layer (Fig. 3), routed text (Fig. 1).
namespace svmoe {

namespace {

// Ten distinguishable colours (Tableau 10), for runs and experts.
const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

std::string colour(int index) { return kPalette[((index % 10) + 10) % 10]; }

// About five round tick values covering [low, high]: the step is 1, 2 or 5 times a power of ten,
// the smallest such step that gives at most about five intervals.
std::vector<double> ticks(double low, double high) {
  const double span = high > low ? high - low : 1.0;
  const double raw = span / 5.0;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (const double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * magnitude) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> values;
  for (double v = std::ceil(low / step) * step; v <= high + 1e-9 * span; v += step) values.push_back(v);
  return values;
}

std::string number(double v) { return fmt::format("{:g}", std::abs(v) < 1e-12 ? 0.0 : v); }

}  // namespace

// A run logs its objective ("loss", auxiliary losses included) and the LM loss alone ("lm_loss");
// the curve shows the LM loss where a line has one, since that is what compares across runs.
LossCurve loss_curve_from_metrics(const std::string& name, const std::vector<nlohmann::json>& lines) {
  LossCurve curve{name, {}, {}};
  for (const auto& line : lines) {
    if (!line.contains("step")) continue;
    const double step = line["step"].get<double>();
    const char* key = line.contains("lm_loss") ? "lm_loss" : "loss";
    if (line.contains(key) && line[key].is_number()) curve.train.emplace_back(step, line[key].get<double>());
    if (line.contains("valid_loss") && line["valid_loss"].is_number()) {
      curve.valid.emplace_back(step, line["valid_loss"].get<double>());
    }
  }
  return curve;
}

std::string loss_curves_svg(const std::vector<LossCurve>& curves) {
  // The legend column is as wide as its longest line (about 7.5 px a character at 12 px, CJK
  // characters twice that), so no name is cut off at the page's width.
  std::size_t legend_chars = 0;
  for (const auto& c : curves) {
    std::size_t chars = 0;
    for (std::size_t i = 0; i < c.name.size();) {
      const auto lead = static_cast<unsigned char>(c.name[i]);
      const std::size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
      chars += length >= 3 ? 2 : 1;
      i += length;
    }
    legend_chars = std::max(legend_chars, chars);
  }
  const double plot_width = 490, legend_width = 46 + 7.5 * static_cast<double>(legend_chars);
  // 180: the two notes under the names ("solid: training (LM loss)" at 11 px).
  const double height = 360, left = 60, top = 20, bottom = 45, right = std::max(180.0, legend_width);
  const double width = left + plot_width + right;
  // One shared scale for all runs, x from step 0, y over every point with a 5% margin.
  double x_max = 1, y_min = 1e300, y_max = -1e300;
  for (const auto& c : curves) {
    for (const auto* series : {&c.train, &c.valid}) {
      for (const auto& [x, y] : *series) {
        x_max = std::max(x_max, x);
        y_min = std::min(y_min, y);
        y_max = std::max(y_max, y);
      }
    }
  }
  if (y_min > y_max) y_min = 0, y_max = 1;
  const double pad = (y_max - y_min) * 0.05 + 1e-9;
  y_min -= pad;
  y_max += pad;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  auto px = [&](double x) { return left + x / x_max * plot_w; };
  auto py = [&](double y) { return top + (y_max - y) / (y_max - y_min) * plot_h; };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" "
      "aria-label=\"loss curves\">\n",
      width, height, width, height);
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"#999\"/>\n", left, top,
                     plot_w, plot_h);
  for (const double t : ticks(0, x_max)) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#eee\"/><text x=\"{0:.1f}\" y=\"{3}\" "
        "text-anchor=\"middle\" class=\"tick\">{4}</text>\n",
        px(t), top, top + plot_h, top + plot_h + 16, number(t));
  }
  for (const double t : ticks(y_min, y_max)) {
    svg += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/><text x=\"{3}\" y=\"{4:.1f}\" "
        "text-anchor=\"end\" class=\"tick\">{5}</text>\n",
        left, left + plot_w, py(t), left - 6, py(t) + 4, number(t));
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"axis\">optimizer step</text>\n",
                     left + plot_w / 2, height - 8);
  svg += fmt::format(
      "<text x=\"14\" y=\"{0}\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 14 {0})\">loss "
      "(nats/token)</text>\n",
      top + plot_h / 2);
  // Per run, one colour: training as a solid line, validation dashed with a dot at each
  // evaluation (there are few), and its legend entry.
  for (std::size_t i = 0; i < curves.size(); ++i) {
    const auto& c = curves[i];
    const std::string stroke = colour(static_cast<int>(i));
    std::string points;
    for (const auto& [x, y] : c.train) points += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    if (!points.empty()) {
      svg +=
          fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", stroke, points);
    }
    points.clear();
    for (const auto& [x, y] : c.valid) points += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    if (!points.empty()) {
      svg += fmt::format(
          "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\" points=\"{}\"/>\n",
          stroke, points);
      for (const auto& [x, y] : c.valid) {
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(x), py(y), stroke);
      }
    }
    const double ly = top + 14 + 18 * static_cast<double>(i);
    svg += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"3\"/><text x=\"{4}\" "
        "y=\"{5}\" class=\"legend\">{6}</text>\n",
        left + plot_w + 10, left + plot_w + 30, ly, stroke, left + plot_w + 36, ly + 4, html_escape(c.name));
  }
  const double ly = top + 14 + 18 * static_cast<double>(curves.size()) + 8;
  svg += fmt::format(
      "<text x=\"{0}\" y=\"{1}\" class=\"tick\">solid: training (LM loss)</text>\n"
      "<text x=\"{0}\" y=\"{2}\" class=\"tick\">dashed: validation</text>\n",
      left + plot_w + 10, ly, ly + 15);
  return svg + "</svg>\n";
}

// Layers as rows, experts as columns, each cell's shade the fraction of routing choices that
// went to that expert, scaled to the largest cell (so that an uneven choice shows even when all
// fractions are small); the number in the cell is the percentage.
std::string heatmap_svg(const SelectionHeatmap& heatmap) {
  const std::size_t layers = heatmap.fractions.size();
  const std::size_t experts = layers > 0 ? heatmap.fractions[0].size() : 0;
  const double cell = 44, left = 70, top = 30;
  const double width = left + cell * static_cast<double>(experts) + 20;
  const double height = top + cell * static_cast<double>(layers) + 40;
  double peak = 1e-12;
  for (const auto& row : heatmap.fractions) {
    for (const double f : row) peak = std::max(peak, f);
  }
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\" "
      "aria-label=\"expert selection\">\n",
      width, height);
  svg += fmt::format("<text x=\"{}\" y=\"16\" class=\"axis\">{}</text>\n", left, html_escape(heatmap.title));
  for (std::size_t l = 0; l < layers; ++l) {
    const double y = top + cell * static_cast<double>(l);
    // Rows as the paper labels its blocks: l = 1..L (svmoe's router index + 1).
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" class=\"tick\">l = {}</text>\n", left - 6,
                       y + cell / 2 + 4, l + 1);
    for (std::size_t e = 0; e < experts; ++e) {
      const double f = heatmap.fractions[l][e];
      const double shade = f / peak;  // 0: white, 1: the darkest blue
      const int r = static_cast<int>(255 - shade * (255 - 8)), g = static_cast<int>(255 - shade * (255 - 48)),
                b = static_cast<int>(255 - shade * (255 - 107));
      const double x = left + cell * static_cast<double>(e);
      svg += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{}\" fill=\"rgb({},{},{})\" "
          "stroke=\"#fff\"><title>l = "
          "{} expert {}: {:.1f}%</title></rect><text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" class=\"cell\" "
          "fill=\"{}\">{:.0f}</text>\n",
          x, y, cell, cell, r, g, b, l + 1, e, 100 * f, x + cell / 2, y + cell / 2 + 4, shade > 0.55 ? "#fff" : "#222",
          100 * f);
    }
  }
  for (std::size_t e = 0; e < experts; ++e) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" class=\"tick\">{}</text>\n",
                       left + cell * (static_cast<double>(e) + 0.5), top + cell * static_cast<double>(layers) + 16, e);
  }
  svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" class=\"axis\">expert (% of choices)</text>\n",
      left + cell * static_cast<double>(experts) / 2, top + cell * static_cast<double>(layers) + 34);
  return svg + "</svg>\n";
}

// Two rows of the same tokens, coloured by the router's top-1 expert and by the TF-IDF argmax
// the router was taught (SPEC.md section 4, the router stage), so agreement reads at a glance.
std::string routed_text_html(const RoutedText& routed) {
  auto row = [&](const std::vector<int>& ids, const std::string& label) {
    std::string html = "<div class=\"routed\"><span class=\"label\">" + html_escape(label) + "</span>";
    for (std::size_t i = 0; i < routed.pieces.size(); ++i) {
      const int id = ids[i];
      const std::string style = id >= 0 ? "background:" + colour(id) + "55;border-bottom:3px solid " + colour(id)
                                        : "background:#eee;color:#888";
      html += "<span class=\"tok\" style=\"" + style + "\" title=\"" +
              (id >= 0 ? "expert " + std::to_string(id) : std::string("no TF-IDF target")) + "\">" +
              html_escape(routed.pieces[i]) + "</span>";
    }
    return html + "</div>\n";
  };
  // The paper counts blocks from 1 (its Fig. 1 shows l = 15); report.layer is svmoe's index, from 0.
  std::string html = "<h3>" + html_escape(routed.model) + ", l = " + std::to_string(routed.layer + 1) +
                     " (report.layer " + std::to_string(routed.layer) +
                     ": svmoe counts from 0, the paper from 1)</h3>\n";
  html += row(routed.expert, "router top-1");
  html += row(routed.tfidf_argmax, "TF-IDF argmax");
  std::size_t same = 0, targeted = 0;
  for (std::size_t i = 0; i < routed.pieces.size(); ++i) {
    if (routed.tfidf_argmax[i] < 0) continue;
    ++targeted;
    same += routed.expert[i] == routed.tfidf_argmax[i] ? 1 : 0;
  }
  html += fmt::format("<p class=\"note\">{} of {} tokens with a target routed to their TF-IDF argmax.</p>\n", same,
                      targeted);
  return html;
}

std::string render_report(const ReportContent& content) {
  std::string html = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>)" + html_escape(content.title) +
                     R"(</title>
<style>
body { font-family: "DejaVu Sans", "Noto Sans CJK JP", Arial, sans-serif; margin: 24px 40px; color: #222; max-width: 1100px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 15px; margin: 16px 0 6px; } p.sub { color: #666; margin-top: 0; } p.note { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; } th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg { max-width: 100%; height: auto; } svg text.tick { font-size: 11px; fill: #444; } svg text.axis { font-size: 13px; fill: #222; }
svg text.legend { font-size: 12px; fill: #222; } svg text.cell { font-size: 11px; }
.heatmaps { display: flex; flex-wrap: wrap; gap: 12px; }
.routed { display: flex; flex-wrap: wrap; align-items: baseline; line-height: 2.1; margin: 4px 0; font-family: "DejaVu Sans Mono", monospace; font-size: 13px; }
.routed .label { flex: 0 0 120px; font-family: "DejaVu Sans", sans-serif; color: #555; }
.tok { padding: 1px 1px; margin: 0 1px; white-space: pre; }
.swatch { display: inline-block; padding: 0 8px; margin-right: 6px; font-size: 12px; }
</style></head><body>
)";
  html += "<h1>" + html_escape(content.title) + "</h1>\n<p class=\"sub\">" + html_escape(content.subtitle) + "</p>\n";
  if (!content.tables.empty()) {
    html += "<h2>Tables</h2>\n";
    for (const auto& t : content.tables) {
      html += "<h3>" + html_escape(t.title) + "</h3>\n" + html_table(t.table, t.digits);
    }
    html += "<p class=\"note\">Best value <b>bold</b>, second <u>underlined</u>.</p>\n";
  }
  if (!content.curves.empty()) {
    html += "<h2>Loss curves (the paper's Fig. 2)</h2>\n" + loss_curves_svg(content.curves);
  }
  if (!content.heatmaps.empty()) {
    html += "<h2>Expert selection per layer (the paper's Fig. 3)</h2>\n<div class=\"heatmaps\">\n";
    for (const auto& h : content.heatmaps) html += heatmap_svg(h);
    html += "</div>\n";
  }
  if (!content.routed.empty()) {
    html += "<h2>Routed text (the paper's Fig. 1)</h2>\n<p>Expert colours: ";
    int experts = 0;
    for (const auto& r : content.routed) {
      for (const int e : r.expert) experts = std::max(experts, e + 1);
      for (const int e : r.tfidf_argmax) experts = std::max(experts, e + 1);
    }
    for (int e = 0; e < experts; ++e) {
      html += "<span class=\"swatch\" style=\"background:" + colour(e) + "55;border-bottom:3px solid " + colour(e) +
              "\">" + std::to_string(e) + "</span>";
    }
    html += "<span class=\"swatch\" style=\"background:#eee;color:#888\">no target</span></p>\n";
    for (const auto& r : content.routed) html += routed_text_html(r);
  }
  return html + "</body></html>\n";
}

}  // namespace svmoe
