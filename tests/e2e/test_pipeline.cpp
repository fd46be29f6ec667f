// The whole recipe through `svmoe run` on the CI slice of the example corpus, as a new user
// tries it: run it, interrupt it in the middle, run it again (it goes on), then change one
// fine-tuning setting and run again (only the fine-tuned models, eval and report re-run).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <regex>
#include <thread>
#include <vector>

#include "svmoe/util/directory_lock.h"
#include "svmoe/util/files.h"
#include "test_support.h"

namespace svmoe {
namespace fs = std::filesystem;
using test::quoted;
using Json = nlohmann::json;

namespace {

// A tiny experiment: 2 subdomains, the fixture Llama pretrained from scratch for the base.
fs::path write_experiment(const fs::path& root, int base_steps) {
  const fs::path config = root / "experiment.yaml";
  test::write_text(config,
                   "runtime: {threads: 2}\n"
                   "run:\n  dir: " +
                       (root / "exp").string() + "\n  base_model: " + test::model_fixture("llama_mha_untied").string() +
                       "\n  pretrain_base: {enabled: true, train: {steps: " + std::to_string(base_steps) +
                       ", save_every: 20}}\n  btm_ensemble: true\n"
                       "prepare:\n  corpus: " +
                       test::example_ci_corpus().string() +
                       "\n  tokenizer: " + (test::data_dir() / "tokenizers" / "unigram").string() +
                       "\n  num_subdomains: 2\n"
                       "train: {micro_batch: 4, sequence_length: 32, learning_rate: 3.0e-3, warmup_steps: 2, "
                       "log_every: 5, eval_every: 0, eval_batches: 2, save_every: 0}\n"
                       "train_experts: {train: {steps: 10}}\n"
                       "merge: {num_experts_per_tok: 1}\n"
                       "train_router: {train: {steps: 20, learning_rate: 1.0e-2}}\n"
                       "finetune: {train: {steps: 10}}\n"
                       "eval: {context_length: 64, max_documents: 3}\n"
                       "report: {text: \"The device tree describes the hardware.\"}\n");
  return config;
}

Json marker(const fs::path& root, const std::string& step) {
  return Json::parse(read_text_file(root / "exp" / "pipeline" / (step + ".json")));
}

// Runs scripts/slurm/pipeline.sh with a stand-in sbatch that records each submission (job ids
// from 101) and returns the recorded command lines in order.
std::vector<std::string> submit_pipeline(const fs::path& root, const fs::path& config, const std::string& options) {
  const fs::path bin = root / "fake-slurm";
  fs::remove_all(bin);
  fs::create_directories(bin);
  test::write_text(bin / "sbatch",
                   "#!/bin/sh\nn=$(( $(cat \"$FAKE_SBATCH_DIR/count\" 2>/dev/null || echo 100) + 1 ))\n"
                   "echo $n > \"$FAKE_SBATCH_DIR/count\"\necho \"$n $*\" >> \"$FAKE_SBATCH_DIR/jobs\"\necho $n\n");
  fs::permissions(bin / "sbatch", fs::perms::owner_all);
  const std::string command = "cd " + quoted(root) + " && PATH=" + quoted(bin) +
                              ":$PATH FAKE_SBATCH_DIR=" + quoted(bin) +
                              " SLURM_SUBMIT_DIR=" + quoted(SVMOE_SOURCE_DIR) + " SVMOE=" + quoted(SVMOE_BINARY) +
                              " SVMOE_LOGS=" + quoted(root / "logs") + " bash " +
                              quoted(fs::path(SVMOE_SOURCE_DIR) / "scripts" / "slurm" / "pipeline.sh") + " " +
                              quoted(config) + " " + options + " > " + quoted(root / "submit.log") + " 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << read_text_file(root / "submit.log");
  std::vector<std::string> jobs;
  if (!fs::exists(bin / "jobs")) return jobs;
  std::ifstream in(bin / "jobs");
  for (std::string line; std::getline(in, line);) jobs.push_back(line);
  return jobs;
}

}  // namespace

TEST(E2ERun, TheWholeRecipeInterruptedResumedAndChanged) {
  test::ScratchDir dir;
  const fs::path config = write_experiment(dir.path(), 150);
  const std::string run = "run -c " + quoted(config);

  // Interrupted (Ctrl-C) while the base model trains: a checkpoint, exit 75, the step marked started.
  const fs::path log = dir / "first.log";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string command = "exec " + std::string(SVMOE_BINARY) + " " + run + " > " + quoted(log) + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const fs::path checkpoint = dir / "exp" / "base" / "checkpoint-20";
  for (int i = 0; i < 1200 && !fs::exists(checkpoint); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << read_text_file(log);
  ASSERT_EQ(WEXITSTATUS(status), 75) << read_text_file(log);
  EXPECT_EQ(marker(dir.path(), "prepare")["state"], "done");
  EXPECT_EQ(marker(dir.path(), "base")["state"], "started");

  // svmoe status says where it stands: prepare done, the base stopped at its last logged step
  // with its loss, the rest waiting. While a live process holds the base's lock it is running,
  // with that process named and an ETA from its last tokens/s.
  const std::string status_command = "status " + quoted(dir / "exp");
  const auto stopped = test::run_svmoe(status_command);
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_TRUE(std::regex_search(stopped.output, std::regex(R"(\nprepare +prepare +done\n)"))) << stopped.output;
  EXPECT_TRUE(std::regex_search(
      stopped.output,
      std::regex(
          R"(\nbase +finetune +stopped +[1-9]\d*/150 steps +\d+\.\d{4} +not running \(interrupted or failed\))")))
      << stopped.output;
  EXPECT_TRUE(std::regex_search(stopped.output, std::regex(R"(\nmerge +merge +waiting\n)"))) << stopped.output;
  EXPECT_NE(stopped.output.find("1 of 12 steps done"), std::string::npos) << stopped.output;
  {
    const DirectoryLock writer = DirectoryLock::acquire(dir / "exp" / "base", "finetune");
    const auto running = test::run_svmoe(status_command);
    ASSERT_EQ(running.exit_code, 0) << running.output;
    EXPECT_TRUE(std::regex_search(
        running.output, std::regex(R"(\nbase +finetune +running +[1-9]\d*/150 steps +\d+\.\d{4} +\d+(m\d\d)?s +pid )" +
                                   std::to_string(::getpid()) + " on ")))
        << running.output;
  }
  const auto nowhere = test::run_svmoe("status " + quoted(dir.path()));
  EXPECT_NE(nowhere.exit_code, 0);
  EXPECT_NE(nowhere.output.find("holds no pipeline/config.json: svmoe run has not started there"), std::string::npos)
      << nowhere.output;

  // The same command goes on: the base resumes from its checkpoint, every step finishes.
  const auto dry = test::run_svmoe(run + " --dry-run");
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_NE(dry.output.find("base      finetune       resume"), std::string::npos) << dry.output;
  const auto second = test::run_svmoe(run);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("resuming from"), std::string::npos) << second.output;
  const std::string tables = read_text_file(dir / "exp" / "eval" / "tables.md");
  for (const char* row : {"| Dense | - |", "| BTX | yes |", "| BTX | no |", "| SvMoE | yes |", "| SvMoE | no |",
                          "| BTM ensemble | - |"}) {
    EXPECT_NE(tables.find(row), std::string::npos) << row << "\n" << tables;
  }
  EXPECT_NE(second.output.find("The report: "), std::string::npos) << second.output;
  const std::string report = read_text_file(dir / "exp" / "eval" / "report.html");
  EXPECT_NE(report.find("Routed text"), std::string::npos);
  EXPECT_NE(report.find("<polyline"), std::string::npos);
  std::ifstream metrics(dir / "exp" / "models" / "btx_lb" / "metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line)) {
    if (line.find("\"routing\"") != std::string::npos) last = line;
  }
  EXPECT_NE(last.find("\"lb_loss\""), std::string::npos) << last;

  const auto finished = test::run_svmoe(status_command);
  EXPECT_NE(finished.output.find("12 of 12 steps done"), std::string::npos) << finished.output;

  // Run again: nothing to do.
  const auto third = test::run_svmoe(run);
  ASSERT_EQ(third.exit_code, 0) << third.output;
  EXPECT_NE(third.output.find("run: every step is done"), std::string::npos) << third.output;

  // A requeued expert array task after the experts are done: nothing to do, exit 0.
  const auto requeued = test::run_svmoe(run + " --only experts --expert 1");
  ASSERT_EQ(requeued.exit_code, 0) << requeued.output;
  EXPECT_NE(requeued.output.find("run: every step is done"), std::string::npos) << requeued.output;

  // One fine-tuning setting changed: the five models, eval and report run again, nothing before them.
  const Json experts_before = marker(dir.path(), "experts");
  const std::string changed = run + " --set finetune.train.learning_rate=1e-3";
  const auto fourth = test::run_svmoe(changed);
  ASSERT_EQ(fourth.exit_code, 0) << fourth.output;
  EXPECT_NE(fourth.output.find("run: 7 step(s)"), std::string::npos) << fourth.output;
  EXPECT_NE(fourth.output.find("changed train.learning_rate: 0.003 -> 0.001"), std::string::npos) << fourth.output;
  for (const char* step : {"prepare", "base", "experts", "merge", "router"}) {
    EXPECT_EQ(fourth.output.find(std::string(": ") + step + " ("), std::string::npos) << step << "\n" << fourth.output;
  }
  EXPECT_EQ(marker(dir.path(), "experts"), experts_before);
  EXPECT_EQ(marker(dir.path(), "svmoe")["settings"]["train.learning_rate"], 1e-3);
  const auto again = test::run_svmoe(changed + " --dry-run");
  EXPECT_EQ(again.output.find("rerun"), std::string::npos) << again.output;

  // The Slurm DAG of the same change (a stand-in sbatch records the submissions): the five
  // models' outputs are cleared and they are submitted without dependencies (their inputs are
  // done), eval after all five, report after eval and the five; nothing else.
  const auto submissions = submit_pipeline(dir.path(), config, "--set finetune.train.learning_rate=2e-3");
  ASSERT_EQ(submissions.size(), 7u) << submissions.size();
  EXPECT_FALSE(fs::exists(dir / "exp" / "models" / "btx"));
  EXPECT_TRUE(fs::exists(dir / "exp" / "moe" / "config.json"));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(submissions[i].find("--dependency"), std::string::npos) << submissions[i];
  EXPECT_NE(submissions[0].find("--job-name=svmoe-dense"), std::string::npos) << submissions[0];
  EXPECT_NE(submissions[0].find("--ntasks-per-node=8 --gpus-per-node=8"), std::string::npos) << submissions[0];
  EXPECT_NE(submissions[0].find(config.string() + " dense --set finetune.train.learning_rate=2e-3"), std::string::npos)
      << submissions[0];
  EXPECT_NE(submissions[5].find("--dependency=afterok:101:102:103:104:105 "), std::string::npos) << submissions[5];
  EXPECT_NE(submissions[6].find("--job-name=svmoe-report"), std::string::npos) << submissions[6];
  EXPECT_NE(submissions[6].find("--dependency=afterok:106:101:102:103:104:105 "), std::string::npos) << submissions[6];
}

// Rows of other constructions beside the paper's (docs/upcycling.md): MoEs upcycled from the base
// model need no stage 1; each gets its own merge (and router) step and its row in Table 2. The
// BTM ensemble of pair experts (Monju) trains its own experts.
TEST(E2ERun, UpcycledRowsAndAPairEnsembleWithoutStageOne) {
  test::ScratchDir dir;
  const fs::path config = write_experiment(dir.path(), 5);
  const auto result = test::run_svmoe(
      "run -c " + quoted(config) +
      " --set run.pretrain_base.enabled=false --set run.btm_coverage=pairs --set eval.btm.weighting=distance"
      " --set 'run.models=[naive, drop_upcycling_svmoe_lb]' --set merge.router_init=uniform");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("run: 9 step(s)"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(dir / "exp" / "experts"));
  EXPECT_TRUE(fs::exists(dir / "exp" / "pair_experts" / "expert_0" / "config.json"));  // 2 subdomains: one pair
  const auto results = Json::parse(read_text_file(dir / "exp" / "eval" / "results.json"));
  const Json& btm = results["models"].back();
  EXPECT_EQ(btm["ensemble"]["coverage"], "pairs");
  EXPECT_EQ(btm["ensemble"]["weighting"], "distance");
  const auto provenance = Json::parse(read_text_file(dir / "exp" / "moe_drop_upcycling" / "svmoe_merge.json"));
  EXPECT_EQ(provenance["method"], "drop_upcycling");
  EXPECT_EQ(provenance["drop_ratio"], 0.5);
  EXPECT_EQ(provenance["num_experts"], 2);
  EXPECT_EQ(provenance["router_init"]["distribution"], "uniform");
  EXPECT_EQ(marker(dir.path(), "router_drop_upcycling")["state"], "done");
  const std::string tables = read_text_file(dir / "exp" / "eval" / "tables.md");
  for (const char* row : {"| Naive | no |", "| SvMoE (Drop-Upcycling) | yes |", "| BTM ensemble | - |"}) {
    EXPECT_NE(tables.find(row), std::string::npos) << row << "\n" << tables;
  }
}

// A soft MoE (docs/moe.md) through the recipe: merged, its router trained on the TF-IDF
// targets, fine-tuned, evaluated with the routing metrics.
TEST(E2ERun, ASoftMoeRunsTheRecipe) {
  test::ScratchDir dir;
  const fs::path config = write_experiment(dir.path(), 5);
  const auto result = test::run_svmoe("run -c " + quoted(config) +
                                      " --set run.pretrain_base.enabled=false --set run.btm_ensemble=false"
                                      " --set 'run.models=[naive_svmoe]' --set merge.moe_kind=soft");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("run: 6 step(s)"), std::string::npos) << result.output;
  const auto moe = Json::parse(read_text_file(dir / "exp" / "models" / "naive_svmoe" / "final" / "config.json"));
  EXPECT_EQ(moe["model_type"], "svmoe_soft_moe");
  const auto results = Json::parse(read_text_file(dir / "exp" / "eval" / "results.json"));
  EXPECT_TRUE(results["models"][0]["moe"].get<bool>());
  EXPECT_TRUE(results["models"][0]["splits"]["test"].contains("cmr_1"));
}

