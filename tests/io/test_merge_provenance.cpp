// svmoe_merge.json (io/merge_provenance.h): what svmoe merge writes reads back the same; a record
// of an older version, without the later fields, reads with the values it implied; a bad field
// is an error naming the file and the field.
#include "svmoe/io/merge_provenance.h"

#include <gtest/gtest.h>

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using Json = nlohmann::json;

TEST(MergeProvenance, WhatIsWrittenReadsBackTheSame) {
  test::ScratchDir dir;
  MergeProvenance written;
  written.method = MergeMethod::kBtxDropUpcycling;
  written.description = "BTX, each expert's FFN partly re-drawn";
  written.num_experts = 3;
  written.router_init = RouterInit::kUniform;
  written.router_std = 0.02;
  written.seed = 7;
  written.parameters[MergeParameter::kDropRatio] = 0.5;
  written.experts = std::vector<fs::path>{"e/expert_0", "e/expert_1", "e/expert_2"};
  written.base_model = "base/final";
  written.moe_kind = MoeKind::kCartesian;
  written.shared_expert = SharedExpertRecord{SharedExpertInit::kMean, "none"};
  write_file_atomically(dir.path() / kMergeProvenanceFile, to_json(written).dump(2));
  const std::optional<MergeProvenance> read = read_merge_provenance(dir.path());
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(to_json(*read), to_json(written));
  EXPECT_EQ(read->parameters.at(MergeParameter::kDropRatio), 0.5);
  EXPECT_EQ(read->experts->size(), 3u);
  EXPECT_EQ(to_json(written)["drop_ratio"], 0.5);  // the parameter under its name in the file
}

TEST(MergeProvenance, AnOlderRecordReadsWithTheValuesItImplied) {
  const MergeProvenance old = merge_provenance_from_json(Json{{"num_experts", 8}}, "svmoe_merge.json");
  EXPECT_EQ(old.method, MergeMethod::kBtx);
  EXPECT_EQ(old.moe_kind, MoeKind::kSparse);
  EXPECT_EQ(old.router_init, RouterInit::kNormal);
  EXPECT_FALSE(old.shared_expert.has_value());
  test::ScratchDir dir;
  EXPECT_FALSE(read_merge_provenance(dir.path()).has_value());  // not made by svmoe merge
}

TEST(MergeProvenance, ABadFieldNamesTheFileAndTheField) {
  const std::string message = test::error_message<FormatError>([] {
    merge_provenance_from_json(Json{{"method", "btx"}, {"moe_kind", "dense"}}, "moe/svmoe_merge.json");
  });
  EXPECT_NE(message.find("moe/svmoe_merge.json"), std::string::npos) << message;
  EXPECT_NE(message.find("moe_kind 'dense'"), std::string::npos) << message;
  EXPECT_NE(message.find("sparse"), std::string::npos) << message;
  EXPECT_THROW(merge_provenance_from_json(Json{{"num_experts", "eight"}}, "x.json"), FormatError);
}

}  // namespace svmoe
