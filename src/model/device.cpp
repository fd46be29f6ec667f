#include "svmoe/model/device.h"

#include <torch/torch.h>

#include <algorithm>
#include <thread>

#include "svmoe/util/cpus.h"
#include "svmoe/util/error.h"

namespace svmoe {

torch::Device resolve_device(const std::string& name) {
  const bool cuda_available = torch::cuda::is_available();
  if (name == "auto") return cuda_available ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::Device(torch::kCPU);
  // "cuda" or "cuda:N": each way it can fail (no CUDA in this LibTorch, no GPU visible, an index
  // past the visible count, a malformed name) gets its own message and what to do.
  if (name.rfind("cuda", 0) == 0) {
    if (!cuda_available) {
      throw ConfigError("device '" + name + "' was asked for, but " +
                            (torch::hasCUDA() ? "no GPU is visible" : "this svmoe's LibTorch was built without CUDA"),
                        "use --device cpu (or auto), or build svmoe against a CUDA LibTorch (docs/gpu.md)");
    }
    try {
      const torch::Device device(name);
      if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count())) {
        throw ConfigError("device '" + name + "' does not exist: " + std::to_string(torch::cuda::device_count()) +
                          " GPU(s) are visible");
      }
      return device;
    } catch (const c10::Error&) {
      throw ConfigError("device '" + name + "' is not a device name", "use auto, cpu, cuda or cuda:N");
    }
  }
  throw ConfigError("device '" + name + "' is not a device name", "use auto, cpu, cuda or cuda:N");
}

// 0 means the CPUs this process may run on (its affinity mask: a Slurm task's --cpus-per-task),
// not the machine's core count (util/cpus.h).
void set_cpu_threads(int threads) {
  const int cores = static_cast<int>(available_cpus());
  torch::set_num_threads(threads > 0 ? threads : cores);
}

// auto: bf16 compute with float32 master weights on a GPU, plain float32 on the CPU (where bf16
// matmuls are slow and the reference checks run).
Precision resolve_precision(Precision precision, const torch::Device& device) {
  if (precision != Precision::kAuto) return precision;
  return device.is_cuda() ? Precision::kBf16Mixed : Precision::kFloat32;
}

torch::ScalarType parse_compute_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  throw ConfigError("dtype '" + name + "' is not one of float32, bfloat16, float16");
}

}  // namespace svmoe
