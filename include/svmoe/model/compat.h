// Every difference between the LibTorch versions svmoe builds against (1.13 on Debian 12 for
// CI, 2.x from pip on the GPU machine) lives here.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

#ifdef SVMOE_HAVE_C10_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace svmoe::compat {

template <typename StoreOptions>
auto detect_use_libuv(StoreOptions& options, int) -> decltype(options.useLibUV, std::true_type{});
template <typename StoreOptions>
std::false_type detect_use_libuv(StoreOptions&, long);

// The CUDA caching allocator's peak of allocated bytes on `device` since the last reset;
// nullopt on the CPU or where this LibTorch has no CUDA. (Same call in 1.13 and 2.x.)
inline std::optional<std::int64_t> cuda_peak_memory_bytes(const torch::Device& device) {
#ifdef SVMOE_HAVE_C10_CUDA
  if (device.is_cuda()) {
    const auto index = device.has_index() ? device.index() : 0;
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    return stats.allocated_bytes[0].peak;  // [0]: StatType::AGGREGATE, whose namespace moved in 2.x
  }
#endif
  (void)device;
  return std::nullopt;
}
inline void reset_cuda_peak_memory(const torch::Device& device) {
#ifdef SVMOE_HAVE_C10_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#endif
  (void)device;
}

// The c10d class that ProcessGroupGloo and ProcessGroupNCCL derive from (and that holds
// allreduce and barrier): ProcessGroup in 1.13, Backend from 2.0 on.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// TCPStore's libuv backend: the default from LibTorch 2.4 on (TCPStoreOptions::useLibUV), but
// builds without libuv (Debian's) refuse it. Turns it off where the option exists; false where
// there is nothing to turn off (1.x).
template <typename StoreOptions>
bool turn_off_tcp_store_libuv(StoreOptions& options) {
  if constexpr (std::is_same_v<decltype(detect_use_libuv(options, 0)), std::true_type>) {
    if (!options.useLibUV) return false;
    options.useLibUV = false;
    return true;
  } else {
    return false;
  }
}

// The autograd graph's node handle: std::shared_ptr in 1.x, c10::intrusive_ptr from 2.x on.
using AutogradNodePtr = std::decay_t<decltype(std::declval<torch::Tensor>().grad_fn())>;

// Causal self-attention. q: [B, H, T, D], k and v: [B, H, T, D] (KV heads already repeated).
// LibTorch 2.x: at::scaled_dot_product_attention (flash / memory-efficient kernels on CUDA).
// LibTorch 1.13: the exact math, softmax in float32 as Hugging Face's eager attention does.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true);
#else
  const auto t = q.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, T, T]
  const auto future = torch::ones({t, t}, torch::dtype(torch::kBool).device(q.device())).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  const auto weights = torch::softmax(scores.to(torch::kFloat32), -1).to(q.scalar_type());
  return torch::matmul(weights, v);
#endif
}

// Attention with an explicit mask [B, 1, Tq, Tk] (bool, true: the query may read the key), as
// incremental decoding and left-padded batches need. Every query must see at least one key.
inline torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& mask) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, mask);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, Tq, Tk]
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  const auto weights = torch::softmax(scores.to(torch::kFloat32), -1).to(q.scalar_type());
  return torch::matmul(weights, v);
#endif
}

// (begin, length) of each group of rows whose cumulative ends are `offsets` (read on the host).
inline std::vector<std::pair<std::int64_t, std::int64_t>> host_groups(const torch::Tensor& offsets) {
  const auto ends = offsets.to(torch::kCPU, torch::kInt64);
  const auto* end = ends.data_ptr<std::int64_t>();
  std::vector<std::pair<std::int64_t, std::int64_t>> groups;
  std::int64_t begin = 0;
  for (std::int64_t g = 0; g < ends.size(0); ++g) {
    groups.emplace_back(begin, end[g] - begin);
    begin = end[g];
  }
  return groups;
}

// Whether this LibTorch's at::_grouped_mm runs on the CPU (2.14 does, for float32, bfloat16
// and float16, with the CUDA kernel's 16-byte stride rule; the version that added it is not
// part of the API, so it is asked once with a small product).
inline bool cpu_grouped_mm_available() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  static const bool available = [] {
    try {
      at::_grouped_mm(torch::ones({2, 8}), torch::ones({1, 8, 8}), torch::full({1}, 2, torch::kInt32));
      return true;
    } catch (const c10::Error&) {
      return false;
    }
  }();
  return available;
#else
  return false;
#endif
}

