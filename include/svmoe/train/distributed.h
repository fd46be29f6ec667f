// Data parallelism across processes with c10d: Gloo on the CPU, NCCL on CUDA.
//
// Who is who comes from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT) or, inside an `srun` step, from Slurm's (SLURM_PROCID, SLURM_STEP_NUM_TASKS or
// SLURM_NTASKS, SLURM_LOCALID, the first host of SLURM_JOB_NODELIST). Rank 0 hosts the
// rendezvous (a c10d TCPStore). A single process needs none of it: its ProcessGroup is a group
// of one whose collectives do nothing.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace svmoe {

struct DistributedEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // the GPU this process uses (cuda:LOCAL_RANK)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // none | torchrun | slurm
};

// The value of an environment variable, if set.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string&)>;

DistributedEnvironment detect_distributed_environment(const EnvironmentLookup& lookup);
DistributedEnvironment detect_distributed_environment();  // from this process's environment

// The first host of a Slurm node list: "gpu[07-09,12],cpu1" -> "gpu07". The fallback where
// MASTER_ADDR is not set: scripts/slurm/common.sh sets it from `scontrol show hostnames`.
std::string first_host_of_nodelist(const std::string& nodelist);

// The index of the GPU a rank uses among the `visible` ones: 0 where the task sees one GPU (srun
// --gpus-per-task=1 gives each task its own), else its local rank (one task per GPU of a node
// that sees them all). Throws ConfigError when the local rank has no GPU to use.
int local_gpu_index(int local_rank, int visible);

class ProcessGroup {
 public:
  ProcessGroup();  // a group of one
  // Joins the others (blocks until all world_size processes have arrived, or `timeout`).
  static ProcessGroup connect(const DistributedEnvironment& environment, const torch::Device& device,
                              std::chrono::seconds timeout);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }

  // Sums each tensor over all ranks, in place; tensors of one dtype and device travel together
  // in flattened buckets of at most `bucket_bytes` (bf16 and fp16 ones summed in float32).
  // Tensors may be on the CPU or the GPU whatever the backend (NCCL's go through the GPU).
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors, std::int64_t bucket_bytes = 32 << 20) const;
  // Copies rank `root`'s values of the tensors to every other rank, in place (same buckets).
  void broadcast(const std::vector<torch::Tensor>& tensors, int root, std::int64_t bucket_bytes = 32 << 20) const;
  // The mean over ranks of every defined gradient of `parameters` (data-parallel training).
  void average_gradients(const std::vector<torch::Tensor>& parameters) const;
  double sum(double value) const;  // a scalar summed over ranks
  bool any(bool value) const;      // true on every rank if true on one
  void barrier() const;

 private:
  struct Backend;
  std::shared_ptr<Backend> backend_;
  int rank_ = 0;
  int world_size_ = 1;
};

}  // namespace svmoe
