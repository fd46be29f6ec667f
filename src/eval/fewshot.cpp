#include "svmoe/eval/fewshot.h"

#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <random>

#include "svmoe/util/error.h"

namespace svmoe {
namespace fs = std::filesystem;

std::vector<TrueFalseItem> read_true_false_items(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot read the true/false items '" + path.string() + "'", "check the path");
  std::vector<TrueFalseItem> items;
  std::size_t number = 0;
  const std::string expected = R"(expected {"statement": "...", "label": 0 or 1})";
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(number);
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw FormatError(where + " is not valid JSON (" + std::string(e.what()) + ")", expected);
    }
    if (!json.is_object() || !json.contains("statement") || !json["statement"].is_string() || !json.contains("label") ||
        !json["label"].is_number_integer() || (json["label"].get<int>() != 0 && json["label"].get<int>() != 1)) {
      throw FormatError(where + " is not a true/false item", expected);
    }
    items.push_back({json["statement"].get<std::string>(), json["label"].get<int>()});
  }
  if (items.empty()) throw FormatError("'" + path.string() + "' holds no item", expected + ", one per line");
  return items;
}

namespace {
std::string filled(const std::string& prompt, const std::string& statement) {
  std::string out = prompt;
  const std::string key = "{statement}";
  for (auto at = out.find(key); at != std::string::npos; at = out.find(key, at + statement.size())) {
    out.replace(at, key.size(), statement);
  }
  return out;
}
}  // namespace

std::string few_shot_prompt(const std::vector<TrueFalseItem>& items, std::size_t index,
                            const std::vector<TrueFalseItem>& shots, const FewShotFormat& format) {
  // The pool: per item, every shot but one equal to the item; drawn once, every shot equal to no
  // item (one set for all items must not hold any item's answer).
  std::vector<std::size_t> pool;
  for (std::size_t i = 0; i < shots.size(); ++i) {
    bool usable = true;
    switch (format.draw) {
      case ShotDraw::kPerItem:
        usable = shots[i].statement != items[index].statement;
        break;
      case ShotDraw::kOnce:
        usable = std::none_of(items.begin(), items.end(),
                              [&](const TrueFalseItem& item) { return item.statement == shots[i].statement; });
        break;
    }
    if (usable) pool.push_back(i);
  }
  if (static_cast<std::size_t>(format.shots) > pool.size()) {
    throw ConfigError("eval.fewshot.k is " + std::to_string(format.shots) + " but the shot file has only " +
                          std::to_string(pool.size()) + " usable shots (shots equal to an item are left out)",
                      "lower eval.fewshot.k or add shots");
  }
  // Partial Fisher-Yates with a fixed generator: the same shots on every platform. Per item the
  // generator is seeded with the seed and the item's index; drawn once, with the seed alone.
  std::uint64_t stream = 0;
  switch (format.draw) {
    case ShotDraw::kPerItem:
      stream = index;
      break;
    case ShotDraw::kOnce:
      stream = std::numeric_limits<std::uint64_t>::max();
      break;
  }
  std::mt19937_64 rng(format.seed * 1000003ULL + stream);
  std::string prompt;
  for (int k = 0; k < format.shots; ++k) {
    const std::size_t pick = k + rng() % (pool.size() - k);
    std::swap(pool[k], pool[pick]);
    const TrueFalseItem& shot = shots[pool[k]];
    prompt += filled(format.prompt, shot.statement) + format.answers[shot.label] + format.separator;
  }
  return prompt + filled(format.prompt, items[index].statement);
}

