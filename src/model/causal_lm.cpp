#include "svmoe/model/causal_lm.h"

#include <torch/torch.h>

#include "svmoe/util/error.h"

namespace svmoe {

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) : architecture_(c.architecture) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn", SelfAttention(c));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  const char* ffn_key = architecture_row(c.architecture).ffn_key;
  switch (c.architecture) {
    case Architecture::kLlama:
      mlp = register_module(ffn_key, Mlp(c.hidden_size, c.intermediate_size, c.mlp_bias));
      return;
    case Architecture::kMixtral:
    case Architecture::kQwen2Moe:
      block_sparse_moe = register_module(ffn_key, SparseMoeBlock(c));
      return;
    case Architecture::kCartesianMoe:
      cartesian_moe = register_module(ffn_key, CartesianMoeBlock(c));
      return;
    case Architecture::kSoftMoe:
      soft_moe = register_module(ffn_key, SoftMoeBlock(c));
      return;
  }
}

// Pre-norm: h = x + attention(norm(x)), then y = h + FFN(norm(h)) (CartesianMoE adds its two
// sub-layers' residuals itself).
torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const RotaryTables& rotary,
                                        std::vector<torch::Tensor>& router_logits) {
  const auto h = x + self_attn(input_layernorm(x), rotary);
  const auto normed = post_attention_layernorm(h);
  MoeOutput moe;
  switch (architecture_) {
    case Architecture::kLlama:
      return h + mlp(normed);
    case Architecture::kMixtral:
    case Architecture::kQwen2Moe:
      moe = block_sparse_moe(normed);
      break;
    case Architecture::kSoftMoe:
      moe = soft_moe(normed);
      break;
    case Architecture::kCartesianMoe: {
      CartesianMoeOutput both = cartesian_moe->forward(h, normed);
      router_logits.push_back(both.router_logits_a);
      router_logits.push_back(both.router_logits_b);
      return both.hidden;
    }
  }
  router_logits.push_back(moe.router_logits);
  return h + moe.hidden;
}

namespace {

// A block whose forward keeps only its input (and the rotary tables) for the backward pass,
// which runs the block again with gradients on and back-propagates through that (the
// "reentrant" checkpoint of torch.utils.checkpoint; Chen et al. 2016). Outputs: the block's
// output and, for MoE blocks, its router logits (one or two). The recomputation is the same
// computation, so the gradients equal those without checkpointing.
struct RecomputedBlock : public torch::autograd::Function<RecomputedBlock> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* context, torch::Tensor x,
                                                DecoderLayerImpl* layer, torch::Tensor cos, torch::Tensor sin) {
    context->save_for_backward({x, cos, sin});
    context->saved_data["layer"] = reinterpret_cast<std::int64_t>(layer);
    std::vector<torch::Tensor> router_logits;
    torch::autograd::variable_list outputs = {layer->forward(x, RotaryTables{cos, sin}, router_logits)};
    outputs.insert(outputs.end(), router_logits.begin(), router_logits.end());
    return outputs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list gradients) {
    const auto saved = context->get_saved_variables();
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(context->saved_data["layer"].toInt());
    const auto x = saved[0].detach().requires_grad_(true);
    std::vector<torch::Tensor> outputs, output_gradients;
    {
      torch::AutoGradMode enable(true);
      std::vector<torch::Tensor> router_logits;
      outputs.push_back(layer->forward(x, RotaryTables{saved[1], saved[2]}, router_logits));
      outputs.insert(outputs.end(), router_logits.begin(), router_logits.end());
    }
    std::vector<torch::Tensor> used;
    for (std::size_t i = 0; i < outputs.size() && i < gradients.size(); ++i) {
      if (!gradients[i].defined()) continue;
      used.push_back(outputs[i]);
      output_gradients.push_back(gradients[i]);
    }
    torch::autograd::backward(used, output_gradients);
    return {x.grad(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

DecoderModelImpl::DecoderModelImpl(const ModelConfig& c) : config_(c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) layers->push_back(DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor DecoderModelImpl::forward(const torch::Tensor& input_ids, std::vector<torch::Tensor>& router_logits) {
  auto x = embed_tokens(input_ids);  // [B, T, hidden]
  const auto rotary =
      rotary_tables(config_.head_dim, config_.rope_theta, input_ids.size(1), x.scalar_type(), x.device());
  const bool recompute = activation_checkpointing && is_training() && torch::GradMode::is_enabled();
  for (const auto& layer : *layers) {
    auto* block = layer->as<DecoderLayer>();
    if (!recompute) {
      x = block->forward(x, rotary, router_logits);
      continue;
    }
    // The input must require grad for the backward pass to reach the block at all (the
    // embeddings are frozen when only the routers train).
    if (!x.requires_grad()) x = x.detach().requires_grad_(true);
    const auto outputs = RecomputedBlock::apply(x, block, rotary.cos, rotary.sin);
    x = outputs[0];
    router_logits.insert(router_logits.end(), outputs.begin() + 1, outputs.end());
  }
  return norm(x);
}

CausalLMImpl::CausalLMImpl(const ModelConfig& c) : config_(c) {
  model = register_module("model", DecoderModel(c));
  if (!c.tie_word_embeddings) {
    lm_head = register_module("lm_head",
                              torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.vocab_size).bias(false)));
  }
}

void check_token_ids(const torch::Tensor& input_ids, std::int64_t vocab_size) {
  if (input_ids.numel() == 0) return;
  // One host read for both bounds.
  const auto bounds = torch::stack({input_ids.min(), input_ids.max()}).to(torch::kCPU);
  const auto low = bounds[0].item<std::int64_t>();
  const auto high = bounds[1].item<std::int64_t>();
  if (low < 0 || high >= vocab_size) {
    throw FormatError("input_ids hold token ids in [" + std::to_string(low) + ", " + std::to_string(high) +
                          "], outside the vocabulary [0, " + std::to_string(vocab_size) + ")",
                      "were the ids made with this model's tokenizer?");
  }
}

torch::Tensor CausalLMImpl::output_embedding() const { return lm_head ? lm_head->weight : model->embed_tokens->weight; }

CausalLMOutput CausalLMImpl::forward(const torch::Tensor& input_ids) {
  if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kInt64) {
    throw Error("input_ids must be int64 [batch, length], got " + std::string(c10::toString(input_ids.scalar_type())) +
                " " + c10::str(input_ids.sizes()));
  }
  check_token_ids(input_ids, config_.vocab_size);
  CausalLMOutput output;
  const auto hidden = model->forward(input_ids, output.router_logits);
  output.logits = torch::linear(hidden, output_embedding());
  return output;
}

std::vector<torch::Tensor> selection_biases(CausalLMImpl& model) {
  std::vector<torch::Tensor> biases;
  for (const auto& layer : *model.model->layers) {
    const auto* decoder = layer->as<DecoderLayerImpl>();
    if (decoder->block_sparse_moe) biases.push_back(decoder->block_sparse_moe->selection_bias);
    if (decoder->cartesian_moe) {
      biases.push_back(decoder->cartesian_moe->a->selection_bias);
      biases.push_back(decoder->cartesian_moe->b->selection_bias);
    }
  }
  return biases;
}

}  // namespace svmoe
