// Data parallelism with the real executable: two CPU processes (Gloo) launched with torchrun's
// variables, and the Slurm scripts under a fake Slurm (srun and scontrol stand-ins that set the
// variables real Slurm sets).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "svmoe/io/run_directory.h"
#include "svmoe/train/trainer.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using test::quoted;

namespace {

int run_shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Curve {
  std::vector<double> loss, valid_loss;
};

Curve read_curve(const fs::path& metrics) {
  Curve curve;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto json = nlohmann::json::parse(line);
    if (json.contains("loss")) curve.loss.push_back(json["loss"].get<double>());
    if (json.contains("valid_loss")) curve.valid_loss.push_back(json["valid_loss"].get<double>());
  }
  return curve;
}

// A finetune config for the tiny fixture from random init; `micro_batch` windows per rank.
fs::path write_config(const fs::path& dir, const fs::path& dataset, const fs::path& output, int micro_batch,
                      int steps) {
  const fs::path config = dir / ("finetune-" + output.filename().string() + ".yaml");
  test::write_text(config, "finetune:\n  model: " + test::model_fixture("llama_mha_untied").string() +
                               "\n  init: random\n  dataset: " + dataset.string() + "\n  output: " + output.string() +
                               "\ntrain:\n  steps: " + std::to_string(steps) +
                               "\n  micro_batch: " + std::to_string(micro_batch) +
                               "\n  grad_accum: 2\n  sequence_length: 32\n  learning_rate: 3.0e-3\n"
                               "  warmup_steps: 2\n  log_every: 1\n  eval_every: 3\n  eval_batches: 2\n"
                               "  save_every: 2\nruntime:\n  threads: 1\n  log_level: info\n");
  return config;
}

void expect_same_curve(const Curve& actual, const Curve& expected) {
  ASSERT_EQ(actual.loss.size(), expected.loss.size());
  for (std::size_t i = 0; i < expected.loss.size(); ++i) EXPECT_NEAR(actual.loss[i], expected.loss[i], 1e-5) << i;
  ASSERT_EQ(actual.valid_loss.size(), expected.valid_loss.size());
  for (std::size_t i = 0; i < expected.valid_loss.size(); ++i)
    EXPECT_NEAR(actual.valid_loss[i], expected.valid_loss[i], 1e-5) << i;
}

// Starts `ranks` svmoe processes with torchrun's variables, logs in DIR/NAME-rankR.log; their exit code.
int launch_ranks(const fs::path& dir, const std::string& name, const std::string& arguments, int ranks) {
  static int launches = 0;
  const std::string port = std::to_string(30000 + (::getpid() * 7 + 100 * launches++) % 20000);
  std::string launch;
  for (int rank = 0; rank < ranks; ++rank) {
    launch += "RANK=" + std::to_string(rank) + " WORLD_SIZE=" + std::to_string(ranks) +
              " LOCAL_RANK=" + std::to_string(rank) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " +
              SVMOE_BINARY + " " + arguments + " > " + quoted(dir / (name + "-rank" + std::to_string(rank) + ".log")) +
              " 2>&1 & pids=\"$pids $!\"\n";
  }
  launch += "status=0; for p in $pids; do wait $p || status=1; done; exit $status\n";
  test::write_text(dir / (name + ".sh"), launch);
  return run_shell("bash " + quoted(dir / (name + ".sh")));
}

std::string rank_logs(const fs::path& dir, const std::string& name, int ranks) {
  std::string logs;
  for (int rank = 0; rank < ranks; ++rank) {
    logs += read_text_file(dir / (name + "-rank" + std::to_string(rank) + ".log"));
  }
  return logs;
}

}  // namespace

