// The HTML report: one self-contained file (inline SVG and CSS, no script, nothing fetched)
// with the paper's figures and tables: loss curves of the runs (Fig. 2), per-layer expert
// selection heatmaps (Fig. 3), a routed text (Fig. 1: tokens coloured by the expert chosen at
// one layer, beside their TF-IDF argmax) and the evaluation tables.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/eval/tables.h"

namespace svmoe {

struct LossCurve {
  std::string name;
  std::vector<std::pair<double, double>> train;  // (step, loss)
  std::vector<std::pair<double, double>> valid;  // (step, validation loss)
};

struct SelectionHeatmap {
  std::string title;                           // "SvMoE (LB no), test split"
  std::vector<std::vector<double>> fractions;  // [layer][expert]
};

struct RoutedText {
  std::string model;
  int layer = 0;
  std::vector<std::string> pieces;  // the text's tokens as text
  std::vector<int> expert;          // the router's top-1 at `layer`, per token
  std::vector<int> tfidf_argmax;    // per token; -1: no TF-IDF target
};

struct ReportTable {
  std::string title;
  Table table;
  int digits = 3;
};

struct ReportContent {
  std::string title;
  std::string subtitle;
  std::vector<LossCurve> curves;
  std::vector<SelectionHeatmap> heatmaps;
  std::vector<RoutedText> routed;
  std::vector<ReportTable> tables;
};

std::string render_report(const ReportContent& content);

// The pieces, for tests and reuse.
std::string loss_curves_svg(const std::vector<LossCurve>& curves);
std::string heatmap_svg(const SelectionHeatmap& heatmap);
std::string routed_text_html(const RoutedText& routed);

// LossCurve from a run's metrics.jsonl lines: the LM loss ("lm_loss", or "loss" for runs that
// log no parts) against "valid_loss", which is the LM loss too; so a +LB run's curve is
// comparable with the others (Fig. 2) rather than raised by alpha x LB.
LossCurve loss_curve_from_metrics(const std::string& name, const std::vector<nlohmann::json>& lines);

}  // namespace svmoe
