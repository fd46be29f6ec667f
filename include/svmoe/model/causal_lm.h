// The causal language model of every architecture svmoe builds (model/architecture.h): Hugging
// Face LlamaForCausalLM (dense), MixtralForCausalLM or Qwen2MoeForCausalLM (MoE), and svmoe's
// CartesianMoE and causal Soft MoE. Parameter names equal the checkpoint keys:
// model.embed_tokens.weight, model.layers.{l}.self_attn.q_proj.weight, model.layers.{l}.<the
// architecture's FFN key>.* (mlp, block_sparse_moe or cartesian_moe), model.norm.weight,
// lm_head.weight (absent when the embeddings are tied).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include <string>
#include <vector>

#include "svmoe/model/layers.h"
#include "svmoe/model/model_config.h"
#include "svmoe/model/moe.h"

namespace svmoe {

// What one layer keeps between decoding steps: its attention's keys and values, and a causal
// Soft MoE's running dispatch (the other blocks read only the current position).
struct LayerCache {
  KeyValueCache attention;
  SoftMoeState soft_moe;
};

// The state of incremental decoding for a batch of sequences (docs/generation.md): each step runs
// only the new positions and reads the earlier ones from here. Rows are left-padded: a row's
// padding is never read by its real positions, and its rotary positions start at its first real
// token, so a padded row computes what it would alone.
struct DecodingCache {
  DecodingCache(std::int64_t batch, std::int64_t capacity, std::int64_t layers, torch::Device device);
  std::int64_t length = 0;      // positions filled (padding included)
  std::int64_t capacity = 0;    // positions the cache holds
  torch::Tensor valid;          // [B, capacity] bool: false at padding
  torch::Tensor next_position;  // [B] int64: each row's rotary position for its next real token
  std::vector<LayerCache> layers;
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelConfig& config);
  // Appends the layer's router logits [B*T, experts] to `router_logits` for MoE layers (a
  // CartesianMoE layer's two: A's, then B's).
  // With a cache and a step, x holds a decoding step's new positions (DecodingCache).
  torch::Tensor forward(const torch::Tensor& x, const RotaryTables& rotary, std::vector<torch::Tensor>& router_logits,
                        LayerCache* cache = nullptr, const DecodingStep* step = nullptr);
  // The MoE block of the layer's `sub_layer`-th router (0, or 1 for CartesianMoE's B), whose
  // routing_of_block reads that router's logits.
  const torch::nn::Module& router_block(std::int64_t sub_layer) const;

  RMSNorm input_layernorm{nullptr};
  SelfAttention self_attn{nullptr};
  RMSNorm post_attention_layernorm{nullptr};
  // The FFN block: one of these, registered under its architecture's key (ArchitectureRow::ffn_key,
  // e.g. Qwen2-MoE's sparse block as "mlp", the soft block as "block_sparse_moe").
  Mlp mlp{nullptr};                          // Llama
  SparseMoeBlock block_sparse_moe{nullptr};  // Mixtral, Qwen2-MoE
  CartesianMoeBlock cartesian_moe{nullptr};  // CartesianMoE
  SoftMoeBlock soft_moe{nullptr};            // causal Soft MoE

 private:
  Architecture architecture_;
};
TORCH_MODULE(DecoderLayer);

// Embedding, the blocks and the final norm (Hugging Face's LlamaModel, the "model." prefix).
class DecoderModelImpl : public torch::nn::Module {
 public:
  explicit DecoderModelImpl(const ModelConfig& config);
  // [B, T] -> [B, T, hidden]; MoE layers append their router logits.
  torch::Tensor forward(const torch::Tensor& input_ids, std::vector<torch::Tensor>& router_logits);
  // A decoding step: input_ids [B, n] the new positions, `valid` [B, n] false at left padding.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& valid, DecodingCache& cache,
                        std::vector<torch::Tensor>& router_logits);

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  // Activation checkpointing (`train.activation_checkpointing`): in training with gradients on,
  // each block keeps only its input and recomputes its activations in the backward pass.
  bool activation_checkpointing = false;

 private:
  ModelConfig config_;
};
TORCH_MODULE(DecoderModel);

struct CausalLMOutput {
  torch::Tensor logits;                      // [B, T, vocab]
  std::vector<torch::Tensor> router_logits;  // per router [B*T, experts] (float32); empty for dense models
};

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(const ModelConfig& config);
  CausalLMOutput forward(const torch::Tensor& input_ids);  // int64 [B, T]
  // A decoding step (DecodingCache): logits of the new positions only. `valid` [B, n] bool marks
  // the real tokens; a row's first step may start with left padding, later steps are all valid.
  CausalLMOutput forward(const torch::Tensor& input_ids, const torch::Tensor& valid, DecodingCache& cache);
  // A cache for `batch` rows of up to `capacity` positions on the model's device.
  DecodingCache new_cache(std::int64_t batch, std::int64_t capacity) const;
  // The LM head's weight [vocab, hidden]: lm_head.weight, or the input embeddings when tied.
  torch::Tensor output_embedding() const;

  const ModelConfig& config() const { return config_; }

  DecoderModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tied to model.embed_tokens

 private:
  ModelConfig config_;
};
TORCH_MODULE(CausalLM);

// Throws FormatError (naming the range found and the vocabulary) unless every id in `input_ids`
// is in [0, vocab_size). On a GPU tensor this waits for the device; the trainer checks its
// batches on the CPU, before they move.
void check_token_ids(const torch::Tensor& input_ids, std::int64_t vocab_size);

// Each router's routing of the tokens of `output` (CausalLMOutput::router_logits, in order), as its
// block chooses (routing_of_block): experts and weights [B*T, k] per router; empty for a dense model.
std::vector<Routing> token_routing(const CausalLMImpl& model, const std::vector<torch::Tensor>& router_logits);
// The routers' names in the same order: "layer L", or "layer L.a" / "layer L.b" (CartesianMoE).
std::vector<std::string> router_names(const ModelConfig& config);

// Each router's aux_free selection bias (SparseMoeBlock::selection_bias), in the order of the
// router logits; empty for a dense model. The tensors are the buffers themselves.
std::vector<torch::Tensor> selection_biases(CausalLMImpl& model);

}  // namespace svmoe
