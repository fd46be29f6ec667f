#include "svmoe/stages/memory_report.h"

#include <gtest/gtest.h>

#include "svmoe/config/settings.h"
#include "test_support.h"

namespace svmoe {

namespace {

ConfigTree paper_experiment(const std::vector<std::string>& overrides = {}) {
  ConfigTree config(default_config());
  config.merge_file(std::filesystem::path(SVMOE_SOURCE_DIR) / "configs" / "paper" / "llm-jp-3-1.8b.yaml");
  config.set("run.base_model", test::model_fixture("llm_jp_3_1_8b_shape").string(), "test");
  for (const auto& assignment : overrides) config.apply_override(assignment);
  return config;
}

}  // namespace

TEST(MemoryReport, ARowPerTrainingStepAndNoNoteWhenEverythingFits) {
  const std::string report = memory_report(paper_experiment(), GpuBudget{});
  for (const char* step : {"experts", "router", "dense", "btx", "btx_lb", "svmoe", "svmoe_lb"}) {
    EXPECT_NE(report.find(std::string("\n") + step + " "), std::string::npos) << step << "\n" << report;
  }
  EXPECT_EQ(report.find("merge "), std::string::npos) << report;  // not a training step
  EXPECT_EQ(report.find(" NO"), std::string::npos) << report;
}

TEST(MemoryReport, AStepThatDoesNotFitGetsAdvice) {
  GpuBudget small;
  small.gpu_memory_gb = 24;
  const std::string report = memory_report(paper_experiment(), small);
  EXPECT_NE(report.find(" NO"), std::string::npos) << report;
  EXPECT_NE(report.find("need"), std::string::npos) << report;
  EXPECT_NE(report.find("  - "), std::string::npos) << report;
}

}  // namespace svmoe
