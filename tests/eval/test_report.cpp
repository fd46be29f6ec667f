#include "svmoe/eval/report.h"

#include <gtest/gtest.h>

namespace svmoe {

namespace {
ReportContent sample() {
  ReportContent c;
  c.title = "svmoe report";
  c.subtitle = "a <test>";
  c.curves = {{"BTX", {{1, 5.0}, {2, 4.0}, {3, 3.5}}, {{3, 3.8}}}, {"SvMoE", {{1, 5.2}, {2, 4.1}}, {}}};
  c.heatmaps = {{"SvMoE (LB no), test", {{0.5, 0.25, 0.25, 0.0}, {0.1, 0.2, 0.3, 0.4}}}};
  c.routed = {{"SvMoE", 1, {"The", " device", " & tree"}, {0, 2, 3}, {0, -1, 1}}};
  Table t;
  t.columns = {{"model"}, {"PPL", Better::kLower}};
  t.rows = {
      {{"BTX", {}, {}}, {"", 2.0, 0.1}}, {{"SvMoE", {}, {}}, {"", 1.5, 0.2}}, {{"Dense", {}, {}}, {"", 1.7, 0.1}}};
  c.tables = {{"test split", t, 3}};
  return c;
}
}  // namespace

TEST(Report, IsOneSelfContainedPage) {
  const std::string html = render_report(sample());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  // Nothing to fetch: no scripts, no external resources (the SVG namespace is an identifier).
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_NE(html.find("a &lt;test&gt;"), std::string::npos);  // escaped
  for (const char* heading : {"Tables", "Loss curves", "Expert selection per layer", "Routed text"}) {
    EXPECT_NE(html.find(heading), std::string::npos) << heading;
  }
}

TEST(Report, TablesMarkBestAndSecond) {
  const std::string html = render_report(sample());
  EXPECT_NE(html.find("<b>1.500±0.200</b>"), std::string::npos) << html;
  EXPECT_NE(html.find("<u>1.700±0.100</u>"), std::string::npos) << html;
}

TEST(Report, LossCurvesHaveALineForEachRunAndALegend) {
  const std::string svg = loss_curves_svg(sample().curves);
  std::size_t lines = 0;
  for (auto at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++lines;
  EXPECT_EQ(lines, 3u);  // two training curves, one validation curve
  EXPECT_NE(svg.find(">BTX</text>"), std::string::npos);
  EXPECT_NE(svg.find(">SvMoE</text>"), std::string::npos);
  EXPECT_NE(svg.find("optimizer step"), std::string::npos);
}

// A long legend name widens the figure instead of running past its right edge (it was cut off
// in a 1200 px page).
TEST(Report, LegendFitsInsideTheFigure) {
  auto width_of = [](const std::string& svg) {
    const auto at = svg.find("width=\"") + 7;
    return std::stod(svg.substr(at, svg.find('"', at) - at));
  };
  const std::string name = "SvMoE + aux-free balancing (stage 4 resumed)";
  const std::string svg = loss_curves_svg({{name, {{1, 2.0}, {2, 1.5}}, {}}});
  const auto at = svg.find(">" + name + "</text>");
  ASSERT_NE(at, std::string::npos);
  const auto x_at = svg.rfind("x=\"", at) + 3;
  const double x = std::stod(svg.substr(x_at, svg.find('"', x_at) - x_at));
  EXPECT_LE(x + 7.0 * static_cast<double>(name.size()), width_of(svg));
  EXPECT_EQ(width_of(loss_curves_svg(sample().curves)), 730.0);  // short names keep the usual size
}

// Fig. 2 compares LM losses: a +LB run logs loss = lm_loss + alpha x lb_loss, which must not be
// plotted, while validation is the LM loss already.
TEST(Report, TrainingCurvesPlotTheLmLossNotTheTotal) {
  const std::vector<nlohmann::json> lines = {
      {{"step", 10}, {"loss", 3.05}, {"lm_loss", 3.0}, {"lb_loss", 5.0}},
      {{"step", 20}, {"loss", 2.55}, {"lm_loss", 2.5}, {"lb_loss", 5.0}, {"valid_loss", 2.6}},
      {{"step", 30}, {"loss", 2.4}}};  // a run whose objective logs no parts
  const LossCurve curve = loss_curve_from_metrics("BTX +LB", lines);
  ASSERT_EQ(curve.train.size(), 3u);
  EXPECT_DOUBLE_EQ(curve.train[0].second, 3.0);
  EXPECT_DOUBLE_EQ(curve.train[1].second, 2.5);
  EXPECT_DOUBLE_EQ(curve.train[2].second, 2.4);
  ASSERT_EQ(curve.valid.size(), 1u);
  EXPECT_DOUBLE_EQ(curve.valid[0].second, 2.6);
}

TEST(Report, HeatmapCellsShowTheirShares) {
  const std::string svg = heatmap_svg(sample().heatmaps[0]);
  // Rows as the paper counts its blocks, from 1.
  EXPECT_NE(svg.find("l = 1 expert 0: 50.0%"), std::string::npos);
  EXPECT_NE(svg.find("l = 2 expert 3: 40.0%"), std::string::npos);
  EXPECT_NE(svg.find(">l = 2</text>"), std::string::npos);
  EXPECT_NE(svg.find("rgb(255,255,255)"), std::string::npos);  // 0% is white
  EXPECT_NE(svg.find("rgb(8,48,107)"), std::string::npos);     // the largest share is the darkest
}

TEST(Report, TheRoutedTextSaysWhichLayerConventionItPrints) {
  const std::string html = routed_text_html(sample().routed[0]);  // report.layer 1
  EXPECT_NE(html.find("l = 2 (report.layer 1: svmoe counts from 0, the paper from 1)"), std::string::npos) << html;
}

TEST(Report, RoutedTextRowsWrapAtThePageEdge) {
  // Token spans with no space between them only wrap as flex items.
  const std::string html = render_report(sample());
  EXPECT_NE(html.find(".routed { display: flex; flex-wrap: wrap;"), std::string::npos);
}

TEST(Report, RoutedTextColoursTokensByExpertBesideTheTfidfArgmax) {
  const std::string html = routed_text_html(sample().routed[0]);
  EXPECT_NE(html.find("title=\"expert 2\"> device</span>"), std::string::npos) << html;
  EXPECT_NE(html.find("title=\"no TF-IDF target\"> device</span>"), std::string::npos) << html;
  EXPECT_NE(html.find(" &amp; tree"), std::string::npos);
  EXPECT_NE(html.find("1 of 2 tokens with a target routed to their TF-IDF argmax"), std::string::npos) << html;
}

}  // namespace svmoe
