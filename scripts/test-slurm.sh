#!/usr/bin/env bash
# The Slurm path on a real Slurm: starts a one-node cluster on this machine from Debian's
# packages (slurmctld, slurmd and munge; a slurm.conf with the plugins that need no cgroups,
# written into a scratch folder), submits scripts/slurm/pipeline.sh for a tiny experiment on
# CPUs, and checks the DAG it makes (docs/slurm.md):
#   1. the experts run as one job array, every other step after the jobs of the steps it reads
#      (afterok), and every job completes; `svmoe status` then says every step is done;
#   2. a requeue: the base model's job gets SIGUSR1 after its first checkpoint, while it still
#      trains (the step is long enough, ~1,000 steps, to be caught running on a slow machine;
#      the old checkpoints are pruned as it goes, so the test waits for any checkpoint, not one),
#      checkpoints, requeues itself and resumes, and its final weights equal, byte for byte,
#      those of the same step run without Slurm and without interruption;
#   3. a failed step (merge, made to fail by a stand-in executable) stops the jobs that depend on
#      it (Slurm cancels them: DependencyNeverSatisfied), and svmoe run's plan submits it again.
# Shuts Slurm down afterwards (and on failure). Skips, saying why, where the daemons cannot run.
# Needs root and the svmoe build (scripts/build.sh). Usage:
#   scripts/test-slurm.sh            # SVMOE (default build/svmoe), SVMOE_SLURM_KEEP=1 keeps the scratch folder
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
svmoe=${SVMOE:-$root/build/svmoe}
test_name=test-slurm
source "$root/scripts/test-report.sh"
started=$(date +%s)
[ "$(id -u)" -eq 0 ] || skip "needs root (it starts slurmctld, slurmd and munged)"
[ -x "$svmoe" ] || fail "no svmoe executable at $svmoe: build it first (scripts/build.sh)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null ||
    skip "cannot install slurm-wlm and munge from Debian's archive"
fi

