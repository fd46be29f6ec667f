#include "svmoe/eval/forward_check.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

namespace {

ForwardSettings fixture_settings(const std::string& name) {
  ForwardSettings s;
  s.model = test::model_fixture(name);
  s.input = s.model / "expected.safetensors";  // holds the input_ids the logits were made from
  s.compare = s.model / "expected.safetensors";
  s.atol = 1e-4;
  return s;
}

}  // namespace

TEST(ForwardCheck, MatchesTheFixtureAndWritesWhatItCompared) {
  test::ScratchDir dir;
  ForwardSettings s = fixture_settings("mixtral_4e_top1_gqa");
  s.output = dir / "out.safetensors";
  run_forward_check(s, RuntimeSettings{});
  const SafetensorsFile written = SafetensorsFile::open(s.output);
  EXPECT_TRUE(written.contains("logits"));
  EXPECT_TRUE(written.contains("router_logits.0"));
}

TEST(ForwardCheck, ADifferenceAboveAtolIsAComparisonError) {
  test::ScratchDir dir;
  const ForwardSettings reference = fixture_settings("llama_mha_untied");
  const SafetensorsFile expected = SafetensorsFile::open(reference.compare);
  write_safetensors(dir / "shifted.safetensors",
                    {{"input_ids", expected.tensor("input_ids").clone()},
                     {"logits", expected.tensor("logits").to(torch::kFloat32) + 1e-2}},
                    {});
  ForwardSettings s = reference;
  s.compare = dir / "shifted.safetensors";
  EXPECT_THROW(run_forward_check(s, RuntimeSettings{}), ComparisonError);
  s.atol = 0.1;
  EXPECT_NO_THROW(run_forward_check(s, RuntimeSettings{}));
}

}  // namespace svmoe
