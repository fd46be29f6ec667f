#include "svmoe/eval/tables.h"

#include <gtest/gtest.h>

namespace svmoe {

namespace {
Table paper_like() {
  Table t;
  t.columns = {{"model", false}, {"LB", false}, {"PPL", true}, {"CMR_1", true}};
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

TEST(Tables, CsvSplitsMeanAndStd) {
  const std::string csv = csv_table(paper_like());
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "model,LB,PPL_mean,PPL_std,CMR_1_mean,CMR_1_std");
  EXPECT_NE(csv.find("\nDense,-,1.156,0.462,,\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nSvMoE,no,1.199,0.434,2.533,2.092\n"), std::string::npos) << csv;
}

}  // namespace svmoe