// Grouped matrix product: the rows of `a` [M, K] fall into G consecutive groups whose ends are
// `offsets` (int32 [G], cumulative, on a's device); group g's rows are multiplied by b[g]
// ([G, K, N]), giving [M, N]. LibTorch 2.8+ has one kernel for it (at::_grouped_mm; CUTLASS
// on Hopper, bf16), used on CUDA bf16 tensors whose strides it accepts (multiples of 16 bytes)
// without reading the offsets on the host, and likewise on the CPU where LibTorch has a
// kernel there (float32, bf16 or f16). Everywhere else: one matmul per group (the offsets are
// copied to the host).
inline bool has_grouped_mm_kernel(const torch::Tensor& a, const torch::Tensor& b) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  const auto aligned = [](const torch::Tensor& t) {
    const auto unit = 16 / static_cast<std::int64_t>(t.element_size());
    const auto rows = t.stride(-2), columns = t.stride(-1);
    const bool strides = (columns == 1 && rows % unit == 0) || (rows == 1 && columns % unit == 0);
    return strides && reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0;
  };
  if (a.device().is_cpu() && b.device().is_cpu()) {
    const auto type = a.scalar_type();
    return type == b.scalar_type() &&
           (type == torch::kFloat32 || type == torch::kBFloat16 || type == torch::kFloat16) && aligned(a) &&
           aligned(b) && cpu_grouped_mm_available();
  }
  return a.is_cuda() && a.scalar_type() == torch::kBFloat16 && b.scalar_type() == torch::kBFloat16 && aligned(a) &&
         aligned(b);
#else
  (void)a;
  (void)b;
  return false;
#endif
}
inline torch::Tensor grouped_mm(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& offsets) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  if (has_grouped_mm_kernel(a, b)) return at::_grouped_mm(a, b, offsets);
#endif
  std::vector<torch::Tensor> parts;
  for (const auto& [begin, length] : host_groups(offsets))
    parts.push_back(torch::matmul(a.narrow(0, begin, length), b[static_cast<std::int64_t>(parts.size())]));
  return torch::cat(parts, 0);
}

// The weight gradient of grouped_mm: for each group g of rows (ends `offsets`, as above),
// a_g^T b_g, for a [M, K] and b [M, N], giving [G, K, N]; an empty group gives zeros.
// at::_grouped_mm with both operands 2-D (the offsets then split the contraction) where its
// kernel applies; one matmul per group elsewhere.
inline torch::Tensor grouped_mm_weight_grad(const torch::Tensor& a, const torch::Tensor& b,
                                            const torch::Tensor& offsets) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  if (has_grouped_mm_kernel(a.t(), b)) return at::_grouped_mm(a.t(), b, offsets);
#endif
  std::vector<torch::Tensor> parts;
  for (const auto& [begin, length] : host_groups(offsets))
    parts.push_back(torch::matmul(a.narrow(0, begin, length).t(), b.narrow(0, begin, length)));
  return torch::stack(parts);
}

// AdamW's update of lists of float32 parameters, gradients and moments, all at once, as
// PyTorch's AdamW(fused=True) and (foreach=True) do: LibTorch 2.4+ has one fused kernel for it
// (at::_fused_adamw_, CPU and CUDA); before, LibTorch's multi-tensor foreach operations (a few
// kernels for all tensors). `step` counts this step (the kernel reads it, never advances it).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
constexpr bool kHasFusedAdamWKernel = true;
#else
constexpr bool kHasFusedAdamWKernel = false;
#endif
inline void multi_tensor_adamw(const std::vector<torch::Tensor>& parameters,
                               const std::vector<torch::Tensor>& gradients, const std::vector<torch::Tensor>& exp_avgs,
                               const std::vector<torch::Tensor>& exp_avg_sqs, std::int64_t step, double learning_rate,
                               double beta1, double beta2, double weight_decay, double eps) {
  if (parameters.empty()) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const auto step_count =
      torch::full({}, static_cast<double>(step), torch::dtype(torch::kFloat32).device(parameters.front().device()));
  const std::vector<torch::Tensor> steps(parameters.size(), step_count);
  at::_fused_adamw_(parameters, gradients, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, learning_rate, beta1,
                    beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  const double correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  if (weight_decay != 0) at::_foreach_mul_(parameters, 1.0 - learning_rate * weight_decay);
  at::_foreach_mul_(exp_avgs, beta1);
  at::_foreach_add_(exp_avgs, gradients, 1.0 - beta1);
  at::_foreach_mul_(exp_avg_sqs, beta2);
  at::_foreach_addcmul_(exp_avg_sqs, gradients, gradients, 1.0 - beta2);
  auto denominators = at::_foreach_sqrt(exp_avg_sqs);
  at::_foreach_div_(denominators, std::sqrt(correction2));
  at::_foreach_add_(denominators, eps);
  at::_foreach_addcdiv_(parameters, exp_avgs, denominators, -learning_rate / correction1);
#endif
}

// Scalar types that only newer LibTorch versions define; nullopt where this one lacks them.
inline std::optional<torch::ScalarType> uint16_type() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  return torch::kUInt16;
#else
  return std::nullopt;
#endif
}
inline std::optional<torch::ScalarType> uint32_type() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  return torch::kUInt32;
#else
  return std::nullopt;
#endif
}
inline std::optional<torch::ScalarType> uint64_type() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  return torch::kUInt64;
#else
  return std::nullopt;
#endif
}
inline std::optional<torch::ScalarType> float8_e4m3_type() {
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1)
  return torch::kFloat8_e4m3fn;
#else
  return std::nullopt;
#endif
}
inline std::optional<torch::ScalarType> float8_e5m2_type() {
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1)
  return torch::kFloat8_e5m2;
#else
  return std::nullopt;
#endif
}

}  // namespace svmoe::compat
