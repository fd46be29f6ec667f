// The enum-like settings, each with the names a config file spells it by. A setting is parsed
// into its enum once (by its row in config/setting_rows.cpp, whose choices are the enum's names); code
// past config/ switches on the enum and never compares the spelling.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svmoe {

// How the MoE experts run on their tokens; both give the same result (model/moe.h).
enum class ExpertPath { kAuto, kLoop, kGrouped };

// forward.dtype: the compute dtype of svmoe forward (kCheckpoint: the checkpoint's own).
enum class ForwardDtype { kFloat32, kBFloat16, kFloat16, kCheckpoint };

// prepare.tokenizer_train.model_type: SentencePiece's model.
enum class TokenizerModelType { kUnigram, kBpe };

// prepare.cluster_sizes: how the equal-size clustering balances subdomain sizes (text/clustering.h).
enum class ClusterSizes { kStrict, kEquity };

// train.schedule: the learning rate after warmup (train/optimizer.h).
enum class LrSchedule { kCosine, kLinear, kConstant };

// train.precision: kAuto is float32 on the CPU and kBf16Mixed on CUDA (train/trainer.h).
enum class Precision { kAuto, kFloat32, kBf16Mixed, kBf16 };

// finetune.init / train_experts.init: the model's own weights, or its config with the HF initialiser.
enum class ModelInit { kPretrained, kRandom };

// finetune.load_balancing.method (SPEC.md §4, stage 4).
enum class LoadBalancingMethod { kNone, kSwitch, kAuxFree };

// finetune.load_balancing.pooling (train/load_balancing.h).
enum class LoadBalancingPooling {
  kPooled,    // all layers' tokens pooled into one set of routing decisions (transformers' value)
  kPerLayer,  // computed per layer, then averaged over layers (the Switch Transformer's one loss per layer)
};

// train_router.missing_target: tokens without a TF-IDF target (SPEC.md §4, stage 3).
enum class MissingTarget { kMask, kUniform };

// train_router.loss: the two readings of the paper's l_CE(softmax(RL_l), TFIDF_t) (SPEC.md §4,
// stage 3; docs/training.md).
enum class RouterLoss {
  kSoftCrossEntropy,         // - sum_n T_n log softmax(RL)_n: minimised at the teacher itself
  kSoftmaxThenCrossEntropy,  // F.cross_entropy(softmax(RL), T): log_softmax applied to the probabilities
};

// train_router.teacher_split: which splits' token counts the router's TF-IDF teacher is
// computed from (SPEC.md §2.4; the paper computes it on d_n before describing the split).
enum class TeacherSplit { kTrain, kAll };

// train_router.teacher_tf: the teacher's term frequency, scikit-learn's sublinear_tf = false | true.
enum class TermFrequency {
  kRaw,        // tf = count
  kSublinear,  // tf = 1 + ln(count)
};

// eval.fewshot.draw: k shots drawn afresh for each item, or one set drawn once for all items.
enum class ShotDraw { kPerItem, kOnce };

// eval.splits: a split of a prepared dataset (io/dataset_directory.h).
enum class DataSplit { kTrain, kValid, kTest };

// merge.method: how stage 2 builds the MoE; each method's descriptor is in config/merge_method.h.
enum class MergeMethod { kBtx, kNaive, kNoise, kDropUpcycling, kBtxDropUpcycling };

// Which subdomains each dense expert is trained on (train_experts.coverage, eval.btm.coverage):
// expert n on subdomain n, or expert k on the k-th pair {i, j}, i < j, in lexicographic order
// (Monju's experts of two clusters each; config/expert_coverage.h).
enum class ExpertCoverage { kSubdomains, kPairs };

// eval.btm.weighting: how the BTM ensemble weighs its experts per document (eval/ensemble_weights.h).
enum class EnsembleWeighting { kTfidf, kDistance };

// merge.moe_kind: how the MoE mixes its experts (model/moe.h): Mixtral's top-k routing, the
// causal Soft MoE, or CartesianMoE's two routed sub-layers (svmoe's own checkpoint formats,
// model_type svmoe_soft_moe and svmoe_cartesian_moe).
enum class MoeKind { kSparse, kSoft, kCartesian };

// merge.shared_expert: whether the MoE has Qwen2-MoE's gated shared expert, and what it starts
// from: none (a Mixtral), the base model's FFN, or the mean of the merged models' FFNs.
enum class SharedExpertInit { kNone, kBase, kMean };