work=$(mktemp -d /var/tmp/svmoe-slurm.XXXXXX)
export SLURM_CONF=$work/slurm.conf
munged_pid=""
cleanup() {
  scancel --quiet --user=root 2>/dev/null || true
  for daemon in slurmd slurmctld; do
    [ -f "$work/$daemon.pid" ] && kill "$(cat "$work/$daemon.pid")" 2>/dev/null || true
  done
  [ -n "$munged_pid" ] && kill "$munged_pid" 2>/dev/null || true
  sleep 1
  if [ "${SVMOE_SLURM_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# munge: the daemon as its own user on its usual socket (Slurm's auth/munge looks there).
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || create-munge-key -f >/dev/null 2>&1; }
  chown munge:munge /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged || skip "munged does not start here"
  sleep 1
  munged_pid=$(pgrep -u munge -x munged | head -n 1 || true)
  munge -n | unmunge >/dev/null || skip "munge does not work here (unmunge refuses a fresh credential)"
fi

host=$(hostname -s)
memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
mkdir -p "$work/state" "$work/spool" "$work/logs"
cat >"$SLURM_CONF" <<EOF
# One node, no cgroups, no accounting database: what the test needs and nothing else.
ClusterName=svmoetest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SVMOE_SLURMCTLD_PORT:-6917}
SlurmdPort=${SVMOE_SLURMD_PORT:-6918}
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ReturnToService=2
# Finished jobs stay visible to scontrol for the checks.
MinJobAge=3600
KillWait=10
NodeName=$host CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -c -i >/dev/null 2>&1 || skip "slurmctld does not start here: $(tail -n 3 "$work/slurmctld.log" 2>/dev/null)"
slurmd >/dev/null 2>&1 || skip "slurmd does not start here: $(tail -n 3 "$work/slurmd.log" 2>/dev/null)"
for _ in $(seq 60); do
  [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
  sleep 1
done
[ "$(sinfo -h -o %t 2>/dev/null)" = idle ] ||
  skip "the node did not come up: $(tail -n 3 "$work/slurmctld.log") / $(tail -n 3 "$work/slurmd.log")"
say "Slurm $(slurmctld -V | awk '{print $2}') up on $host ($(nproc) CPUs) in $work"

# A tiny experiment (as tests/e2e/test_pipeline.cpp's): 2 subdomains, the fixture Llama pretrained
# from scratch for the base, long enough (~20 s on 2 cores) to be signalled while it trains.
corpus=$root/data/example/ci.jsonl
[ -f "$corpus" ] || bash "$root/scripts/get-example-corpus.sh" >/dev/null
cat >"$work/experiment.yaml" <<EOF
runtime: {threads: 1}
run:
  dir: $work/exp
  base_model: $root/tests/data/models/llama_mha_untied
  pretrain_base: {enabled: true, train: {steps: 1000, save_every: 20}}
prepare:
  corpus: $corpus
  tokenizer: $root/tests/data/tokenizers/unigram
  num_subdomains: 2
train: {micro_batch: 4, sequence_length: 32, learning_rate: 3.0e-3, warmup_steps: 2, log_every: 5, eval_every: 0, eval_batches: 2, save_every: 0}
train_experts: {train: {steps: 10}}
merge: {num_experts_per_tok: 1}
train_router: {train: {steps: 20, learning_rate: 1.0e-2}}
finetune: {train: {steps: 10}}
eval: {context_length: 64, max_documents: 3}
report: {text: "The device tree describes the hardware."}
EOF

# jobs_of LOG: "step id" for each job pipeline.sh says it submitted.
jobs_of() { sed -n 's/^pipeline.sh: \([^ ]*\) (.*) -> job \([0-9]*\).*/\1 \2/p' "$1"; }
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# Waits until no job of the list is pending or running (their array tasks included).
wait_for_jobs() {
  local deadline=$(($(date +%s) + $1))
  while squeue -h -o %i 2>/dev/null | grep -q .; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "jobs still queued after $1 s: $(squeue -h -o '%i %j %T %r' | tr '\n' ';')"
    sleep 2
  done
}
submit() {  # LOG SVMOE [pipeline.sh options...]
  local log=$1 executable=$2
  shift 2
  (cd "$root" && SVMOE=$executable SVMOE_LOGS=$work/logs SVMOE_GPUS_FINETUNE=0 SVMOE_GPUS_ROUTER=0 \
    SVMOE_GPUS_EXPERT=0 SVMOE_CPUS=1 SVMOE_TIME=60:00 bash scripts/slurm/pipeline.sh "$work/experiment.yaml" "$@") \
    >"$log" 2>&1 || fail "pipeline.sh failed: $(tail -n 5 "$log")"
}

# The uninterrupted reference of the base step, without Slurm.
"$svmoe" run -c "$work/experiment.yaml" --dir "$work/reference" --only prepare,base >"$work/reference.log" 2>&1 ||
  fail "the reference run failed: $(tail -n 5 "$work/reference.log")"

# 1. The DAG.
submit "$work/submit.log" "$svmoe"
declare -A job
while read -r step id; do job[$step]=$id; done < <(jobs_of "$work/submit.log")
[ "${#job[@]}" -eq 12 ] || fail "expected 12 jobs, pipeline.sh submitted ${#job[@]}: $(cat "$work/submit.log")"
[ -n "$(job_field "${job[experts]}" ArrayTaskId)" ] || fail "the experts step is not a job array"
[[ "$(job_field "${job[merge]}" Dependency)" == *"afterok:${job[experts]}"* ]] ||
  fail "merge does not wait for the experts' array: $(job_field "${job[merge]}" Dependency)"
[[ "$(job_field "${job[base]}" Dependency)" == *"afterok:${job[prepare]}"* ]] || fail "base does not wait for prepare"
say "submitted ${#job[@]} jobs; the experts as array job ${job[experts]}; merge after it"

# 2. The requeue: SIGUSR1 to the base's job once it has a checkpoint (any: older ones are pruned
# as newer ones are saved) and before its final weights.
first_checkpoint() { compgen -G "$work/exp/base/checkpoint-*/trainer_state.json" | head -n 1; }
for _ in $(seq 1500); do
  [ -n "$(first_checkpoint)" ] && break
  sleep 0.2
done
[ -n "$(first_checkpoint)" ] || fail "the base step wrote no checkpoint in 300 s: job ${job[base]} is $(job_field "${job[base]}" JobState); its log ends: $(tail -n 5 "$work"/logs/svmoe-base-*.out 2>/dev/null)"
[ ! -e "$work/exp/base/final" ] ||
  fail "the base step finished before the test could signal it (it is meant to train for ~20 s): raise pretrain_base.train.steps here"
scancel --signal=USR1 "${job[base]}"
wait_for_jobs 1500
[ "$(job_field "${job[base]}" Restarts)" -ge 1 ] || fail "the base job was not requeued (Restarts=$(job_field "${job[base]}" Restarts))"
grep -q "resuming from" "$work"/logs/svmoe-base-*task0.log || fail "the requeued base job did not resume"
for step in "${!job[@]}"; do
  state=$(job_field "${job[$step]}" JobState)
  [ "$state" = COMPLETED ] || fail "job ${job[$step]} ($step) ended $state: $(tail -n 5 "$work"/logs/svmoe-"$step"-*.out)"
done
cmp -s "$work/exp/base/final/model.safetensors" "$work/reference/base/final/model.safetensors" ||
  fail "the requeued base's final weights differ from the uninterrupted run's"
"$svmoe" status "$work/exp" >"$work/status.log" 2>&1
grep -q "12 of 12 steps done" "$work/status.log" || fail "svmoe status: $(cat "$work/status.log")"
say "every job completed; the base was requeued after SIGUSR1 ($(job_field "${job[base]}" Restarts) restart) and its final weights equal the uninterrupted run's"

# 3. A failed step: merge made to fail (a stand-in that fails for it), after a change that
# re-runs merge and everything after it.
cat >"$work/svmoe-failing-merge" <<EOF
#!/bin/sh
case " \$* " in *" --only merge "*) echo "error: merge failed (injected by test-slurm.sh)" >&2; exit 1 ;; esac
exec "$svmoe" "\$@"
EOF
chmod +x "$work/svmoe-failing-merge"
submit "$work/submit-failing.log" "$work/svmoe-failing-merge" --set merge.router_init_std=0.03
unset job
declare -A job
while read -r step id; do job[$step]=$id; done < <(jobs_of "$work/submit-failing.log")
[ -n "${job[merge]:-}" ] || fail "the change did not re-submit merge: $(cat "$work/submit-failing.log")"
wait_for_jobs 600
[ "$(job_field "${job[merge]}" JobState)" = FAILED ] || fail "merge ended $(job_field "${job[merge]}" JobState)"
cancelled=0
for step in "${!job[@]}"; do
  [ "$step" = merge ] && continue
  state=$(job_field "${job[$step]}" JobState)
  [ "$state" = CANCELLED ] || fail "$step (job ${job[$step]}) ended $state although merge failed"
  cancelled=$((cancelled + 1))
done
grep -q "merge failed (injected" "$work"/logs/svmoe-merge-*task0.log || fail "the merge job's log lacks its error"
"$svmoe" run -c "$work/experiment.yaml" --set merge.router_init_std=0.03 --plan-tsv >"$work/plan.tsv"
grep -qP '^merge\tmerge\t(run|resume|rerun)' "$work/plan.tsv" || fail "svmoe run's plan does not run merge again: $(cat "$work/plan.tsv")"
say "merge failed; Slurm cancelled its $cancelled dependants ($(job_field "${job[router]}" Reason)); pipeline.sh would submit merge again"
say "passed in $(($(date +%s) - started)) s"
