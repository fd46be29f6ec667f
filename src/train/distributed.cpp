#include "svmoe/train/distributed.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

// Which backends this build has: LibTorch must have been built with them (USE_C10D_*) and their
// headers must be found (pip's torch ships gloo's; nccl.h comes with the nvidia-nccl package).
#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#define SVMOE_HAVE_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#define SVMOE_HAVE_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#if defined(SVMOE_HAVE_GLOO) || defined(SVMOE_HAVE_NCCL)
#define SVMOE_HAVE_C10D 1
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include <cstdlib>
#include <map>

#include "svmoe/model/compat.h"
#include "svmoe/util/error.h"
#include "svmoe/util/strings.h"

namespace svmoe {

namespace {

int integer_variable(const EnvironmentLookup& lookup, const std::string& name, int min) {
  const auto text = lookup(name);
  try {
    std::size_t used = 0;
    const int value = std::stoi(*text, &used);
    if (used == text->size() && value >= min) return value;
  } catch (const std::exception&) {
  }
  throw ConfigError(
      "environment variable " + name + " is '" + *text + "'; expected an integer >= " + std::to_string(min),
      "fix the launcher's settings (torchrun or srun set it)");
}

#ifdef SVMOE_HAVE_C10D
IoError rendezvous_error(const DistributedEnvironment& env, const std::string& where, const std::string& cause) {
  return IoError("rank " + std::to_string(env.rank) + " could not join the other " +
                     std::to_string(env.world_size - 1) + " process(es) at " + where + ": " + cause,
                 "check that all " + std::to_string(env.world_size) +
                     " processes started, that MASTER_ADDR is reachable from every node and MASTER_PORT is free "
                     "(runtime.distributed_timeout_s is how long they wait)");
}
#endif

}  // namespace

std::string first_host_of_nodelist(const std::string& nodelist) {
  // Only the first entry matters: up to the first comma outside brackets.
  std::string first;
  int depth = 0;
  for (const char c : nodelist) {
    if (c == ',' && depth == 0) break;
    depth += c == '[' ? 1 : c == ']' ? -1 : 0;
    first += c;
  }
  const auto open = first.find('[');
  if (open == std::string::npos) return first;
  // "gpu[07-09,12]": the prefix and the first number of the range, zero padding kept.
  std::string range = first.substr(open + 1);
  const auto end = range.find_first_of(",-]");
  return first.substr(0, open) + range.substr(0, end);
}

int local_gpu_index(int local_rank, int visible) {
  if (visible == 1) return 0;
  if (local_rank < visible) return local_rank;
  const char* devices = std::getenv("CUDA_VISIBLE_DEVICES");
  throw ConfigError("local rank " + std::to_string(local_rank) + " needs a GPU of its own, but this process sees " +
                        std::to_string(visible) +
                        " GPU(s) (CUDA_VISIBLE_DEVICES=" + (devices != nullptr ? std::string(devices) : "unset") + ")",
                    "start one process per GPU: srun --gpus-per-task=1, or --ntasks-per-node equal to "
                    "--gpus-per-node (scripts/slurm/ does), or torchrun --nproc-per-node with the GPU count");
}

DistributedEnvironment detect_distributed_environment(const EnvironmentLookup& lookup) {
  DistributedEnvironment env;
  if (lookup("RANK") && lookup("WORLD_SIZE")) {
    env.launcher = "torchrun";
    env.rank = integer_variable(lookup, "RANK", 0);
    env.world_size = integer_variable(lookup, "WORLD_SIZE", 1);
    env.local_rank = lookup("LOCAL_RANK") ? integer_variable(lookup, "LOCAL_RANK", 0) : 0;
  } else if (lookup("SLURM_PROCID") && lookup("SLURM_STEP_ID") &&
             (lookup("SLURM_STEP_NUM_TASKS") || lookup("SLURM_NTASKS"))) {
    // Only inside an srun step: the batch script itself also has SLURM_PROCID (0) and
    // SLURM_NTASKS, but is one process.
    env.launcher = "slurm";
    env.rank = integer_variable(lookup, "SLURM_PROCID", 0);
    env.world_size =
        integer_variable(lookup, lookup("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS", 1);
    env.local_rank = lookup("SLURM_LOCALID") ? integer_variable(lookup, "SLURM_LOCALID", 0) : 0;
    const auto nodes = lookup("SLURM_STEP_NODELIST")  ? lookup("SLURM_STEP_NODELIST")
                       : lookup("SLURM_JOB_NODELIST") ? lookup("SLURM_JOB_NODELIST")
                                                      : lookup("SLURM_NODELIST");
    if (nodes) env.master_addr = first_host_of_nodelist(*nodes);
    // One port per job, so that two jobs sharing a node do not meet.
    if (const auto job = lookup("SLURM_JOB_ID")) env.master_port = 20000 + std::atoi(job->c_str()) % 20000;
  }
  if (env.rank >= env.world_size) {
    throw ConfigError("rank " + std::to_string(env.rank) + " is not below the world size " +
                          std::to_string(env.world_size) + " (from " + env.launcher + "'s variables)",
                      "fix the launcher's settings");
  }
  if (const auto addr = lookup("MASTER_ADDR")) env.master_addr = *addr;
  if (lookup("MASTER_PORT")) env.master_port = integer_variable(lookup, "MASTER_PORT", 1);
  return env;
}

DistributedEnvironment detect_distributed_environment() {
  return detect_distributed_environment([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
  });
}

struct ProcessGroup::Backend {
#ifdef SVMOE_HAVE_C10D
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::CollectiveBackend> group;
#endif
  // Where the collectives' buffers must live: NCCL reduces CUDA tensors only, so CPU tensors
  // (loss sums, routing statistics) travel through the GPU; Gloo works on the CPU.
  torch::Device device = torch::kCPU;
};

ProcessGroup::ProcessGroup() = default;

ProcessGroup ProcessGroup::connect(const DistributedEnvironment& env, const torch::Device& device,
                                   std::chrono::seconds timeout) {
  ProcessGroup result;
  result.rank_ = env.rank;
  result.world_size_ = env.world_size;
  if (env.world_size == 1) return result;
#ifdef SVMOE_HAVE_C10D
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  spdlog::info("distributed: rank {} of {} ({}), rendezvous at {}", env.rank, env.world_size, env.launcher, where);
  auto backend = std::make_shared<Backend>();
  backend->device = device.is_cuda() ? device : torch::Device(torch::kCPU);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = static_cast<std::size_t>(env.world_size);
    options.waitWorkers = true;
    options.timeout = timeout;
    try {
      backend->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    } catch (const c10::Error& e) {
      // A LibTorch built without libuv (Debian's 2.x) refuses its default backend.
      if (std::string(e.what()).find("libuv") == std::string::npos || !compat::turn_off_tcp_store_libuv(options)) throw;
      spdlog::debug("distributed: this LibTorch has no libuv; using TCPStore's plain socket backend");
      backend->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    }
    if (device.is_cuda()) {
#ifdef SVMOE_HAVE_NCCL
      backend->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(backend->store, env.rank, env.world_size);
#else
      throw UnsupportedError("this svmoe was built without NCCL, so it cannot train on several GPUs",
                             "build it against a CUDA LibTorch (docs/gpu.md)");
#endif
    } else {
#ifdef SVMOE_HAVE_GLOO
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
      // As torch.distributed: GLOO_SOCKET_IFNAME picks the network interface.
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      gloo_options->devices.push_back(interface != nullptr && *interface != '\0'
                                          ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                          : c10d::ProcessGroupGloo::createDefaultDevice());
      backend->group =
          c10::make_intrusive<c10d::ProcessGroupGloo>(backend->store, env.rank, env.world_size, gloo_options);
#else
      throw UnsupportedError("this svmoe was built without Gloo, so it cannot train in several CPU processes");
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw rendezvous_error(env, where, e.what_without_backtrace());
  } catch (const std::exception& e) {  // c10d's socket errors are std::runtime_errors in 1.13
    throw rendezvous_error(env, where, e.what());
  }
  result.backend_ = backend;
#else
  throw UnsupportedError("this LibTorch has no c10d (distributed) support", "run a single process");
#endif
  return result;
}

#ifdef SVMOE_HAVE_C10D
namespace {

// Tensors in buckets of one dtype and device and at most `bucket_bytes` each (a bigger tensor
// is a bucket of its own), in an order that is the same on every rank.
std::vector<std::vector<torch::Tensor>> collective_buckets(const std::vector<torch::Tensor>& tensors,
                                                           std::int64_t bucket_bytes) {
  std::map<std::pair<int, std::string>, std::vector<std::vector<torch::Tensor>>> by_kind;
  std::map<std::pair<int, std::string>, std::int64_t> filled;
  for (const auto& t : tensors) {
    const auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
    auto& list = by_kind[key];
    const std::int64_t bytes = t.numel() * static_cast<std::int64_t>(t.element_size());
    if (list.empty() || filled[key] + bytes > bucket_bytes) {
      list.emplace_back();
      filled[key] = 0;
    }
    list.back().push_back(t);
    filled[key] += bytes;
  }
  std::vector<std::vector<torch::Tensor>> buckets;
  for (auto& [key, list] : by_kind) {
    for (auto& bucket : list) buckets.push_back(std::move(bucket));
  }
  return buckets;
}

// Flattens each bucket into one buffer (float32 for bf16/fp16 when `widen`), runs `collective`
// on it, and copies the result back into the tensors.
template <typename Collective>
void run_in_buckets(const std::vector<torch::Tensor>& tensors, std::int64_t bucket_bytes, bool widen,
                    const torch::Device& device, Collective&& collective) {
  torch::NoGradGuard no_grad;
  for (auto& bucket : collective_buckets(tensors, bucket_bytes)) {
    std::vector<torch::Tensor> flat_views;
    for (const auto& t : bucket) flat_views.push_back(t.reshape({-1}));
    const auto type = bucket.front().scalar_type();
    const bool low_precision = type == torch::kBFloat16 || type == torch::kHalf;
    std::vector<torch::Tensor> buffer = {
        torch::cat(flat_views).to(device, widen && low_precision ? torch::kFloat32 : type)};
    collective(buffer);
    std::int64_t offset = 0;
    for (auto& t : bucket) {
      t.copy_(buffer[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

}  // namespace
#endif

void ProcessGroup::all_reduce_sum(const std::vector<torch::Tensor>& tensors, std::int64_t bucket_bytes) const {
  if (world_size_ == 1 || tensors.empty()) return;
#ifdef SVMOE_HAVE_C10D
  // Low-precision values (bf16 gradients) are summed in float32, as Megatron-LM does, so that
  // the sum over many ranks does not lose the small ones.
  run_in_buckets(tensors, bucket_bytes, /*widen=*/true, backend_->device,
                 [&](std::vector<torch::Tensor>& buffer) { backend_->group->allreduce(buffer)->wait(); });
#endif
}

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors, int root, std::int64_t bucket_bytes) const {
  if (world_size_ == 1 || tensors.empty()) return;
#ifdef SVMOE_HAVE_C10D
  c10d::BroadcastOptions options;
  options.rootRank = root;
  run_in_buckets(tensors, bucket_bytes, /*widen=*/false, backend_->device,
                 [&](std::vector<torch::Tensor>& buffer) { backend_->group->broadcast(buffer, options)->wait(); });
#endif
}

void ProcessGroup::average_gradients(const std::vector<torch::Tensor>& parameters) const {
  if (world_size_ == 1) return;
  std::vector<torch::Tensor> gradients;
  for (const auto& p : parameters) {
    if (p.grad().defined()) gradients.push_back(p.grad());
  }
  all_reduce_sum(gradients);
  torch::NoGradGuard no_grad;
  for (auto& g : gradients) g.div_(world_size_);
}

double ProcessGroup::sum(double value) const {
  if (world_size_ == 1) return value;
  auto t = torch::tensor({value}, torch::kFloat64);
  all_reduce_sum({t});
  return t.item<double>();
}

bool ProcessGroup::any(bool value) const { return sum(value ? 1.0 : 0.0) > 0.0; }

void ProcessGroup::barrier() const {
  if (world_size_ == 1) return;
#ifdef SVMOE_HAVE_C10D
  backend_->group->barrier()->wait();
#endif
}

}  // namespace svmoe
