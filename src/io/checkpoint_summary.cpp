#include "svmoe/io/checkpoint_summary.h"

#include <fmt/format.h>

#include <sstream>

#include "svmoe/io/merge_provenance.h"
#include "svmoe/model/architecture_arithmetic.h"
#include "svmoe/text/tokenizer.h"
#include "svmoe/util/error.h"
#include "svmoe/util/files.h"
#include "svmoe/util/strings.h"

namespace svmoe {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::vector<std::string> parts;
  for (const auto d : shape) parts.push_back(std::to_string(d));
  return "[" + join(parts, ", ") + "]";
}

// One line from svmoe merge's record, if the checkpoint has one: how the MoE was built.
std::string merge_line(const std::filesystem::path& directory) {
  std::optional<MergeProvenance> record;
  try {
    record = read_merge_provenance(directory);
  } catch (const FormatError& error) {
    return error.what();  // inspect describes what it can: the record's fault is one line of it
  }
  if (!record) return "";
  std::string line = "svmoe merge, method " + std::string(enum_name(record->method));
  for (const auto& [parameter, value] : record->parameters) {
    line += fmt::format(", {} {}", merge_parameter_name(parameter), value);
  }
  if (record->moe_kind != MoeKind::kSparse) line += ", " + std::string(enum_name(record->moe_kind)) + " MoE";
  if (record->shared_expert) line += ", shared expert from " + std::string(enum_name(record->shared_expert->init));
  line +=
      fmt::format("; routers {} (std {}), seed {}", enum_name(record->router_init), record->router_std, record->seed);
  return line;
}

}  // namespace

// Three parts: the architecture as config.json states it (one line per aspect, the MoE line by
// architecture), where the checkpoint came from (svmoe merge's record, the tokenizer), and the
// tensors as the safetensors headers list them. The files are mapped and only their headers read, so
// inspecting a 1.8B checkpoint is instant.
std::string describe_checkpoint(const HfCheckpoint& checkpoint) {
  std::ostringstream out;
  const ModelConfig& c = checkpoint.config;
  out << "checkpoint  " << checkpoint.directory.string() << "\n";
  out << fmt::format("model       {} ({})\n", c.model_type(), c.is_moe() ? "MoE" : "dense");
  out << fmt::format("layers      {}   hidden {}   ffn {}   vocab {}\n", c.num_hidden_layers, c.hidden_size,
                     c.intermediate_size, c.vocab_size);
  out << fmt::format("attention   {} heads, {} KV heads, head_dim {}, rope_theta {}\n", c.num_attention_heads,
                     c.num_key_value_heads, c.head_dim, c.rope_theta);
  // The experts line says what "an expert" means for this architecture: CartesianMoE's are
  // sub-experts of two routed sub-layers, Soft MoE routes nothing (every expert sees every
  // position), the sparse kinds pick top-k.
  switch (c.architecture) {
    case Architecture::kLlama:
      break;
    case Architecture::kCartesianMoe:
      out << fmt::format(
          "experts     CartesianMoE: two routed sub-layers a layer, {} sub-experts each (ffn {}), top-{} each{}\n",
          c.num_local_experts, c.intermediate_size, c.num_experts_per_tok,
          c.has_shared_expert() ? fmt::format(", shared expert ffn {}", c.shared_expert_intermediate_size) : "");
      break;
    case Architecture::kSoftMoe:
      out << fmt::format("experts     {} per layer, causal soft mixing (every expert on every position; docs/moe.md)\n",
                         c.num_local_experts);
      break;
    case Architecture::kMixtral:
    case Architecture::kQwen2Moe:
      out << fmt::format("experts     {} per layer, top-{}, router_aux_loss_coef {}\n", c.num_local_experts,
                         c.num_experts_per_tok, c.router_aux_loss_coef);
      if (architecture_row(c.architecture).gated_shared_expert) {
        out << fmt::format("shared      one shared expert a layer (ffn {}) behind a sigmoid gate; norm_topk_prob {}\n",
                           c.shared_expert_intermediate_size, c.norm_topk_prob);
      }
      break;
  }
  out << fmt::format("other       rms_norm_eps {}, tie_word_embeddings {}, max_positions {}, dtype {}\n",
                     c.rms_norm_eps, c.tie_word_embeddings, c.max_position_embeddings, c.dtype);
  out << fmt::format("files       {} safetensors file(s)\n", checkpoint.tensors.files().size());
  if (const std::string built = merge_line(checkpoint.directory); !built.empty()) {
    out << fmt::format("built by    {}\n", built);
  }
  for (const auto& line : tokenizer_report(checkpoint.directory)) out << fmt::format("tokenizer   {}\n", line);
  out << "\n";

  // The tensor table, sorted by name; the total is counted from the headers' shapes
  // and set beside what config.json implies (model/architecture_arithmetic.h), so a checkpoint
  // with a missing or extra tensor shows it as two different numbers.
  std::size_t width = 4;
  for (const auto& name : checkpoint.tensors.names()) width = std::max(width, name.size());
  out << fmt::format("{:<{}}  {:<18} {:<6} {:>14}\n", "name", width, "shape", "dtype", "parameters");
  std::uint64_t total = 0;
  std::uint64_t bytes = 0;
  for (const auto& name : checkpoint.tensors.names()) {
    const TensorEntry& e = checkpoint.tensors.entry(name);
    std::uint64_t count = 1;
    for (const auto d : e.shape) count *= static_cast<std::uint64_t>(d);
    total += count;
    bytes += e.end - e.begin;
    out << fmt::format("{:<{}}  {:<18} {:<6} {:>14}\n", name, width, shape_text(e.shape), dtype_name(e.dtype),
                       format_count(count));
  }
  out << fmt::format("\ntotal: {} tensors, {} parameters ({}); config.json implies {} parameters\n",
                     checkpoint.tensors.names().size(), format_count(total), format_bytes(bytes),
                     format_count(static_cast<std::uint64_t>(parameter_count(c))));
  return out.str();
}

}  // namespace svmoe