// ZeRO-1 (train.zero_stage: 1): the optimizer state sharded over 2 and over 4 ranks gives the
// loss curve of one unsharded process with the same global batch; each rank holds about
// 1/world of the state; an interrupted sharded run resumes from its shards.
TEST(E2EDataParallel, ShardedOptimizerStateGivesTheSameCurve) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  const auto single = test::run_svmoe("finetune -c " + quoted(write_config(dir.path(), dataset, dir / "one", 4, 6)));
  ASSERT_EQ(single.exit_code, 0) << single.output;
  const Curve expected = read_curve(dir / "one" / "metrics.jsonl");
  std::map<int, double> state_mb;
  for (const int ranks : {2, 4}) {
    const std::string name = "zero" + std::to_string(ranks);
    const fs::path config = write_config(dir.path(), dataset, dir / name, 4 / ranks, 6);
    ASSERT_EQ(launch_ranks(dir.path(), name, "finetune -c " + quoted(config) + " --set train.zero_stage=1", ranks), 0)
        << rank_logs(dir.path(), name, ranks);
    expect_same_curve(read_curve(dir / name / "metrics.jsonl"), expected);
    EXPECT_TRUE(
        fs::exists(dir / name / "checkpoint-6" /
                   ("optimizer.shard-" + std::to_string(ranks - 1) + "-of-" + std::to_string(ranks) + ".safetensors")));
    const std::string log = read_text_file(dir / (name + "-rank0.log"));
    const auto at = log.find("(ZeRO-1): ");
    ASSERT_NE(at, std::string::npos) << log;
    state_mb[ranks] = std::stod(log.substr(at + 10));
  }
  // Split at rows: 1/world of the state, to a row.
  EXPECT_NEAR(state_mb[4] / state_mb[2], 0.5, 0.02) << state_mb[2] << " " << state_mb[4];

  // A sharded run of 4 steps continued to 6 from its shards (constant learning rate, so that the
  // first run's schedule is the longer one's) gives the training losses of 6 steps in one go.
  const std::string constant = " --set train.zero_stage=1 --set train.schedule=constant";
  const auto straight =
      test::run_svmoe("finetune -c " + quoted(write_config(dir.path(), dataset, dir / "straight", 4, 6)) + constant);
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  const fs::path resumed = dir / "resumed";
  ASSERT_EQ(launch_ranks(dir.path(), "first",
                         "finetune -c " + quoted(write_config(dir.path(), dataset, resumed, 2, 4)) + constant, 2),
            0)
      << rank_logs(dir.path(), "first", 2);
  ASSERT_EQ(launch_ranks(dir.path(), "second",
                         "finetune -c " + quoted(write_config(dir.path(), dataset, resumed, 2, 6)) + constant, 2),
            0)
      << rank_logs(dir.path(), "second", 2);
  EXPECT_NE(read_text_file(dir / "second-rank0.log").find("resuming from"), std::string::npos)
      << rank_logs(dir.path(), "second", 2);
  const Curve whole = read_curve(dir / "straight" / "metrics.jsonl");
  const Curve continued = read_curve(resumed / "metrics.jsonl");
  ASSERT_EQ(continued.loss.size(), whole.loss.size());
  for (std::size_t i = 0; i < whole.loss.size(); ++i) EXPECT_NEAR(continued.loss[i], whole.loss[i], 1e-5) << i;
}

// Two ranks of 2 windows each give the loss curve of one process with 4 windows per step.
TEST(E2EDataParallel, TwoRanksGiveTheLossCurveOfOneProcess) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  const std::string svmoe = SVMOE_BINARY;
  const auto single = test::run_svmoe("finetune -c " + quoted(write_config(dir.path(), dataset, dir / "one", 4, 6)));
  ASSERT_EQ(single.exit_code, 0) << single.output;

  const fs::path config = write_config(dir.path(), dataset, dir / "two", 2, 6);
  const std::string port = std::to_string(30000 + ::getpid() % 5000);
  std::string launch;
  for (int rank = 0; rank < 2; ++rank) {
    launch += "RANK=" + std::to_string(rank) + " WORLD_SIZE=2 LOCAL_RANK=" + std::to_string(rank) +
              " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " + svmoe + " finetune -c " + quoted(config) + " > " +
              quoted(dir / ("rank" + std::to_string(rank) + ".log")) + " 2>&1 & ";
  }
  launch += "wait %1 && wait %2\n";
  test::write_text(dir / "launch.sh", launch);
  ASSERT_EQ(run_shell("bash " + quoted(dir / "launch.sh")), 0)
      << read_text_file(dir / "rank0.log") << read_text_file(dir / "rank1.log");
  expect_same_curve(read_curve(dir / "two" / "metrics.jsonl"), read_curve(dir / "one" / "metrics.jsonl"));
  // Rank 0 writes; rank 1 only warns, with its rank.
  EXPECT_NE(read_text_file(dir / "rank0.log").find("[rank 0]"), std::string::npos);
  EXPECT_EQ(read_text_file(dir / "rank1.log").find("train: step"), std::string::npos)
      << read_text_file(dir / "rank1.log");
  EXPECT_TRUE(fs::exists(dir / "two" / "final" / "model.safetensors"));
}

