// svmoe finetune (SPEC.md §4): train a model as a causal LM on the training splits of some or
// all subdomains of a prepared dataset; on all of them from the base model it is the paper's
// Dense baseline. `init: random` trains from the HF initialiser instead (a base model of
// one's own).
#pragma once

#include "svmoe/config/settings.h"
#include "svmoe/train/trainer.h"

namespace svmoe {

TrainResult run_finetune(const FinetuneSettings& finetune, const TrainSettings& train, const RuntimeSettings& runtime);

// The training shards of `subdomains` (empty: all) of a dataset, checked against its manifest.
struct DatasetShards {
  std::vector<std::filesystem::path> train, valid;
  std::int64_t vocab_size = 0;
  std::filesystem::path tokenizer;  // the directory holding the dataset's tokenizer files
};
DatasetShards dataset_shards(const std::filesystem::path& dataset, const std::vector<std::int64_t>& subdomains);

}  // namespace svmoe
