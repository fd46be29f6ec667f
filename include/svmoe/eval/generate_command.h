// svmoe generate: prompts from the settings and a file, generated in batches (eval/generation.h),
// printed and optionally written as JSONL (docs/generation.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "svmoe/config/settings.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/text/tokenizer.h"

namespace svmoe {

// A checkpoint ready to generate from: the model (eval mode, on the runtime's device, in `dtype`)
// and the tokenizer beside it, checked to fit the model's vocabulary. svmoe generate and svmoe
// serve both load through it.
struct GenerationModel {
  CausalLM model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  ModelConfig config;
  std::string dtype_name;
  std::string device_name;
};
GenerationModel load_generation_model(const std::filesystem::path& directory, ForwardDtype dtype,
                                      const RuntimeSettings& runtime);

// generate.prompts, then the prompts of generate.prompts_file: a .jsonl file's "prompt" strings,
// or a text file's non-empty lines. FormatError naming the file and line for a bad one.
std::vector<std::string> read_prompts(const GenerateSettings& settings);

// Loads the model and its tokenizer, generates for every prompt, prints each completion (and with
// generate.routing each token's experts) to stdout, logs prompt and generation tokens/s, and writes
// generate.output when set.
void run_generate(const GenerateSettings& settings, const RuntimeSettings& runtime);

}  // namespace svmoe
