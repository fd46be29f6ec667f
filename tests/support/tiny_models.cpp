#include "tiny_models.h"

#include <torch/torch.h>

#include "svmoe/model/initialization.h"

namespace svmoe::test {

ModelConfig tiny_config(Architecture architecture, std::int64_t vocab_size) {
  ModelConfig c;
  c.architecture = architecture;
  c.vocab_size = vocab_size;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = 256;
  c.rope_theta = 10000.0;
  if (is_moe(architecture)) {
    c.num_local_experts = 4;
    c.num_experts_per_tok = 2;
  }
  switch (architecture) {
    case Architecture::kLlama:
    case Architecture::kMixtral:
    case Architecture::kSoftMoe:
      break;
    case Architecture::kQwen2Moe:
      c.shared_expert_intermediate_size = 24;
      c.qkv_bias = true;
      c.norm_topk_prob = false;
      break;
    case Architecture::kCartesianMoe:
      c.shared_expert_intermediate_size = 12;
      break;
  }
  return c;
}

CausalLM tiny_model(Architecture architecture, std::int64_t vocab_size, std::uint64_t seed, torch::ScalarType dtype) {
  CausalLM model(tiny_config(architecture, vocab_size));
  initialize_weights(*model, 0.1, seed);
  model->to(dtype);
  model->eval();
  return model;
}

}  // namespace svmoe::test