TEST(E2ERun, SlurmPipelineSubmitsTheWholeDag) {
  test::ScratchDir dir;
  const fs::path config = write_experiment(dir.path(), 5);
  const auto jobs = submit_pipeline(dir.path(), config, "");
  ASSERT_EQ(jobs.size(), 12u);
  // prepare 101, base 102, experts 103 (an array after both), merge 104 after the experts.
  EXPECT_NE(jobs[0].find("--job-name=svmoe-prepare"), std::string::npos) << jobs[0];
  EXPECT_EQ(jobs[0].find("--gpus"), std::string::npos) << jobs[0];
  EXPECT_NE(jobs[2].find("--array=0-1 "), std::string::npos) << jobs[2];
  EXPECT_NE(jobs[2].find("--dependency=afterok:101:102 "), std::string::npos) << jobs[2];
  EXPECT_NE(jobs[3].find("--dependency=afterok:103 "), std::string::npos) << jobs[3];
  EXPECT_NE(jobs[2].find("step.sbatch"), std::string::npos) << jobs[2];
}

TEST(E2ERun, ErrorsSayWhatToDo) {
  test::ScratchDir dir;
  const fs::path config = write_experiment(dir.path(), 5);
  auto result = test::run_svmoe("run -c " + quoted(config) + " --only eval");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("needs"), std::string::npos) << result.output;
  result = test::run_svmoe("run -c " + quoted(config) + " --from merging");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("its steps: prepare, base, experts"), std::string::npos) << result.output;
  result = test::run_svmoe("run -c " + quoted(config) + " --set run.dir=");
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_NE(result.output.find("run.dir"), std::string::npos) << result.output;
}

}  // namespace svmoe

