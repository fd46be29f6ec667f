# Shared by the sbatch scripts of this folder (sourced, not run). Submit from the repository
# root: sbatch copies a script elsewhere, so paths are taken from $SLURM_SUBMIT_DIR.
#
#   SVMOE        the svmoe executable (default: $SLURM_SUBMIT_DIR/build/svmoe)
#   SVMOE_LOGS   folder of the per-task logs (default: $SLURM_SUBMIT_DIR/logs)
#
# A training stage that receives SIGUSR1 (the --signal in the scripts, before the time limit)
# or SIGTERM (preemption) finishes its step, checkpoints and exits with 75; svmoe_srun then
# requeues the job, and the requeued job resumes from that checkpoint.
set -uo pipefail

SVMOE_ROOT="${SLURM_SUBMIT_DIR:-$PWD}"
SVMOE="${SVMOE:-$SVMOE_ROOT/build/svmoe}"
SVMOE_LOGS="${SVMOE_LOGS:-$SVMOE_ROOT/logs}"
SVMOE_EXIT_REQUEUE=75

svmoe_usage_check() {  # CONFIG must be given and exist
  if [ $# -lt 1 ] || [ ! -f "$1" ]; then
    echo "usage: sbatch $(basename "${BASH_SOURCE[1]:-$0}") CONFIG.yaml [svmoe options...] (CONFIG '${1:-}' not found)" >&2
    exit 2
  fi
  if [ ! -x "$SVMOE" ]; then
    echo "svmoe executable '$SVMOE' not found: build it (scripts/build.sh) or set SVMOE" >&2
    exit 2
  fi
}

# The job id to requeue: an array task's own, else the job's.
svmoe_job_id() {
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    echo "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  else
    echo "${SLURM_JOB_ID}"
  fi
}

# svmoe_srun SUBCOMMAND ARGS...: one svmoe process per task (one per GPU), each with its own
# log file; requeues the job when svmoe stopped for a signal after checkpointing.
svmoe_srun() {
  mkdir -p "$SVMOE_LOGS"
  # Since Slurm 22.05 srun does not inherit the batch job's --cpus-per-task: without this, every
  # task runs on one CPU (svmoe counts its threads from the CPUs it may use).
  if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"; fi
  # The rendezvous host of a multi-node step: the job's first node as Slurm names it (svmoe's own
  # node-list parser is the fallback where scontrol is missing).
  if [ -z "${MASTER_ADDR:-}" ] && [ -n "${SLURM_JOB_NODELIST:-}" ] && command -v scontrol >/dev/null 2>&1; then
    MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
    if [ -n "$MASTER_ADDR" ]; then export MASTER_ADDR; else unset MASTER_ADDR; fi
  fi
  local name="${SLURM_JOB_NAME:-svmoe}-$(svmoe_job_id)"
  echo "[$(date '+%F %T')] $name: srun $SVMOE $* on ${SLURM_NTASKS:-1} task(s); logs in $SVMOE_LOGS/$name-task*.log"
  srun --kill-on-bad-exit=1 --output "$SVMOE_LOGS/$name-task%t.log" "$SVMOE" "$@"
  local rc=$?
  if [ "$rc" -eq "$SVMOE_EXIT_REQUEUE" ]; then
    echo "[$(date '+%F %T')] $name: stopped with a checkpoint (exit $rc): requeueing $(svmoe_job_id)"
    scontrol requeue "$(svmoe_job_id)"
    exit 0
  fi
  echo "[$(date '+%F %T')] $name: exit $rc"
  exit "$rc"
}
