#include "svmoe/train/optimizer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "svmoe/model/compat.h"
#include "svmoe/util/error.h"

namespace svmoe {

namespace {

std::int64_t rows_of(const std::vector<std::int64_t>& shape) { return shape.empty() ? 1 : shape[0]; }

// The rows of `tensor` a slice covers (a 0-dimensional tensor is its own one row).
torch::Tensor rows(const torch::Tensor& tensor, const ParameterSlice& slice) {
  if (tensor.dim() == 0) return tensor;
  return tensor.narrow(0, slice.row_begin, slice.row_end - slice.row_begin);
}

// "NAME" for a whole parameter, "NAME[B:E]" for some of its rows.
std::string slice_name(const std::string& name, const ParameterSlice& slice, const torch::Tensor& parameter) {
  const std::int64_t all = parameter.dim() == 0 ? 1 : parameter.size(0);
  if (slice.row_begin == 0 && slice.row_end == all) return name;
  return name + "[" + std::to_string(slice.row_begin) + ":" + std::to_string(slice.row_end) + "]";
}

}  // namespace

// Walks every row of every parameter in order; a row whose first element is the o-th of T goes
// to shard floor(o * shards / T), so shards get runs of about T / shards elements, cut only at
// row boundaries. Consecutive rows of one parameter in one shard make one slice.
std::vector<ParameterSlice> shard_slices(const std::vector<std::vector<std::int64_t>>& shapes, int shards) {
  std::int64_t total = 0;
  for (const auto& shape : shapes) {
    std::int64_t numel = 1;
    for (const auto d : shape) numel *= d;
    total += numel;
  }
  std::vector<ParameterSlice> slices;
  std::int64_t offset = 0;  // elements before this row
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const std::int64_t row_count = rows_of(shapes[i]);
    std::int64_t row_elements = 1;
    for (std::size_t d = 1; d < shapes[i].size(); ++d) row_elements *= shapes[i][d];
    for (std::int64_t row = 0; row < row_count; ++row, offset += row_elements) {
      const int shard = total == 0 ? 0
                                   : static_cast<int>(std::min<std::int64_t>(
                                         shards - 1, offset * static_cast<std::int64_t>(shards) / total));
      if (slices.empty() || slices.back().parameter != i || slices.back().shard != shard) {
        slices.push_back({i, row, row + 1, shard});
      } else {
        slices.back().row_end = row + 1;
      }
    }
  }
  return slices;
}

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> parameters, AdamWOptions options) : options_(options) {
  if (options_.shards < 1 || options_.shard < 0 || options_.shard >= options_.shards) {
    throw Error("AdamW: shard " + std::to_string(options_.shard) + " of " + std::to_string(options_.shards),
                "this is a bug in svmoe; please report it");
  }
  std::vector<std::vector<std::int64_t>> shapes;
  for (auto& [name, p] : parameters) {
    if (!p.requires_grad()) continue;
    parameters_.emplace_back(name, p);
    shapes.push_back(p.sizes().vec());
  }
  partition_ = shard_slices(shapes, options_.shards);
  for (const auto& slice : partition_) {
    if (slice.shard != options_.shard) continue;
    owned_.push_back(slice);
    const torch::Tensor p = rows(parameters_[slice.parameter].second, slice);
    // Moments in float32 whatever the parameter's dtype.
    exp_avg_.push_back(torch::zeros_like(p, torch::TensorOptions().dtype(torch::kFloat32)));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::TensorOptions().dtype(torch::kFloat32)));
    const bool needs_master = options_.master_weights && p.scalar_type() != torch::kFloat32;
    master_.push_back(needs_master ? p.detach().to(torch::kFloat32).clone() : torch::Tensor());
  }
}

std::vector<torch::Tensor> AdamW::slice_views(int shard) const {
  std::vector<torch::Tensor> views;
  for (const auto& slice : partition_) {
    if (slice.shard == shard) views.push_back(rows(parameters_[slice.parameter].second, slice));
  }
  return views;
}

