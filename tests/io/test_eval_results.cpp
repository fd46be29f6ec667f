// results.json (io/eval_results.h): what is written reads back the same, and a file that is not
// results.json is an error naming the file and the field.
#include "svmoe/io/eval_results.h"

#include <gtest/gtest.h>

#include "svmoe/io/experiment_directory.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// Every optional part present: a dense row, an MoE row with routing and few-shot scores, the
// BTM row, and the few-shot record.
EvalResults every_field() {
  EvalResults results;
  results.dataset = "runs/x/dataset";
  results.splits = {DataSplit::kValid, DataSplit::kTest};
  results.fewshot =
      FewShotRecord{"items.jsonl", "shots.jsonl", 5, 1234, "{statement}\nAnswer:", {" no", " yes"}, ShotDraw::kOnce};
  const SplitMetrics dense{4, 120, {12.5, 1.25, 4}, std::nullopt};
  SplitMetrics moe{4, 120, {11.0, 0.5, 4}, RoutingMetrics{}};
  moe.routing->cmr_1 = {1.5, 0.5, 480};
  moe.routing->cmr_2 = {};  // no item: mean and std null
  moe.routing->s_rl = {0.6, 0.1, 240};
  moe.routing->expert_counts = {{70, 50}, {60, 60}};
  moe.routing->expert_fraction = {{70.0 / 120, 50.0 / 120}, {0.5, 0.5}};
  results.models.push_back(
      {"Dense", "runs/x/models/dense/final", "-", false, std::nullopt, {{DataSplit::kTest, dense}}, std::nullopt});
  TrueFalseScores scores{0.5, 1.0, 2, {{0, 1, 0, {-3.5, -2.0}}, {1, 1, 1, {-4.0, -1.5}}}};
  results.models.push_back({"BTX",
                            "runs/x/models/btx/final",
                            "no",
                            true,
                            std::nullopt,
                            {{DataSplit::kValid, moe}, {DataSplit::kTest, moe}},
                            scores});
  results.models.push_back({"BTM ensemble",
                            "",
                            "-",
                            false,
                            EnsembleRecord{ExpertCoverage::kPairs, EnsembleWeighting::kDistance},
                            {{DataSplit::kTest, dense}},
                            std::nullopt});
  return results;
}

}  // namespace

TEST(EvalResults, WhatIsWrittenReadsBackTheSame) {
  test::ScratchDir dir;
  const EvalResults written = every_field();
  write_eval_results(dir.path(), written);
  const EvalResults read = read_eval_results(dir.path());
  EXPECT_EQ(to_json(read), to_json(written));
  ASSERT_EQ(read.models.size(), 3u);
  EXPECT_FALSE(read.models[0].splits.at(DataSplit::kTest).routing.has_value());
  EXPECT_FALSE(read.models[1].splits.at(DataSplit::kTest).routing->cmr_2.mean.has_value());
  EXPECT_EQ(read.models[1].fewshot->predictions[1].log_likelihoods[1], -1.5);
  EXPECT_EQ(read.models[2].ensemble->coverage, ExpertCoverage::kPairs);
  // The layout the header documents: the names scripts/paper/loss_study.py reads.
  const Json json = Json::parse(read_text_file(eval_results_file(dir.path())));
  EXPECT_EQ(json["models"][1]["splits"]["test"]["cmr_1"]["mean"], 1.5);
  EXPECT_TRUE(json["models"][1]["splits"]["test"]["cmr_2"]["mean"].is_null());
  EXPECT_EQ(json["models"][2]["ensemble"]["kind"], "btm");
}

TEST(EvalResults, AFileThatIsNotResultsJsonNamesTheFieldAndTheFile) {
  test::ScratchDir dir;
  EXPECT_THROW(read_eval_results(dir.path()), IoError);  // no eval yet
  Json json = to_json(every_field());
  json["models"][1]["splits"]["test"]["cmr_1"]["mean"] = "high";
  write_file_atomically(eval_results_file(dir.path()), json.dump());
  std::string message = test::error_message<FormatError>([&] { read_eval_results(dir.path()); });
  EXPECT_NE(message.find("results.models[1].splits.test.cmr_1.mean"), std::string::npos) << message;
  EXPECT_NE(message.find(eval_results_file(dir.path()).string()), std::string::npos) << message;
  json = to_json(every_field());
  json["splits"] = {"dev"};
  message = test::error_message<FormatError>([&] { eval_results_from_json(json, "results.json"); });
  EXPECT_NE(message.find("the split \"dev\""), std::string::npos) << message;
  write_file_atomically(eval_results_file(dir.path()), "{\"dataset\": ");
  EXPECT_THROW(read_eval_results(dir.path()), FormatError);
}

}  // namespace svmoe
