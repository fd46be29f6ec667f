// AdamW (Loshchilov & Hutter), written out so that its state is plain named tensors that
// checkpoints save and restore exactly, on every LibTorch version. The update is PyTorch's:
//   p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// No weight decay on parameters of one dimension (norms, biases), as Megatron-LM and
// transformers' Trainer do. Moments are float32 whatever the parameters' dtype; a parameter
// of lower precision (bf16 mixed precision) gets a float32 master copy that the update is
// applied to and that is rounded into the parameter after each step.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "svmoe/io/safetensors.h"

namespace svmoe {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool master_weights = true;  // float32 master copies of low-precision parameters (false: pure bf16)
};

class AdamW {
 public:
  // Named parameters to train (those that do not require grad are left out).
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> parameters, AdamWOptions options);

  void step(double learning_rate);
  void zero_grad();
  std::int64_t steps() const { return steps_; }
  const std::vector<std::pair<std::string, torch::Tensor>>& parameters() const { return parameters_; }

  // exp_avg.NAME, exp_avg_sq.NAME, master.NAME (low-precision parameters) and "step", to
  // save; and back.
  std::vector<NamedTensor> state() const;
  void load_state(const SafetensorsFile& file);

 private:
  std::vector<std::pair<std::string, torch::Tensor>> parameters_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<torch::Tensor> master_;  // float32 copies of low-precision parameters; undefined otherwise
  AdamWOptions options_;
  std::int64_t steps_ = 0;
};

// Scales the gradients so that their global L2 norm is at most `max_norm` (0: no clipping);
// returns the norm before clipping.
double clip_gradients(const std::vector<std::pair<std::string, torch::Tensor>>& parameters, double max_norm);

// The learning rate at `step` (0-based): linear warmup to `peak` over `warmup` steps, then
// "cosine" or "linear" decay to `peak * min_ratio` at `total` steps, or "constant".
double learning_rate_at(std::int64_t step, std::int64_t total, std::int64_t warmup, double peak, double min_ratio,
                        const std::string& schedule);

}  // namespace svmoe