double continuation_log_likelihood(CausalLM& model, const Tokenizer& tokenizer, const std::string& context,
                                   const std::string& continuation, std::int64_t max_tokens) {
  const auto context_ids = tokenizer.encode(context, /*add_special_tokens=*/true);
  auto whole = tokenizer.encode(context + continuation, /*add_special_tokens=*/true);
  // Drop an EOS the tokenizer appends: the continuation ends the text.
  if (!whole.empty() && tokenizer.eos_id() && whole.back() == *tokenizer.eos_id()) whole.pop_back();
  std::size_t shared = context_ids.size();
  if (!context_ids.empty() && tokenizer.eos_id() && context_ids.back() == *tokenizer.eos_id()) --shared;
  std::vector<std::int64_t> ids(whole.begin(), whole.end());
  std::size_t begin = shared;  // the continuation's first token
  if (begin >= ids.size() || !std::equal(ids.begin(), ids.begin() + static_cast<long>(shared), context_ids.begin())) {
    // The boundary merged into one token: encode the two apart.
    ids.assign(context_ids.begin(), context_ids.begin() + static_cast<long>(shared));
    const auto tail = tokenizer.encode(continuation, /*add_special_tokens=*/false);
    ids.insert(ids.end(), tail.begin(), tail.end());
    begin = shared;
  }
  if (begin == 0 || begin >= ids.size()) {
    throw Error("cannot score the answer '" + continuation + "': it has no tokens or the context is empty");
  }
  // Keep the last max_tokens + 1 tokens (inputs are all but the last).
  const auto total = static_cast<std::int64_t>(ids.size());
  const std::int64_t cut = std::max<std::int64_t>(0, total - 1 - max_tokens);
  if (static_cast<std::int64_t>(begin) <= cut) throw Error("the answer does not fit into the model's context");
  torch::NoGradGuard no_grad;
  const auto device = model->parameters().front().device();
  const auto all = torch::tensor(std::vector<std::int64_t>(ids.begin() + cut, ids.end()), torch::kInt64).to(device);
  const auto log_p = torch::log_softmax(
      model->forward(all.narrow(0, 0, all.size(0) - 1).unsqueeze(0)).logits[0].to(torch::kFloat32), -1);
  const std::int64_t first = static_cast<std::int64_t>(begin) - cut;  // index in `all`
  const auto targets = all.narrow(0, first, all.size(0) - first);
  return log_p.narrow(0, first - 1, targets.size(0)).gather(1, targets.unsqueeze(1)).sum().item<double>();
}

TrueFalseScores evaluate_true_false(CausalLM& model, const Tokenizer& tokenizer,
                                    const std::vector<TrueFalseItem>& items, const std::vector<TrueFalseItem>& shots,
                                    const FewShotFormat& format) {
  model->eval();
  const std::int64_t max_tokens = std::max<std::int64_t>(1, model->config().max_position_embeddings);
  std::int64_t correct = 0, correct_norm = 0;
  TrueFalseScores scores;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string prompt = few_shot_prompt(items, i, shots, format);
    double ll[2], normalised[2];
    for (int a = 0; a < 2; ++a) {
      ll[a] = continuation_log_likelihood(model, tokenizer, prompt, format.answers[a], max_tokens);
      // Characters, not bytes: Japanese answers are 3 bytes a character in UTF-8.
      std::size_t characters = 0;
      for (const unsigned char c : format.answers[a]) characters += (c & 0xC0) != 0x80 ? 1 : 0;
      normalised[a] = ll[a] / static_cast<double>(std::max<std::size_t>(1, characters));
    }
    const int prediction = ll[1] > ll[0] ? 1 : 0;
    const int prediction_norm = normalised[1] > normalised[0] ? 1 : 0;
    correct += prediction == items[i].label ? 1 : 0;
    correct_norm += prediction_norm == items[i].label ? 1 : 0;
    scores.predictions.push_back({items[i].label, prediction, prediction_norm, {ll[0], ll[1]}});
  }
  const double n = static_cast<double>(items.size());
  scores.acc = static_cast<double>(correct) / n;
  scores.acc_norm = static_cast<double>(correct_norm) / n;
  scores.items = static_cast<std::int64_t>(items.size());
  return scores;
}

}  // namespace svmoe
