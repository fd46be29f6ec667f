#include "svmoe/eval/forward_check.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "svmoe/io/hf_config.h"
#include "svmoe/io/inference_model.h"
#include "svmoe/model/causal_lm.h"
#include "svmoe/model/device.h"
#include "svmoe/util/error.h"

namespace svmoe {

// svmoe forward: one forward pass on given ids, the logits (and every router's logits) out in
// float32, whatever the compute dtype. This is what the Hugging Face reference fixtures are
// compared with (tests/data/models, scripts/gpu/checks.sh): the same ids, the same checkpoint,
// transformers' outputs on one side and these on the other.
std::vector<NamedTensor> run_forward(const ForwardSettings& settings, const RuntimeSettings& runtime) {
  const torch::Device device = resolve_device(runtime.device);
  const ModelConfig config = read_model_config(settings.model);
  const std::string dtype_name = settings.dtype == ForwardDtype::kCheckpoint ? config.dtype : enum_name(settings.dtype);
  const torch::ScalarType dtype = parse_compute_dtype(dtype_name);

  const SafetensorsFile input = SafetensorsFile::open(settings.input);
  if (!input.contains("input_ids")) {
    throw FormatError("'" + settings.input.string() + "' has no tensor named 'input_ids'",
                      "write the token ids as int64 input_ids [batch, length]");
  }
  torch::Tensor input_ids = input.tensor("input_ids");
  if (input_ids.dim() == 1) input_ids = input_ids.unsqueeze(0);  // one sequence: a batch of one
  if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kInt64) {
    throw FormatError("'" + settings.input.string() + "': input_ids must be int64 [batch, length], found " +
                      std::string(c10::toString(input_ids.scalar_type())) + " " + c10::str(input_ids.sizes()));
  }

  CausalLM model = load_model_for_inference(settings.model, {device, dtype, runtime.expert_path});
  spdlog::info("forward: {} ({} layers, {}) on {} in {}, input {}", settings.model.string(), config.num_hidden_layers,
               config.model_type(), device.str(), dtype_name, c10::str(input_ids.sizes()));

  torch::NoGradGuard no_grad;
  const CausalLMOutput output = model->forward(input_ids.to(device));
  std::vector<NamedTensor> tensors = {{"logits", output.logits.to(torch::kCPU, torch::kFloat32)}};
  for (std::size_t l = 0; l < output.router_logits.size(); ++l) {
    tensors.push_back({"router_logits." + std::to_string(l), output.router_logits[l].to(torch::kCPU, torch::kFloat32)});
  }
  return tensors;
}

// Max |difference| per output present in both; true if all are within atol. An output the
// expected file lacks is skipped (a dense reference has no router logits), but one of them at
// least must be compared.
bool compare_outputs(const std::vector<NamedTensor>& outputs, const std::filesystem::path& expected_path, double atol) {
  const SafetensorsFile expected = SafetensorsFile::open(expected_path);
  bool all_close = true;
  std::size_t compared = 0;
  for (const auto& output : outputs) {
    if (!expected.contains(output.name)) continue;
    const torch::Tensor reference = expected.tensor(output.name).to(torch::kFloat32);
    if (reference.sizes() != output.tensor.sizes()) {
      throw FormatError("'" + expected_path.string() + "': '" + output.name + "' has shape " +
                        c10::str(reference.sizes()) + " but svmoe computed " + c10::str(output.tensor.sizes()));
    }
    const double difference = (output.tensor - reference).abs().max().item<double>();
    const bool close = difference <= atol;
    all_close = all_close && close;
    ++compared;
    spdlog::info("compare {:<18} max |difference| {:.3e}  {} (atol {:.0e})", output.name, difference,
                 close ? "ok" : "MISMATCH", atol);
  }
  if (compared == 0) {
    throw FormatError("'" + expected_path.string() + "' holds none of the outputs (logits, router_logits.L)");
  }
  return all_close;
}

void run_forward_check(const ForwardSettings& settings, const RuntimeSettings& runtime) {
  const std::vector<NamedTensor> outputs = run_forward(settings, runtime);
  if (!settings.output.empty()) {
    write_safetensors(settings.output, outputs, {{"producer", "svmoe forward"}});
    spdlog::info("wrote {}", settings.output.string());
  }
  if (!settings.compare.empty() && !compare_outputs(outputs, settings.compare, settings.atol)) {
    throw ComparisonError("svmoe's outputs differ from '" + settings.compare.string() + "' by more than atol " +
                          std::to_string(settings.atol));
  }
}

}  // namespace svmoe
