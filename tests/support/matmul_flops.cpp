#include "matmul_flops.h"

#include <ATen/record_function.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace svmoe::test {
namespace {

// RecordFunction's callbacks are plain function pointers, so the count lives in thread-local
// state, set up and read by forward_matmul_flops alone.
struct Count {
  double flops = 0;
  int fused_depth = 0;  // > 0 inside a fused operator whose FLOPs are already counted
};
thread_local Count* active = nullptr;

std::vector<std::int64_t> input_sizes(const at::RecordFunction& fn, std::size_t i) {
  const auto inputs = fn.inputs();
  if (i >= inputs.size() || !inputs[i].isTensor()) {
    throw std::runtime_error(std::string(fn.name()) + ": input " + std::to_string(i) + " is not a tensor");
  }
  return inputs[i].toTensor().sizes().vec();
}

double product(const std::vector<std::int64_t>& sizes, std::size_t begin, std::size_t end) {
  double p = 1;
  for (std::size_t i = begin; i < end; ++i) p *= static_cast<double>(sizes[i]);
  return p;
}

bool named(const at::RecordFunction& fn, const char* name) { return std::strcmp(fn.name(), name) == 0; }

// Whether the operator is fused (counted whole, its inner products skipped).
bool is_fused(const at::RecordFunction& fn) {
  return named(fn, "aten::scaled_dot_product_attention") || named(fn, "aten::_grouped_mm");
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (active == nullptr) return nullptr;
  Count& count = *active;
  const bool fused = is_fused(fn);
  if (count.fused_depth > 0) {
    if (fused) ++count.fused_depth;
    return nullptr;
  }
  // The product's first operand [..., M, K] with the second's last size N; `first` and `second`
  // are the operands' input positions (addmm and baddbmm take the added term first).
  auto batched_product = [&](std::size_t first, std::size_t second) {
    const auto a = input_sizes(fn, first);
    const auto b = input_sizes(fn, second);
    return 2 * product(a, 0, a.size()) * static_cast<double>(b.back());
  };
  if (named(fn, "aten::mm") || named(fn, "aten::bmm")) {
    count.flops += batched_product(0, 1);
  } else if (named(fn, "aten::addmm") || named(fn, "aten::baddbmm")) {
    count.flops += batched_product(1, 2);
  } else if (named(fn, "aten::mv")) {
    const auto a = input_sizes(fn, 0);
    count.flops += 2 * product(a, 0, a.size());
  } else if (named(fn, "aten::addmv")) {
    const auto a = input_sizes(fn, 1);
    count.flops += 2 * product(a, 0, a.size());
  } else if (named(fn, "aten::_grouped_mm")) {
    // [P, K] rows, each multiplied by its group's [K, N]: 2 P K N.
    count.flops += batched_product(0, 1);
  } else if (named(fn, "aten::scaled_dot_product_attention")) {
    const auto q = input_sizes(fn, 0), k = input_sizes(fn, 1), v = input_sizes(fn, 2);
    const double batch_heads = product(q, 0, q.size() - 2);
    const double tq = static_cast<double>(q[q.size() - 2]), tk = static_cast<double>(k[k.size() - 2]);
    count.flops += 2 * batch_heads * tq * tk * static_cast<double>(q.back() + v.back());
  }
  if (fused) ++count.fused_depth;
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* /*context*/) {
  if (active != nullptr && active->fused_depth > 0 && is_fused(fn)) --active->fused_depth;
}

}  // namespace

double forward_matmul_flops(const std::function<void()>& run) {
  // The callback is registered, and `active` set, for exactly as long as `listening` lives.
  struct Listening {
    explicit Listening(Count& count)
        : handle(at::addThreadLocalCallback(
              at::RecordFunctionCallback(on_start, on_end).needsInputs(true).scopes({at::RecordScope::FUNCTION}))) {
      active = &count;
    }
    ~Listening() {
      at::removeCallback(handle);
      active = nullptr;
    }
    at::CallbackHandle handle;
  };
  Count count;
  {
    const Listening listening(count);
    run();
  }
  return count.flops;
}

}  // namespace svmoe::test
