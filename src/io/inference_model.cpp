#include "svmoe/io/inference_model.h"

#include "svmoe/io/hf_checkpoint.h"
#include "svmoe/model/device.h"
#include "svmoe/model/moe.h"

namespace svmoe {

CausalLM load_model_for_inference(const std::filesystem::path& directory, const InferenceOptions& options) {
  const HfCheckpoint checkpoint = load_hf_checkpoint(directory);
  // The dtype is set before the weights load, so they are converted once as they are copied in;
  // the device move comes after, so a GPU never holds the float32 initialisation.
  CausalLM model(checkpoint.config);
  model->to(options.dtype ? *options.dtype : parse_compute_dtype(checkpoint.config.dtype));
  load_weights(*model, checkpoint);
  model->to(options.device);
  model->eval();
  set_expert_path(*model, options.expert_path);
  return model;
}

}  // namespace svmoe
