// Few-shot true/false by log-likelihood (the paper's Table 3; SPEC.md §5), as
// lm-evaluation-harness scores multiple choice: each item's prompt is k solved shots (drawn
// with the seed from a separate shot file) then the item; the model's answer is the answer
// string of higher log-likelihood after the prompt: summed over its tokens (acc), or divided by
// its length in characters (acc_norm).
//
// Items and shots are JSON Lines: {"statement": "...", "label": 0 | 1} (0: false, 1: true);
// other fields are kept and ignored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "svmoe/config/enums.h"
#include "svmoe/io/eval_results.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/text/tokenizer.h"

namespace svmoe {

struct TrueFalseItem {
  std::string statement;
  int label = 0;
};

// Errors name the file and line.
std::vector<TrueFalseItem> read_true_false_items(const std::filesystem::path& path);

struct FewShotFormat {
  int shots = 5;  // k
  std::uint64_t seed = 1234;
  std::string prompt = "{statement}\n答え:";                // {statement} is replaced
  std::vector<std::string> answers = {" 誤り", " 正しい"};  // [label 0, label 1], appended to the prompt
  std::string separator = "\n\n";                           // between shots, and before the item
  ShotDraw draw = ShotDraw::kPerItem;                       // shots per item, or one set for every item
};

// The prompt of item `index`: k distinct shots with their answers, then the item's prompt. Per
// item (ShotDraw::kPerItem) the shots are drawn with the seed and the index, none equal to the
// item; drawn once (kOnce), the same k for every item, drawn with the seed from the shots equal
// to no item.
std::string few_shot_prompt(const std::vector<TrueFalseItem>& items, std::size_t index,
                            const std::vector<TrueFalseItem>& shots, const FewShotFormat& format);

// Log-likelihood of `continuation` after `context` (lm-evaluation-harness's split: the
// continuation's tokens are those of context + continuation beyond the context's), the context
// cut from the left to fit `max_tokens`.
double continuation_log_likelihood(CausalLM& model, const Tokenizer& tokenizer, const std::string& context,
                                   const std::string& continuation, std::int64_t max_tokens);

// Accuracy over the items, and each item's prediction (io/eval_results.h's TrueFalseScores).
TrueFalseScores evaluate_true_false(CausalLM& model, const Tokenizer& tokenizer,
                                    const std::vector<TrueFalseItem>& items, const std::vector<TrueFalseItem>& shots,
                                    const FewShotFormat& format);

}  // namespace svmoe
