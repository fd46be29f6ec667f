#include "svmoe/eval/tables.h"

#include <gtest/gtest.h>

namespace svmoe {

namespace {
Table paper_like() {
  Table t;
  t.columns = {{"model"}, {"LB"}, {"PPL", Better::kLower}, {"CMR_1", Better::kCloserToTarget, 1.0}};
  t.rows = {{{"Dense", {}, {}}, {"-", {}, {}}, {"", 1.156, 0.462}, {}},
            {{"BTX", {}, {}}, {"yes", {}, {}}, {"", 1.187, 0.407}, {"", 4.063, 2.237}},
            {{"BTX", {}, {}}, {"no", {}, {}}, {"", 1.169, 0.401}, {"", 2.847, 2.025}},
            {{"SvMoE", {}, {}}, {"no", {}, {}}, {"", 1.199, 0.434}, {"", 2.533, 2.092}}};
  return t;
}
}  // namespace

TEST(Tables, MarkdownMarksBestBoldAndSecondUnderlined) {
  const std::string md = markdown_table(paper_like());
  EXPECT_NE(md.find("| model | LB | PPL | CMR_1 |\n|---|---|---|---|\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| Dense | - | **1.156±0.462** | - |"), std::string::npos) << md;
  EXPECT_NE(md.find("| BTX | no | <u>1.169±0.401</u> | <u>2.847±2.025</u> |"), std::string::npos) << md;
  EXPECT_NE(md.find("| SvMoE | no | 1.199±0.434 | **2.533±2.092** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| BTX | yes | 1.187±0.407 | 4.063±2.237 |"), std::string::npos) << md;
}

TEST(Tables, CmrIsBetterTheCloserItIsToK) {
  // CMR_2 of 1.5 is 0.5 from its ideal 2, below it; 2.4 is 0.4 above it: the closer one is best,
  // though "lower is better" would mark 1.5.
  Table t;
  t.columns = {{"model"}, {"CMR_2", Better::kCloserToTarget, 2.0}};
  t.rows = {{{"A", {}, {}}, {"", 1.5, std::nullopt}},
            {{"B", {}, {}}, {"", 2.4, std::nullopt}},
            {{"C", {}, {}}, {"", 3.9, std::nullopt}}};
  const std::string md = markdown_table(t);
  EXPECT_NE(md.find("| B | **2.400** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| A | <u>1.500</u> |"), std::string::npos) << md;
  EXPECT_NE(md.find("| C | 3.900 |"), std::string::npos) << md;
}

TEST(Tables, NoMarkForATieOrAtChanceLevel) {
  Table t;
  t.columns = {{"model"}, {"acc", Better::kHigher, 0.0, 50.0}};
  t.rows = {{{"A", {}, {}}, {"", 50.0, std::nullopt}}, {{"B", {}, {}}, {"", 50.0, std::nullopt}}};
  const std::string tie = markdown_table(t);
  EXPECT_EQ(tie.find("**"), std::string::npos) << tie;
  EXPECT_EQ(tie.find("<u>"), std::string::npos) << tie;
  // Above chance the best is marked; a score at chance is not, even as the second best.
  t.rows.push_back({{"C", {}, {}}, {"", 61.25, std::nullopt}});
  const std::string md = markdown_table(t);
  EXPECT_NE(md.find("| C | **61.25"), std::string::npos) << md;
  EXPECT_EQ(md.find("<u>"), std::string::npos) << md;
  // Lower-is-better columns whose values all tie are not marked either.
  Table same;
  same.columns = {{"model"}, {"PPL", Better::kLower}};
  same.rows = {{{"A", {}, {}}, {"", 2.0, std::nullopt}}, {{"B", {}, {}}, {"", 2.0, std::nullopt}}};
  EXPECT_EQ(markdown_table(same).find("**"), std::string::npos);
}

TEST(Tables, CsvSplitsMeanAndStd) {
  const std::string csv = csv_table(paper_like());
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "model,LB,PPL_mean,PPL_std,CMR_1_mean,CMR_1_std");
  EXPECT_NE(csv.find("\nDense,-,1.156,0.462,,\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nSvMoE,no,1.199,0.434,2.533,2.092\n"), std::string::npos) << csv;
}

}  // namespace svmoe
