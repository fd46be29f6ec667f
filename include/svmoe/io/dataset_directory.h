// The dataset directory svmoe prepare writes and every later stage reads (docs/formats.md):
// the one owner of its layout and of its format version.
//
//   DATASET/manifest.json                   {"format": "svmoe-dataset", "version", "num_subdomains",
//                                            "vocab_size", tokenizer, shards, tfidf, corpus, ...}
//   DATASET/subdomain_N/{train,valid,test}.{bin,idx}   token shards (io/token_shards.h)
//   DATASET/tfidf.safetensors               tfidf_target [vocab, N] (each token's TF-IDF over the
//                                           subdomains, rows summing to 1), has_target [vocab],
//                                           subdomain_tfidf [N, vocab], token_counts [3, N, vocab]
//                                           (int64, per split in DataSplit order; special tokens
//                                           left out; older datasets lack it)
//   DATASET/tokenizer/                      the tokenizer the shards were made with
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/config/settings.h"
#include "svmoe/text/tfidf.h"

namespace svmoe {

inline constexpr int kDatasetFormatVersion = 1;
inline constexpr const char* kDatasetFormat = "svmoe-dataset";

std::filesystem::path dataset_manifest_path(const std::filesystem::path& dataset);
std::filesystem::path dataset_tfidf_path(const std::filesystem::path& dataset);
std::filesystem::path dataset_tokenizer_dir(const std::filesystem::path& dataset);
// The prefix of one shard: DATASET/subdomain_N/SPLIT.
std::filesystem::path shard_prefix(const std::filesystem::path& dataset, int subdomain, const std::string& split);

// manifest.json, checked: an svmoe dataset of a version this svmoe reads.
struct DatasetManifest {
  std::int64_t num_subdomains = 0;
  std::int64_t vocab_size = 0;
  nlohmann::json json;  // the whole file
};
DatasetManifest read_dataset_manifest(const std::filesystem::path& dataset);
// Writes `manifest` (format and version added) atomically.
void write_dataset_manifest(const std::filesystem::path& dataset, nlohmann::json manifest);

// The shards of `subdomains` (empty: all) of a dataset, checked against its manifest.
struct DatasetShards {
  std::vector<std::filesystem::path> train, valid;
  std::int64_t vocab_size = 0;
  std::filesystem::path tokenizer;  // the directory holding the dataset's tokenizer files
};
DatasetShards dataset_shards(const std::filesystem::path& dataset, const std::vector<std::int64_t>& subdomains);

// The router's teacher: targets float32 [vocab, N] (rows summing to 1), has_target bool [vocab].
struct TfidfTargetTensors {
  torch::Tensor targets, has_target;
};
TfidfTargetTensors teacher_tensors(const TfidfTargets& teacher, std::int64_t subdomains);
// The teacher from tfidf.safetensors: the stored one (training splits, raw tf: SPEC.md §2.4) or,
// for another `teacher`, computed from the stored token counts. With a larger `vocab_size` (a
// model's embedding padded beyond its tokenizer), the extra ids get no target.
TfidfTargetTensors load_tfidf_targets(const std::filesystem::path& dataset, std::int64_t vocab_size = 0,
                                      const TeacherSettings& teacher = {});
// subdomain_tfidf [N, vocab]: each subdomain's TF-IDF row (the BTM ensemble's weights).
torch::Tensor load_subdomain_tfidf(const std::filesystem::path& dataset);
void write_tfidf_file(const std::filesystem::path& dataset, const TfidfTargetTensors& teacher,
                      const torch::Tensor& subdomain_tfidf, const torch::Tensor& token_counts);

}  // namespace svmoe