// merge.router_init: the routers' distribution, with standard deviation merge.router_init_std.
enum class RouterInit {
  kNormal,   // normal(0, std)
  kUniform,  // uniform, centred on its sample mean (Drop-Upcycling's `torch_rand_002` at std 0.02)
};

// Each enum's spellings, in declaration order.
template <typename E>
struct EnumNames;
template <>
struct EnumNames<ExpertPath> {
  static constexpr std::array<const char*, 3> names = {"auto", "loop", "grouped"};
};
template <>
struct EnumNames<ForwardDtype> {
  static constexpr std::array<const char*, 4> names = {"float32", "bfloat16", "float16", "auto"};
};
template <>
struct EnumNames<TokenizerModelType> {
  static constexpr std::array<const char*, 2> names = {"unigram", "bpe"};
};
template <>
struct EnumNames<ClusterSizes> {
  static constexpr std::array<const char*, 2> names = {"strict", "equity"};
};
template <>
struct EnumNames<LrSchedule> {
  static constexpr std::array<const char*, 3> names = {"cosine", "linear", "constant"};
};
template <>
struct EnumNames<Precision> {
  static constexpr std::array<const char*, 4> names = {"auto", "float32", "bf16_mixed", "bf16"};
};
template <>
struct EnumNames<ModelInit> {
  static constexpr std::array<const char*, 2> names = {"pretrained", "random"};
};
template <>
struct EnumNames<LoadBalancingMethod> {
  static constexpr std::array<const char*, 3> names = {"none", "switch", "aux_free"};
};
template <>
struct EnumNames<LoadBalancingPooling> {
  static constexpr std::array<const char*, 2> names = {"pooled", "per_layer"};
};
template <>
struct EnumNames<MissingTarget> {
  static constexpr std::array<const char*, 2> names = {"mask", "uniform"};
};
template <>
struct EnumNames<RouterLoss> {
  static constexpr std::array<const char*, 2> names = {"soft_cross_entropy", "softmax_then_cross_entropy"};
};
template <>
struct EnumNames<TeacherSplit> {
  static constexpr std::array<const char*, 2> names = {"train", "all"};
};
template <>
struct EnumNames<TermFrequency> {
  static constexpr std::array<const char*, 2> names = {"raw", "sublinear"};
};
template <>
struct EnumNames<ShotDraw> {
  static constexpr std::array<const char*, 2> names = {"per_item", "once"};
};
template <>
struct EnumNames<DataSplit> {
  static constexpr std::array<const char*, 3> names = {"train", "valid", "test"};
};
template <>
struct EnumNames<MergeMethod> {
  static constexpr std::array<const char*, 5> names = {"btx", "naive", "noise", "drop_upcycling", "btx_drop_upcycling"};
};
template <>
struct EnumNames<ExpertCoverage> {
  static constexpr std::array<const char*, 2> names = {"subdomains", "pairs"};
};
template <>
struct EnumNames<EnsembleWeighting> {
  static constexpr std::array<const char*, 2> names = {"tfidf", "distance"};
};
template <>
struct EnumNames<MoeKind> {
  static constexpr std::array<const char*, 3> names = {"sparse", "soft", "cartesian"};
};
template <>
struct EnumNames<SharedExpertInit> {
  static constexpr std::array<const char*, 3> names = {"none", "base", "mean"};
};
template <>
struct EnumNames<RouterInit> {
  static constexpr std::array<const char*, 2> names = {"normal", "uniform"};
};

template <typename E>
const char* enum_name(E value) {
  return EnumNames<E>::names[static_cast<std::size_t>(value)];
}

template <typename E>
std::vector<std::string> enum_names() {
  return {EnumNames<E>::names.begin(), EnumNames<E>::names.end()};
}

// Every value, in declaration order.
template <typename E>
std::vector<E> enum_values() {
  std::vector<E> values;
  for (std::size_t i = 0; i < EnumNames<E>::names.size(); ++i) values.push_back(static_cast<E>(i));
  return values;
}

template <typename E>
std::optional<E> enum_from_name(std::string_view name) {
  for (std::size_t i = 0; i < EnumNames<E>::names.size(); ++i) {
    if (name == EnumNames<E>::names[i]) return static_cast<E>(i);
  }
  return std::nullopt;
}

}  // namespace svmoe