std::int64_t AdamW::state_bytes() const {
  std::int64_t bytes = 0;
  for (const auto* list : {&exp_avg_, &exp_avg_sq_, &master_}) {
    for (const auto& t : *list) {
      if (t.defined()) bytes += t.numel() * static_cast<std::int64_t>(t.element_size());
    }
  }
  return bytes;
}

bool AdamW::use_fused_kernel() const {
  // The fused kernel updates float32 tensors: every updated tensor must be a master copy or a
  // float32 parameter (not so for pure bf16 training without master weights).
  bool float32 = true;
  for (std::size_t k = 0; k < owned_.size(); ++k) {
    if (!master_[k].defined() && parameters_[owned_[k].parameter].second.scalar_type() != torch::kFloat32)
      float32 = false;
  }
  switch (options_.kernel) {
    case AdamWKernel::kLoop:
      return false;
    case AdamWKernel::kFused:
      if (!float32) {
        throw Error(
            "AdamW: the fused kernel was asked for, but some trained parameters are not float32 and have no "
            "float32 master copy",
            "use the loop kernel, or keep master weights (AdamWKernel::kAuto chooses for you)");
      }
      return true;
    case AdamWKernel::kAuto:
      break;
  }
  return float32 && !owned_.empty() && parameters_.front().second.is_cuda();
}

void AdamW::fused_step(double learning_rate) {
  // Two calls: the matrices with weight decay, the one-dimensional parameters without.
  struct Lists {
    std::vector<torch::Tensor> parameters, gradients, exp_avgs, exp_avg_sqs;
  } decayed, plain;
  for (std::size_t k = 0; k < owned_.size(); ++k) {
    const torch::Tensor& whole = parameters_[owned_[k].parameter].second;
    if (!whole.grad().defined()) continue;
    Lists& lists = whole.dim() > 1 ? decayed : plain;
    lists.parameters.push_back(master_[k].defined() ? master_[k] : rows(whole, owned_[k]));
    lists.gradients.push_back(rows(whole.grad(), owned_[k]).to(torch::kFloat32));
    lists.exp_avgs.push_back(exp_avg_[k]);
    lists.exp_avg_sqs.push_back(exp_avg_sq_[k]);
  }
  for (const auto* lists : {&decayed, &plain}) {
    compat::multi_tensor_adamw(lists->parameters, lists->gradients, lists->exp_avgs, lists->exp_avg_sqs, steps_,
                               learning_rate, options_.beta1, options_.beta2,
                               lists == &decayed ? options_.weight_decay : 0.0, options_.eps);
  }
  for (std::size_t k = 0; k < owned_.size(); ++k) {
    const torch::Tensor& whole = parameters_[owned_[k].parameter].second;
    if (master_[k].defined() && whole.grad().defined()) rows(whole, owned_[k]).copy_(master_[k]);
  }
}