namespace svmoe {

// scripts/paper/egov_to_jsonl.py on two hand-written laws in the e-Gov XML layout: one document
// per law with its category from the CSV, ruby readings dropped, a law without a category named.
TEST(E2EPaperData, EgovXmlBecomesTheCorpusPrepareReads) {
  test::ScratchDir dir;
  const fs::path egov = test::data_dir() / "egov";
  const std::string script = (fs::path(SVMOE_SOURCE_DIR) / "scripts" / "paper" / "egov_to_jsonl.py").string();
  const std::string command = "/usr/bin/python3 '" + script + "' --xml '" + (egov / "laws").string() +
                              "' --categories '" + (egov / "categories.csv").string() + "' --output '" +
                              (dir / "laws.jsonl").string() + "' > '" + (dir / "log.txt").string() + "' 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << read_text_file(dir / "log.txt");
  const std::string corpus = read_text_file(dir / "laws.jsonl");
  const Json law = Json::parse(corpus.substr(0, corpus.find('\n')));
  EXPECT_EQ(corpus.find('\n'), corpus.size() - 1) << corpus;  // the uncategorised law is left out
  EXPECT_EQ(law["category"], "国税");
  EXPECT_EQ(law["title"], "所得税法");
  const std::string text = law["text"];
  EXPECT_EQ(text.rfind("所得税法\n（趣旨） 第一条 この法律は、所得税について", 0), 0u) << text;
  EXPECT_NE(text.find("\n（定義） 第二条"), std::string::npos) << text;
  EXPECT_EQ(text.find("施行する"), std::string::npos) << text;  // no supplementary provisions
  EXPECT_NE(read_text_file(dir / "log.txt").find("330AC0000000105"), std::string::npos);

  const std::string with_unknown = "/usr/bin/python3 '" + script + "' --xml '" + (egov / "laws").string() +
                                   "' --categories '" + (egov / "categories.csv").string() + "' --output '" +
                                   (dir / "all.jsonl").string() + "' --unknown 陸運 > /dev/null 2>&1";
  ASSERT_EQ(std::system(with_unknown.c_str()), 0);
  const std::string all = read_text_file(dir / "all.jsonl");
  EXPECT_NE(all.find("交通に起因する障害の防止"), std::string::npos) << all;  // the ruby reading is gone
}

}  // namespace svmoe
