// svmoe prepare (SPEC.md §2): a categorised corpus -> N subdomains (equal-size spectral
// clustering of the categories' TF-IDF), token shards per subdomain and split, and the
// router's teacher (each token's TF-IDF over the subdomains, normalised to sum 1).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "svmoe/config/settings.h"

namespace svmoe {

struct CategorySummary {
  std::string name;
  int subdomain = 0;
  bool pinned = false;
  std::uint64_t documents = 0;
  std::uint64_t tokens = 0;
};

struct SplitSummary {
  std::uint64_t documents = 0;
  std::uint64_t tokens = 0;
};

struct SubdomainSummary {
  std::vector<std::string> categories;
  SplitSummary train, valid, test;
};

struct PrepareResult {
  std::filesystem::path dataset;
  std::vector<CategorySummary> categories;  // sorted by name
  std::vector<SubdomainSummary> subdomains;
  std::string table1_markdown;  // tokens per subdomain and split (the paper's Table 1)
  std::string table4_markdown;  // categories per subdomain (the paper's Table 4)
};

// `config_json` is the resolved config, recorded in the manifest.
PrepareResult run_prepare(const PrepareSettings& settings, const RuntimeSettings& runtime, const Json& config_json);

}  // namespace svmoe