void AdamW::step(double learning_rate) {
  torch::NoGradGuard no_grad;
  ++steps_;
  if (use_fused_kernel()) {
    fused_step(learning_rate);
    return;
  }
  // The header's update, one owned slice at a time, on the float32 master copy where there is
  // one: decoupled decay first (matrices only), then the moments, then the bias-corrected step.
  const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
  const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
  for (std::size_t k = 0; k < owned_.size(); ++k) {
    const torch::Tensor& whole = parameters_[owned_[k].parameter].second;
    if (!whole.grad().defined()) continue;
    torch::Tensor param = rows(whole, owned_[k]);
    const auto g = rows(whole.grad(), owned_[k]).to(torch::kFloat32);
    torch::Tensor p = master_[k].defined() ? master_[k] : param;
    if (whole.dim() > 1 && options_.weight_decay > 0) p.mul_(1.0 - learning_rate * options_.weight_decay);
    exp_avg_[k].mul_(options_.beta1).add_(g, 1.0 - options_.beta1);
    exp_avg_sq_[k].mul_(options_.beta2).addcmul_(g, g, 1.0 - options_.beta2);
    const auto denominator = (exp_avg_sq_[k].sqrt() / std::sqrt(correction2)).add_(options_.eps);
    const auto update = exp_avg_[k] / denominator * (learning_rate / correction1);
    p.sub_(update.to(p.scalar_type()));
    if (master_[k].defined()) param.copy_(master_[k]);  // rounded into the bf16 parameter
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : parameters_) {
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
}

std::vector<NamedTensor> AdamW::state() const {
  std::vector<NamedTensor> state = {{"step", torch::tensor({steps_}, torch::kInt64)}};
  for (std::size_t k = 0; k < owned_.size(); ++k) {
    const auto& [name, parameter] = parameters_[owned_[k].parameter];
    const std::string key = slice_name(name, owned_[k], parameter);
    state.push_back({"exp_avg." + key, exp_avg_[k]});
    state.push_back({"exp_avg_sq." + key, exp_avg_sq_[k]});
    if (master_[k].defined()) state.push_back({"master." + key, master_[k]});
  }
  return state;
}

void AdamW::load_state(const std::vector<SafetensorsFile>& files) {
  torch::NoGradGuard no_grad;
  steps_ = files.front().tensor("step").item<std::int64_t>();
  for (std::size_t k = 0; k < owned_.size(); ++k) {
    const auto& [name, parameter] = parameters_[owned_[k].parameter];
    const std::int64_t all_rows = parameter.dim() == 0 ? 1 : parameter.size(0);
    std::vector<std::pair<std::string, torch::Tensor*>> targets = {{"exp_avg.", &exp_avg_[k]},
                                                                   {"exp_avg_sq.", &exp_avg_sq_[k]}};
    if (master_[k].defined()) targets.emplace_back("master.", &master_[k]);
    for (const auto& [prefix, target] : targets) {
      // The rows this slice needs, from every stored piece of the parameter that overlaps them.
      const std::string whole = prefix + name;
      std::int64_t covered = 0;
      for (const auto& file : files) {
        for (const auto& entry : file.entries()) {
          std::int64_t begin = 0, end = all_rows;
          if (entry.name != whole) {
            if (entry.name.rfind(whole + "[", 0) != 0 || entry.name.back() != ']') continue;
            const std::string range = entry.name.substr(whole.size() + 1, entry.name.size() - whole.size() - 2);
            const auto colon = range.find(':');
            if (colon == std::string::npos) continue;
            begin = std::stoll(range.substr(0, colon));
            end = std::stoll(range.substr(colon + 1));
          }
          const std::int64_t from = std::max(begin, owned_[k].row_begin), to = std::min(end, owned_[k].row_end);
          if (from >= to) continue;
          const torch::Tensor source = file.tensor(entry.name);
          if (parameter.dim() == 0) {
            target->copy_(source);
          } else {
            target->narrow(0, from - owned_[k].row_begin, to - from).copy_(source.narrow(0, from - begin, to - from));
          }
          covered += to - from;
        }
      }
      if (covered != owned_[k].row_end - owned_[k].row_begin) {
        throw FormatError("the optimizer state '" + slice_name(whole, owned_[k], parameter) + "' is not (wholly) in '" +
                              files.front().path().string() + "'" +
                              (files.size() > 1 ? " or its " + std::to_string(files.size() - 1) + " sibling shard(s)"
                                                : std::string()),
                          "the checkpoint was written for another model or another set of trained parameters, or a "
                          "shard file is missing");
      }
    }
  }
}

double clip_gradients(const std::vector<std::pair<std::string, torch::Tensor>>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  torch::Tensor total;
  for (const auto& [name, p] : parameters) {
    if (!p.grad().defined()) continue;
    const auto squares = p.grad().to(torch::kFloat32).pow(2).sum();
    total = total.defined() ? total + squares : squares;
  }
  if (!total.defined()) return 0.0;
  const double norm = std::sqrt(total.item<double>());
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& [name, p] : parameters) {
      if (p.grad().defined()) p.grad().mul_(scale);
    }
  }
  return norm;
}

double learning_rate_at(std::int64_t step, std::int64_t total, std::int64_t warmup, double peak, double min_ratio,
                        LrSchedule schedule) {
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (schedule == LrSchedule::kConstant) return peak;
  const double span = static_cast<double>(std::max<std::int64_t>(1, total - warmup));
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  const double floor = peak * min_ratio;
  if (schedule == LrSchedule::kLinear) return floor + (peak - floor) * (1.0 - progress);
  return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace svmoe
