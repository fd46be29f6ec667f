#include "svmoe/model/causal_lm.h"

#include <torch/torch.h>

#include "svmoe/util/error.h"

namespace svmoe {

DecodingCache::DecodingCache(std::int64_t batch, std::int64_t capacity_, std::int64_t layer_count, torch::Device device)
    : capacity(capacity_),
      valid(torch::zeros({batch, capacity_}, torch::TensorOptions().dtype(torch::kBool).device(device))),
      next_position(torch::zeros({batch}, torch::TensorOptions().dtype(torch::kInt64).device(device))),
      layers(static_cast<std::size_t>(layer_count)) {}

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
                                        std::vector<torch::Tensor>& router_logits, LayerCache* cache,
                                        const DecodingStep* step) {
  const auto h = x + self_attn->forward(input_layernorm(x), rotary, cache ? &cache->attention : nullptr, step);
  const auto normed = post_attention_layernorm(h);
  MoeOutput moe;
  switch (architecture_) {
    case Architecture::kLlama:
      return h + mlp(normed);
    case Architecture::kMixtral:
    case Architecture::kQwen2Moe:
      moe = block_sparse_moe(normed);
      break;
    case Architecture::kSoftMoe:  // the only block that reads earlier positions
      moe = cache != nullptr ? soft_moe->forward_step(normed, step->valid, cache->soft_moe) : soft_moe(normed);
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

const torch::nn::Module& DecoderLayerImpl::router_block(std::int64_t sub_layer) const {
  switch (architecture_) {
    case Architecture::kLlama:
      break;
    case Architecture::kMixtral:
    case Architecture::kQwen2Moe:
      return *block_sparse_moe;
    case Architecture::kCartesianMoe:
      return sub_layer == 0 ? *cartesian_moe->a : *cartesian_moe->b;
    case Architecture::kSoftMoe:
      return *soft_moe;
  }
  throw Error("a dense layer has no router");
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

// A decoding step: the new positions' rotary positions continue each row's count of real tokens,
// and each query reads the real keys up to itself (a padded query reads only itself, so that no
// row of the softmax is empty).
torch::Tensor DecoderModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& valid,
                                        DecodingCache& cache, std::vector<torch::Tensor>& router_logits) {
  const auto n = input_ids.size(1);
  const auto total = cache.length + n;
  if (total > cache.capacity) {
    throw Error("the decoding cache holds " + std::to_string(cache.capacity) + " positions; this step needs " +
                std::to_string(total));
  }
  auto x = embed_tokens(input_ids);  // [B, n, hidden]
  const auto counted = valid.to(torch::kInt64).cumsum(1);
  const auto positions =
      torch::where(valid, cache.next_position.unsqueeze(1) + counted - 1, torch::zeros_like(counted));  // [B, n]
  const auto rotary = rotary_tables_at(config_.head_dim, config_.rope_theta, positions, x.scalar_type());
  cache.valid.narrow(1, cache.length, n).copy_(valid);
  const auto query = torch::arange(cache.length, total, input_ids.options()).unsqueeze(1);           // [n, 1]
  const auto key = torch::arange(total, input_ids.options()).unsqueeze(0);                           // [1, L]
  const auto readable = cache.valid.narrow(1, 0, total).unsqueeze(1) & (key <= query).unsqueeze(0);  // [B, n, L]
  const DecodingStep step{cache.length, cache.capacity, (readable | (key == query).unsqueeze(0)).unsqueeze(1), valid};
  for (std::size_t l = 0; l < layers->size(); ++l) {
    x = layers[l]->as<DecoderLayer>()->forward(x, rotary, router_logits, &cache.layers[l], &step);
  }
  cache.length = total;
  cache.next_position = cache.next_position + counted.select(1, n - 1);
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

CausalLMOutput CausalLMImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& valid, DecodingCache& cache) {
  if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kInt64 || input_ids.size(1) == 0 ||
      !valid.sizes().equals(input_ids.sizes())) {
    throw Error("a decoding step takes int64 input_ids [batch, new > 0] and a bool mask of that shape, got " +
                c10::str(input_ids.sizes()) + " and " + c10::str(valid.sizes()));
  }
  check_token_ids(input_ids, config_.vocab_size);
  CausalLMOutput output;
  const auto hidden = model->forward(input_ids, valid.to(torch::kBool), cache, output.router_logits);
  output.logits = torch::linear(hidden, output_embedding());
  return output;
}

DecodingCache CausalLMImpl::new_cache(std::int64_t batch, std::int64_t capacity) const {
  return DecodingCache(batch, capacity, config_.num_hidden_layers, output_embedding().device());
}

std::vector<Routing> token_routing(const CausalLMImpl& model, const std::vector<torch::Tensor>& router_logits) {
  const std::int64_t sub_layers = architecture_row(model.config().architecture).routed_sub_layers;
  std::vector<Routing> routing;
  if (static_cast<std::int64_t>(router_logits.size()) != model.config().num_routers()) {
    throw Error("token_routing: " + std::to_string(router_logits.size()) + " router outputs for a model with " +
                std::to_string(model.config().num_routers()) + " routers");
  }
  for (std::size_t l = 0; l < model.model->layers->size(); ++l) {
    const auto* layer = model.model->layers->ptr(l)->as<DecoderLayer>();
    for (std::int64_t sub = 0; sub < sub_layers; ++sub) {
      routing.push_back(routing_of_block(layer->router_block(sub), router_logits[routing.size()]));
    }
  }
  return routing;
}

std::vector<std::string> router_names(const ModelConfig& config) {
  const std::int64_t sub_layers = architecture_row(config.architecture).routed_sub_layers;
  std::vector<std::string> names;
  for (std::int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (std::int64_t sub = 0; sub < sub_layers; ++sub) {
      names.push_back("layer " + std::to_string(l) + (sub_layers > 1 ? std::string(sub == 0 ? ".a" : ".b") : ""));
    }
  }
  return names;
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
