#include "svmoe/model/initialization.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace svmoe {

void initialize_weights(torch::nn::Module& module, double std, std::uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(seed);
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    torch::Tensor& p = item.value();
    const std::string& name = item.key();
    const bool is_norm = name.find("norm.weight") != std::string::npos;  // input_layernorm, model.norm, ...
    if (is_norm) {
      p.fill_(1.0);
    } else if (p.dim() >= 2) {
      // Drawn on the CPU in float32, so the values do not depend on the device or dtype.
      p.copy_(at::normal(0.0, std, p.sizes(), generator));
    } else {
      p.zero_();
    }
  }
}

}  // namespace svmoe
