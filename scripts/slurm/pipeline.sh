#!/usr/bin/env bash
# Submits the whole recipe as a Slurm DAG: one job per step of `svmoe run`'s plan, each after
# the jobs of the steps it reads (--dependency=afterok), the experts as one array (a task per
# expert), each step on the resources its stage needs. Run it from the repository root:
#   scripts/slurm/pipeline.sh CONFIG.yaml [--from STEP] [--set key=value ...]
# Steps already done are not submitted; steps whose settings changed are cleared first
# (svmoe run --reset-changed). After a failure, fix the cause and run this again: it submits
# what is left. A job stopped by SIGUSR1/SIGTERM checkpoints and requeues itself (common.sh).
#
# Resources (environment variables, with their defaults):
#   SVMOE_GPUS_FINETUNE=8   GPUs per node of the fine-tuning steps (base, dense, btx*, svmoe*)
#   SVMOE_NODES_FINETUNE=1  nodes of the fine-tuning steps
#   SVMOE_GPUS_ROUTER=1     GPUs of train-router (routers only: one GPU holds it)
#   SVMOE_GPUS_EXPERT=1     GPUs of each expert's array task (one task per GPU, data parallel)
#                           (0 for any of these: one task on CPUs, no GPU asked for: a CPU
#                           cluster, or scripts/test-slurm.sh's one-node Slurm)
#   SVMOE_CPUS=8            CPUs per task; prepare and merge get 2 x that, and no GPU
#   SVMOE_TIME=24:00:00     time limit of every job
#   SVMOE_SBATCH_ARGS       more sbatch arguments for every job (e.g. "--partition=gpu --account=x")
#   SVMOE, SVMOE_LOGS       as in common.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
svmoe_usage_check "$@"
config="$1"; shift
# --from STEP is for the submission (it clears STEP and what follows); the jobs get the rest.
options=(); from=()
while [ $# -gt 0 ]; do
  if [ "$1" = --from ]; then from=(--from "${2:?--from needs a step}"); shift 2; else options+=("$1"); shift; fi
done
gpus_finetune="${SVMOE_GPUS_FINETUNE:-8}"
nodes_finetune="${SVMOE_NODES_FINETUNE:-1}"
gpus_router="${SVMOE_GPUS_ROUTER:-1}"
gpus_expert="${SVMOE_GPUS_EXPERT:-1}"
cpus="${SVMOE_CPUS:-8}"
gpus_eval=1
[ "$gpus_finetune" = 0 ] && gpus_eval=0  # a CPU-only DAG evaluates on CPUs too
# N GPUs: N tasks of one GPU each; 0: one task on CPUs, asking for no GPU.
tasks_for() { if [ "$1" = 0 ]; then echo 1; else echo "$1"; fi; }
gpus_per_task() { if [ "$1" != 0 ]; then echo "--gpus-per-task=1"; fi; }
gpus_per_node() { if [ "$1" != 0 ]; then echo "--gpus-per-node=$1"; fi; }
read -r -a common_args <<< "--time=${SVMOE_TIME:-24:00:00} --signal=USR1@300 --requeue ${SVMOE_SBATCH_ARGS:-}"
mkdir -p "$SVMOE_LOGS"

"$SVMOE" run -c "$config" "${options[@]}" "${from[@]}" --reset-changed
plan="$("$SVMOE" run -c "$config" "${options[@]}" --plan-tsv)"

declare -A job_of
submitted=0
while IFS=$'\t' read -r step stage action tasks needs output; do
  [ -z "$step" ] || [ "$action" = done ] && continue
  dependencies=()
  for need in ${needs//,/ }; do
    if [ -n "${job_of[$need]:-}" ]; then dependencies+=("${job_of[$need]}"); fi
  done
  resources=()
  case "$stage" in
    prepare|merge|report) resources=(--nodes=1 --ntasks=1 --cpus-per-task=$((2 * cpus))) ;;
    eval) resources=(--nodes=1 --ntasks=1 $(gpus_per_task "$gpus_eval") --cpus-per-task="$cpus") ;;
    # One task per GPU: an expert on several GPUs trains data parallel.
    train-experts) resources=(--array="0-$((tasks - 1))" --nodes=1 --ntasks="$(tasks_for "$gpus_expert")"
                              $(gpus_per_task "$gpus_expert") --cpus-per-task="$cpus") ;;
    train-router) resources=(--nodes=1 --ntasks="$(tasks_for "$gpus_router")" $(gpus_per_task "$gpus_router")
                             --cpus-per-task="$cpus") ;;
    finetune) resources=(--nodes="$nodes_finetune" --ntasks-per-node="$(tasks_for "$gpus_finetune")"
                         $(gpus_per_node "$gpus_finetune") --cpus-per-task="$cpus") ;;
    *) echo "pipeline.sh: unknown stage '$stage' in svmoe run's plan" >&2; exit 2 ;;
  esac
  if [ "${#dependencies[@]}" -gt 0 ]; then
    resources+=(--dependency="afterok:$(IFS=:; echo "${dependencies[*]}")" --kill-on-invalid-dep=yes)
  fi
  log="$SVMOE_LOGS/%x-%j.out"
  [ "$stage" = train-experts ] && log="$SVMOE_LOGS/%x-%A_%a.out"
  id="$(sbatch --parsable --job-name="svmoe-$step" --output="$log" "${common_args[@]}" "${resources[@]}" \
          "$SVMOE_ROOT/scripts/slurm/step.sbatch" "$config" "$step" "${options[@]}")"
  job_of[$step]="${id%%;*}"
  submitted=$((submitted + 1))
  echo "pipeline.sh: $step ($stage, $action) -> job ${job_of[$step]}${dependencies:+ after ${dependencies[*]}}"
done <<< "$plan"
echo "pipeline.sh: $submitted job(s) submitted; logs in $SVMOE_LOGS"
