#include "svmoe/train/distributed.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <thread>

#include "svmoe/util/error.h"
#include "test_support.h"

namespace svmoe {

namespace {
EnvironmentLookup environment(std::map<std::string, std::string> variables) {
  return [variables](const std::string& name) -> std::optional<std::string> {
    const auto it = variables.find(name);
    if (it == variables.end()) return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST(DistributedEnvironment, NothingSetIsOneProcess) {
  const auto env = detect_distributed_environment(environment({}));
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.launcher, "none");
}

TEST(DistributedEnvironment, TorchrunVariables) {
  const auto env = detect_distributed_environment(environment(
      {{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29600"}}));
  EXPECT_EQ(env.launcher, "torchrun");
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "node7");
  EXPECT_EQ(env.master_port, 29600);
}

TEST(DistributedEnvironment, SlurmStepVariables) {
  const auto env = detect_distributed_environment(environment({{"SLURM_PROCID", "5"},
                                                               {"SLURM_STEP_ID", "0"},
                                                               {"SLURM_STEP_NUM_TASKS", "16"},
                                                               {"SLURM_NTASKS", "16"},
                                                               {"SLURM_LOCALID", "5"},
                                                               {"SLURM_JOB_ID", "123456"},
                                                               {"SLURM_JOB_NODELIST", "gpu[07-08]"}}));
  EXPECT_EQ(env.launcher, "slurm");
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 16);
  EXPECT_EQ(env.local_rank, 5);
  EXPECT_EQ(env.master_addr, "gpu07");
  EXPECT_EQ(env.master_port, 20000 + 123456 % 20000);
}

TEST(DistributedEnvironment, TheBatchScriptItselfIsOneProcess) {
  // sbatch's own shell has SLURM_PROCID and SLURM_NTASKS but no step: not a rank of a group.
  const auto env = detect_distributed_environment(
      environment({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_ID", "9"}}));
  EXPECT_EQ(env.world_size, 1);
}

TEST(DistributedEnvironment, BadValuesAreNamed) {
  const std::string message = test::error_message<ConfigError>([] {
    detect_distributed_environment(environment({{"RANK", "two"}, {"WORLD_SIZE", "4"}}));
  });
  EXPECT_NE(message.find("RANK"), std::string::npos);
  EXPECT_NE(message.find("two"), std::string::npos);
  EXPECT_NE(test::error_message<ConfigError>([] {
              detect_distributed_environment(environment({{"RANK", "4"}, {"WORLD_SIZE", "4"}}));
            }).find("not below the world size"),
            std::string::npos);
}

TEST(DistributedEnvironment, EachRankUsesAGpuItCanSee) {
  EXPECT_EQ(local_gpu_index(3, 1), 0);  // srun --gpus-per-task=1: each task sees its own GPU
  EXPECT_EQ(local_gpu_index(3, 8), 3);  // --ntasks-per-node 8 on a node whose 8 GPUs all tasks see
  EXPECT_EQ(local_gpu_index(0, 2), 0);
  const std::string message = test::error_message<ConfigError>([] { local_gpu_index(2, 2); });
  EXPECT_NE(message.find("local rank 2 needs a GPU of its own, but this process sees 2 GPU(s)"), std::string::npos)
      << message;
}

TEST(DistributedEnvironment, FirstHostOfASlurmNodeList) {
  EXPECT_EQ(first_host_of_nodelist("node1"), "node1");
  EXPECT_EQ(first_host_of_nodelist("gpu[07-09,12],cpu1"), "gpu07");
  EXPECT_EQ(first_host_of_nodelist("gpu[3,5]"), "gpu3");
  EXPECT_EQ(first_host_of_nodelist("a-b1,a-b2"), "a-b1");
  EXPECT_EQ(first_host_of_nodelist("rack1-[0003-0010]"), "rack1-0003");
}

// Two ranks (as two threads of this process) meet over Gloo and sum tensors of two dtypes,
// some larger than a bucket, and broadcast from rank 1.
TEST(ProcessGroup, GlooAllReduceSumsOverRanks) {
  const int port = 29000 + static_cast<int>(::getpid() % 1000);
  std::vector<std::vector<torch::Tensor>> results(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      try {
        DistributedEnvironment env;
        env.rank = rank;
        env.world_size = 2;
        env.master_port = port;
        const ProcessGroup group = ProcessGroup::connect(env, torch::kCPU, std::chrono::seconds(60));
        std::vector<torch::Tensor> tensors = {torch::full({3, 4}, rank + 1.0), torch::full({5}, rank + 10.0),
                                              torch::full({1000}, static_cast<std::int64_t>(rank + 1)),
                                              torch::arange(300, torch::kFloat32) * (rank + 1),
                                              torch::full({7}, 1.5 + rank, torch::kBFloat16)};
        group.all_reduce_sum(tensors, /*bucket_bytes=*/1024);
        std::vector<torch::Tensor> shared = {torch::full({600}, rank + 1.0), torch::full({3}, rank, torch::kInt64)};
        group.broadcast(shared, /*root=*/1, /*bucket_bytes=*/1024);
        EXPECT_TRUE(torch::equal(shared[0], torch::full({600}, 2.0)));
        EXPECT_TRUE(torch::equal(shared[1], torch::full({3}, std::int64_t{1})));
        EXPECT_DOUBLE_EQ(group.sum(rank + 0.5), 2.0);
        EXPECT_TRUE(group.any(rank == 1));
        group.barrier();
        results[rank] = tensors;
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_TRUE(torch::equal(results[rank][0], torch::full({3, 4}, 3.0)));
    EXPECT_TRUE(torch::equal(results[rank][1], torch::full({5}, 21.0)));
    EXPECT_TRUE(torch::equal(results[rank][2], torch::full({1000}, std::int64_t{3})));
    EXPECT_TRUE(torch::allclose(results[rank][3], torch::arange(300, torch::kFloat32) * 3));
    EXPECT_EQ(results[rank][4].scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(results[rank][4], torch::full({7}, 4.0, torch::kBFloat16)));
  }
}

TEST(ProcessGroup, AMissingRankIsAClearErrorAfterTheTimeout) {
  DistributedEnvironment env;
  env.rank = 1;  // rank 0 never comes
  env.world_size = 2;
  env.master_port = 29000 + static_cast<int>(::getpid() % 1000) + 1;
  try {
    ProcessGroup::connect(env, torch::kCPU, std::chrono::seconds(2));
    FAIL() << "joined a group whose rank 0 never came";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("could not join"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("MASTER_ADDR"), std::string::npos) << e.hint();
  }
}

}  // namespace svmoe