TEST(E2ESlurm, ScriptsAreValidBash) {
  for (const auto& entry : fs::directory_iterator(fs::path(SVMOE_SOURCE_DIR) / "scripts" / "slurm")) {
    EXPECT_EQ(run_shell("bash -n " + quoted(entry.path()) + " 2>&1"), 0) << entry.path();
  }
}

namespace {

// srun and scontrol stand-ins: srun starts $SLURM_NTASKS copies of the command with the step
// variables real srun sets (one log per task from --output's %t), scontrol records its arguments.
fs::path fake_slurm(const fs::path& dir) {
  const fs::path bin = dir / "fake-slurm";
  fs::create_directories(bin);
  test::write_text(bin / "srun", R"(#!/usr/bin/env bash
output=""
while [ $# -gt 0 ]; do
  case "$1" in
    --output) output="$2"; shift 2 ;;
    --output=*) output="${1#--output=}"; shift ;;
    -*) shift ;;
    *) break ;;
  esac
done
n="${SLURM_NTASKS:-1}"
echo "srun SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-unset} MASTER_ADDR=${MASTER_ADDR:-unset}" >> "$FAKE_SLURM_RECORD"
pids=()
for ((t = 0; t < n; t++)); do
  log="${output//%t/$t}"
  SLURM_PROCID=$t SLURM_LOCALID=$t SLURM_STEP_ID=0 SLURM_STEP_NUM_TASKS=$n SLURM_STEP_NODELIST="$SLURM_JOB_NODELIST" \
    "$@" > "${log:-/dev/stdout}" 2>&1 &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid"; r=$?; [ $r -gt $rc ] && rc=$r; done
exit $rc
)");
  // `scontrol show hostnames LIST` prints one host a line (here the list is one plain host).
  test::write_text(bin / "scontrol",
                   "#!/usr/bin/env bash\necho \"$@\" >> \"$FAKE_SLURM_RECORD\"\n"
                   "if [ \"$1 $2\" = \"show hostnames\" ]; then echo \"$3\" | tr ',' '\\n'; fi\n");
  fs::permissions(bin / "srun", fs::perms::owner_all);
  fs::permissions(bin / "scontrol", fs::perms::owner_all);
  return bin;
}

}  // namespace

