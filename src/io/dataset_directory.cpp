#include "svmoe/io/dataset_directory.h"

#include <torch/torch.h>

#include "svmoe/io/safetensors.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"

namespace svmoe {
namespace fs = std::filesystem;

fs::path dataset_manifest_path(const fs::path& dataset) { return dataset / "manifest.json"; }
fs::path dataset_tfidf_path(const fs::path& dataset) { return dataset / "tfidf.safetensors"; }
fs::path dataset_tokenizer_dir(const fs::path& dataset) { return dataset / "tokenizer"; }

fs::path shard_prefix(const fs::path& dataset, int subdomain, const std::string& split) {
  return dataset / ("subdomain_" + std::to_string(subdomain)) / split;
}

// The manifest says what the directory is: its format name (so that a model directory given
// as a dataset is refused by name), its version (newer than this svmoe reads: refused, not
// misread) and the two numbers every reader needs before opening a shard.
DatasetManifest read_dataset_manifest(const fs::path& dataset) {
  const fs::path path = dataset_manifest_path(dataset);
  if (!fs::exists(path)) {
    throw IoError("'" + dataset.string() + "' is not a prepared dataset: it has no manifest.json",
                  "run svmoe prepare first, and point to its output directory");
  }
  DatasetManifest manifest;
  try {
    manifest.json = nlohmann::json::parse(read_text_file(path));
    if (manifest.json.value("format", "") != kDatasetFormat) {
      throw FormatError("'" + path.string() + "' is not an svmoe dataset manifest",
                        "point to a directory svmoe prepare wrote");
    }
    const int version = manifest.json.value("version", 0);
    if (version > kDatasetFormatVersion) {
      throw FormatError("'" + path.string() + "' is of dataset format version " + std::to_string(version) +
                            ", newer than this svmoe reads",
                        "use the svmoe that prepared it, or prepare the data again");
    }
    manifest.num_subdomains = manifest.json.at("num_subdomains").get<std::int64_t>();
    manifest.vocab_size = manifest.json.at("vocab_size").get<std::int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("'" + path.string() + "' is not a valid dataset manifest: " + e.what(),
                      "prepare the dataset again");
  }
  return manifest;
}

void write_dataset_manifest(const fs::path& dataset, nlohmann::json manifest) {
  manifest["format"] = kDatasetFormat;
  manifest["version"] = kDatasetFormatVersion;
  write_file_atomically(dataset_manifest_path(dataset), manifest.dump(2) + "\n");
}

// The shard prefixes of the chosen subdomains (all when none are chosen), checked against the
// manifest's count; the tokenizer is the dataset's own copy when prepare made one.
DatasetShards dataset_shards(const fs::path& dataset, const std::vector<std::int64_t>& subdomains) {
  const DatasetManifest manifest = read_dataset_manifest(dataset);
  const std::int64_t n = manifest.num_subdomains;
  std::vector<std::int64_t> chosen = subdomains;
  if (chosen.empty()) {
    for (std::int64_t d = 0; d < n; ++d) chosen.push_back(d);
  }
  DatasetShards shards;
  for (const auto d : chosen) {
    if (d >= n) {
      throw ConfigError("subdomain " + std::to_string(d) + " does not exist: the dataset has " + std::to_string(n) +
                        " (0.." + std::to_string(n - 1) + ")");
    }
    shards.train.push_back(shard_prefix(dataset, static_cast<int>(d), "train"));
    shards.valid.push_back(shard_prefix(dataset, static_cast<int>(d), "valid"));
  }
  shards.vocab_size = manifest.vocab_size;
  shards.tokenizer = fs::is_directory(dataset_tokenizer_dir(dataset)) ? dataset_tokenizer_dir(dataset) : dataset;
  return shards;
}

namespace {

SafetensorsFile open_tfidf_file(const fs::path& dataset, const std::vector<const char*>& names) {
  const fs::path path = dataset_tfidf_path(dataset);
  if (!fs::exists(path)) {
    throw IoError("the dataset '" + dataset.string() + "' has no tfidf.safetensors",
                  "point to a directory svmoe prepare wrote");
  }
  SafetensorsFile file = SafetensorsFile::open(path);
  for (const char* name : names) {
    if (!file.contains(name)) {
      throw FormatError("'" + path.string() + "' has no tensor '" + name + "'", "prepare the dataset again");
    }
  }
  return file;
}

}  // namespace

// text/tfidf.h's targets (row-major [vocab][subdomains] floats and a has-target flag per token)
// as tensors the router's loss indexes by token id.
TfidfTargetTensors teacher_tensors(const TfidfTargets& teacher, std::int64_t subdomains) {
  const auto vocab = static_cast<std::int64_t>(teacher.has_target.size());
  TfidfTargetTensors tensors{
      torch::from_blob(const_cast<float*>(teacher.targets.data()), {vocab, subdomains}, torch::kFloat32).clone(),
      torch::zeros({vocab}, torch::kBool)};
  auto has_target = tensors.has_target.accessor<bool, 1>();
  for (std::int64_t t = 0; t < vocab; ++t) has_target[t] = teacher.has_target[static_cast<std::size_t>(t)];
  return tensors;
}

namespace {

// A teacher variant (train_router.teacher_*) from token_counts [3, N, vocab]: the counts of the
// chosen splits summed per subdomain, then router_teacher (text/tfidf.h).
TfidfTargetTensors teacher_from_counts(const SafetensorsFile& file, const fs::path& path,
                                       const TeacherSettings& teacher) {
  if (!file.contains("token_counts")) {
    throw FormatError("'" + path.string() +
                          "' has no token_counts: it was written by an older svmoe prepare, so "
                          "only the default teacher (train_router.teacher_split: train, teacher_tf: raw) can be read",
                      "prepare the dataset again (svmoe run: delete the dataset directory or run with --from "
                      "prepare), or use the default teacher");
  }
  const torch::Tensor counts = file.tensor("token_counts");  // [3, N, vocab]
  torch::Tensor chosen;
  switch (teacher.split) {
    case TeacherSplit::kTrain:
      chosen = counts[static_cast<std::int64_t>(DataSplit::kTrain)];
      break;
    case TeacherSplit::kAll:
      chosen = counts.sum(0);
      break;
  }
  chosen = chosen.to(torch::kInt64).contiguous();
  const auto subdomains = chosen.size(0);
  const auto vocab = chosen.size(1);
  TokenCounts subdomain_counts(static_cast<std::size_t>(subdomains));
  const auto* data = chosen.data_ptr<std::int64_t>();
  for (std::int64_t d = 0; d < subdomains; ++d) {
    subdomain_counts[static_cast<std::size_t>(d)].assign(data + d * vocab, data + (d + 1) * vocab);
  }
  return teacher_tensors(router_teacher(subdomain_counts, teacher.tf), subdomains);
}

}  // namespace

// The paper's teacher (training split, raw tf) is stored as prepare computed it; the other
// variants are computed here from the stored token counts, so they need no second prepare.
TfidfTargetTensors load_tfidf_targets(const fs::path& dataset, std::int64_t vocab_size,
                                      const TeacherSettings& teacher) {
  const SafetensorsFile file = open_tfidf_file(dataset, {"tfidf_target", "has_target"});
  const bool stored = teacher.split == TeacherSplit::kTrain && teacher.tf == TermFrequency::kRaw;
  TfidfTargetTensors tfidf =
      stored ? TfidfTargetTensors{file.tensor("tfidf_target").clone(), file.tensor("has_target").clone()}
             : teacher_from_counts(file, dataset_tfidf_path(dataset), teacher);
  const std::int64_t rows = tfidf.targets.size(0);
  if (vocab_size > rows) {
    // Ids beyond the tokenizer's vocabulary (padding rows of the embedding) have no target.
    tfidf.targets = torch::cat({tfidf.targets, torch::zeros({vocab_size - rows, tfidf.targets.size(1)})});
    tfidf.has_target = torch::cat({tfidf.has_target, torch::zeros({vocab_size - rows}, torch::kBool)});
  }
  return tfidf;
}

torch::Tensor load_subdomain_tfidf(const fs::path& dataset) {
  return open_tfidf_file(dataset, {"subdomain_tfidf"}).tensor("subdomain_tfidf").clone();
}

void write_tfidf_file(const fs::path& dataset, const TfidfTargetTensors& teacher, const torch::Tensor& subdomain_tfidf,
                      const torch::Tensor& token_counts) {
  write_safetensors(dataset_tfidf_path(dataset),
                    {{"tfidf_target", teacher.targets},
                     {"has_target", teacher.has_target},
                     {"subdomain_tfidf", subdomain_tfidf},
                     {"token_counts", token_counts}},
                    {{"producer", "svmoe prepare"},
                     {"layout",
                      "tfidf_target [vocab, subdomains]; subdomain_tfidf [subdomains, vocab]; token_counts [splits "
                      "(train, valid, test), subdomains, vocab]"}});
}

}  // namespace svmoe
