// AdamW (Loshchilov & Hutter), written out so that its state is plain named tensors that
// checkpoints save and restore exactly, on every LibTorch version. The update is PyTorch's:
//   p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// No weight decay on parameters of one dimension (norms, biases), as Megatron-LM and
// transformers' Trainer do. Moments are float32 whatever the parameters' dtype; a parameter
// of lower precision (bf16 mixed precision) gets a float32 master copy that the update is
// applied to and that is rounded into the parameter after each step.
//
// Sharded (ZeRO stage 1, Rajbhandari et al. 2020; `train.zero_stage: 1`): with `shards` > 1,
// the trained parameters' elements, in order, are cut into `shards` runs of about equal size at
// row (first-dimension) boundaries; this rank holds the state of, and updates, only its run, and
// the trainer then broadcasts each run from its owner (slice_views). Gradients stay whole on
// every rank (they are all-reduced), so the update, the clipping and the loss curve are the
// unsharded ones.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "svmoe/config/enums.h"
#include "svmoe/io/safetensors.h"

namespace svmoe {

// How the update runs: kLoop, a few tensor operations per parameter; kFused, all parameters
// at once (compat::multi_tensor_adamw: at::_fused_adamw_'s one kernel on LibTorch 2.4+,
// foreach operations before), which needs float32 master weights or float32 parameters;
// kAuto, fused for parameters on a GPU where it applies, the loop otherwise.
enum class AdamWKernel { kAuto, kLoop, kFused };

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool master_weights = true;  // float32 master copies of low-precision parameters (false: pure bf16)
  int shards = 1;              // ranks the state is sharded over (ZeRO-1); 1: not sharded
  int shard = 0;               // this rank's shard
  AdamWKernel kernel = AdamWKernel::kAuto;
};

// Rows [row_begin, row_end) of trained parameter `parameter` (in AdamW::parameters() order),
// whose state shard `shard` holds. A 0-dimensional parameter is one row.
struct ParameterSlice {
  std::size_t parameter = 0;
  std::int64_t row_begin = 0, row_end = 0;
  int shard = 0;
};

// ZeRO-1's partition of parameters of these shapes over `shards`: shard r gets the rows whose
// first element falls in the r-th of `shards` equal runs of all elements. The same on every rank.
std::vector<ParameterSlice> shard_slices(const std::vector<std::vector<std::int64_t>>& shapes, int shards);

class AdamW {
 public:
  // Named parameters to train (those that do not require grad are left out).
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> parameters, AdamWOptions options);

  void step(double learning_rate);
  void zero_grad();
  std::int64_t steps() const { return steps_; }
  const std::vector<std::pair<std::string, torch::Tensor>>& parameters() const { return parameters_; }
  bool sharded() const { return options_.shards > 1; }
  // Every shard's slices (all ranks'), and views of the parameter rows shard `shard` updates.
  const std::vector<ParameterSlice>& partition() const { return partition_; }
  std::vector<torch::Tensor> slice_views(int shard) const;
  // Bytes of state this rank holds (moments and master weights).
  std::int64_t state_bytes() const;

  // exp_avg.NAME, exp_avg_sq.NAME, master.NAME (low-precision parameters) of the rows this
  // rank holds (NAME[B:E] for rows B to E of a parameter split between shards), and "step", to
  // save; and back, from files that together hold them: one file, or the shards of any number
  // of ranks.
  std::vector<NamedTensor> state() const;
  void load_state(const std::vector<SafetensorsFile>& files);

 private:
  bool use_fused_kernel() const;
  void fused_step(double learning_rate);

  std::vector<std::pair<std::string, torch::Tensor>> parameters_;
  std::vector<ParameterSlice> partition_;  // all shards' slices
  std::vector<ParameterSlice> owned_;      // this rank's; the state below is per owned slice
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<torch::Tensor> master_;  // float32 copies of low-precision parameters; undefined otherwise
  AdamWOptions options_;
  std::int64_t steps_ = 0;
};

// Scales the gradients so that their global L2 norm is at most `max_norm` (0: no clipping);
// returns the norm before clipping.
double clip_gradients(const std::vector<std::pair<std::string, torch::Tensor>>& parameters, double max_norm);

// The learning rate at `step` (0-based): linear warmup to `peak` over `warmup` steps, then
// cosine or linear decay to `peak * min_ratio` at `total` steps, or constant.
double learning_rate_at(std::int64_t step, std::int64_t total, std::int64_t warmup, double peak, double min_ratio,
                        LrSchedule schedule);

}  // namespace svmoe