// finetune.sbatch under a fake Slurm: 2 CPU ranks (the loss curve of one process with the same
// global batch), logs per task; SIGUSR1 (the scripts' --signal) ends in a checkpoint and a
// requeue, and the requeued job resumes and finishes.
TEST(E2ESlurm, FinetuneScriptRunsTwoRanksAndRequeuesOnSignal) {
  test::ScratchDir dir;
  const fs::path dataset = test::ci_dataset(dir.path(), 2);
  const auto single = test::run_svmoe("finetune -c " + quoted(write_config(dir.path(), dataset, dir / "one", 4, 6)));
  ASSERT_EQ(single.exit_code, 0) << single.output;

  const fs::path bin = fake_slurm(dir.path());
  const std::string job_id = std::to_string(20000 + ::getpid() % 9000);  // the master port is 20000 + id % 20000
  const std::string environment =
      "PATH=" + bin.string() + ":$PATH SLURM_SUBMIT_DIR=" + quoted(SVMOE_SOURCE_DIR) + " SLURM_JOB_ID=" + job_id +
      " SLURM_NTASKS=2 SLURM_CPUS_PER_TASK=1 SLURM_JOB_NODELIST=localhost SLURM_JOB_NAME=svmoe-finetune SVMOE=" +
      quoted(SVMOE_BINARY) + " SVMOE_LOGS=" + quoted(dir / "logs") +
      " FAKE_SLURM_RECORD=" + quoted(dir / "scontrol.txt") + " ";
  const std::string script = quoted(fs::path(SVMOE_SOURCE_DIR) / "scripts" / "slurm" / "finetune.sbatch");
  const fs::path config = write_config(dir.path(), dataset, dir / "slurm", 2, 6);
  ASSERT_EQ(
      run_shell(environment + "bash " + script + " " + quoted(config) + " > " + quoted(dir / "job.out") + " 2>&1"), 0)
      << read_text_file(dir / "job.out");
  expect_same_curve(read_curve(dir / "slurm" / "metrics.jsonl"), read_curve(dir / "one" / "metrics.jsonl"));
  const std::string task0 = read_text_file(dir / "logs" / ("svmoe-finetune-" + job_id + "-task0.log"));
  EXPECT_NE(task0.find("rank 0 of 2 (slurm)"), std::string::npos) << task0;
  // srun got the job's --cpus-per-task (Slurm >= 22.05 does not pass it on) and the rendezvous
  // host from `scontrol show hostnames`.
  const std::string record = read_text_file(dir / "scontrol.txt");
  EXPECT_NE(record.find("show hostnames localhost"), std::string::npos) << record;
  EXPECT_NE(record.find("srun SRUN_CPUS_PER_TASK=1 MASTER_ADDR=localhost"), std::string::npos) << record;
  EXPECT_TRUE(fs::exists(dir / "logs" / ("svmoe-finetune-" + job_id + "-task1.log")));

  // A long run, signalled once it trains: checkpoint, exit 75, requeue.
  fs::remove(dir / "scontrol.txt");
  const fs::path long_config = write_config(dir.path(), dataset, dir / "long", 2, 100000);
  const std::string command =
      environment + "bash " + script + " " + quoted(long_config) + " > " + quoted(dir / "long.out") + " 2>&1";
  std::thread job([&] { run_shell(command); });
  for (int i = 0; i < 600 && !fs::exists(dir / "long" / "metrics.jsonl"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  run_shell("pkill -USR1 -f '^" + std::string(SVMOE_BINARY) + " finetune -c " + long_config.string() + "'");
  job.join();
  EXPECT_NE(read_text_file(dir / "long.out").find("requeueing " + job_id), std::string::npos)
      << read_text_file(dir / "long.out");
  const std::string long_record = read_text_file(dir / "scontrol.txt");
  EXPECT_NE(long_record.find("\nrequeue " + job_id + "\n"), std::string::npos) << long_record;
  EXPECT_EQ(long_record.find("requeue"), long_record.rfind("requeue")) << long_record;  // once
  const auto checkpoint = RunDirectory(dir / "long").latest_complete_checkpoint();
  ASSERT_TRUE(checkpoint.has_value()) << read_text_file(dir / "long.out");
  const int stopped_at = nlohmann::json::parse(read_text_file(*checkpoint / "trainer_state.json"))["step"].get<int>();

  // The requeued job (same command, fewer steps to finish soon) resumes from that checkpoint.
  const fs::path resume_config = write_config(dir.path(), dataset, dir / "long", 2, stopped_at + 3);
  ASSERT_EQ(run_shell(environment + "bash " + script + " " + quoted(resume_config) + " > " +
                      quoted(dir / "resume.out") + " 2>&1"),
            0)
      << read_text_file(dir / "resume.out");
  const std::string resumed = read_text_file(dir / "logs" / ("svmoe-finetune-" + job_id + "-task0.log"));
  EXPECT_NE(resumed.find("resuming from"), std::string::npos) << resumed;
  EXPECT_TRUE(fs::exists(dir / "long" / "final" / "config.json"));
}

}  // namespace svmoe
