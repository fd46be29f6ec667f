#!/usr/bin/python3
"""Fault injection on `svmoe run`: the experiment directory must survive every fault.

Runs a tiny experiment (the CI slice of the example corpus, the fixture Llama, 2 subdomains)
once without faults (the reference), then again under faults, and checks after each fault that
  - the error (if the process could print one) is clear: svmoe's "error:" line and exit code,
  - `svmoe run --dry-run` still reads the directory, and every step it calls done has its
    outputs (the fingerprint in its marker) and its models load (`svmoe inspect`),
  - no step that was done before the fault is done no longer (an output lost),
and, once the run is finished, that every result is byte-identical to the reference (weights,
dataset, eval results and tables).

Faults:
  kill -9     for every step of the plan, KILLS times: start `svmoe run`, wait until the step
              has started, kill the process at a seeded random point of the step's reference
              duration, go on with the next kill; then finish the run;
  writers     while the longest step runs (before its kill), a second `svmoe run` and a second
              writer of that step (`svmoe run --only STEP`) on the same directory: each must
              fail at once with exit code 8 naming the holder;
  full disk   (root, tmpfs) the experiment on a tmpfs of a seeded random size below what it
              needs: the run must stop with exit code 5 and "No space left on device"; then
  read-only   the same tmpfs remounted read-only: exit code 5 again; then remounted larger
              and read-write, the run must finish with the reference's results.
Prints a table (fault, where, injected, survived, outputs lost) and exits non-zero when a fault
was not survived or an output was lost.

  /usr/bin/python3 scripts/fault-injection.py [--kills 1] [--disks 1] [--seed 1] [--svmoe build/svmoe]
The bounded form (CI's first leg, .ci/run) is the default; `--kills 5 --disks 5` is the long form.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def experiment_yaml(run_dir: Path) -> str:
    """The tiny experiment of tests/e2e/test_pipeline.cpp, with checkpoints every few steps so
    that a killed training step resumes from one (and must then give the same weights)."""
    data = ROOT / "tests" / "data"
    return (
        "runtime: {threads: 2}\n"
        f"run:\n  dir: {run_dir}\n  base_model: {data / 'models' / 'llama_mha_untied'}\n"
        "  pretrain_base: {enabled: true, train: {steps: 60}}\n  models: [dense, btx, svmoe_lb]\n"
        f"prepare:\n  corpus: {ROOT / 'data' / 'example' / 'ci.jsonl'}\n"
        f"  tokenizer: {data / 'tokenizers' / 'unigram'}\n  num_subdomains: 2\n"
        "train: {micro_batch: 4, sequence_length: 32, learning_rate: 3.0e-3, warmup_steps: 2, "
        "log_every: 5, eval_every: 0, eval_batches: 2, save_every: 5, keep_last: 2}\n"
        "train_experts: {train: {steps: 20}}\n"
        "merge: {num_experts_per_tok: 1}\n"
        "train_router: {train: {steps: 20, learning_rate: 1.0e-2}}\n"
        "finetune: {train: {steps: 20}}\n"
        "eval: {context_length: 64, max_documents: 3}\n"
        'report: {text: "The device tree describes the hardware."}\n'
    )


class Experiment:
    def __init__(self, svmoe: Path, root: Path):
        self.svmoe, self.root = svmoe, root
        self.dir = root / "exp"
        self.config = root / "experiment.yaml"
        root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(experiment_yaml(self.dir))

    def command(self, *extra):
        return [str(self.svmoe), "run", "-c", str(self.config), *extra]

    def run(self, *extra, timeout=1800):
        return subprocess.run(self.command(*extra), capture_output=True, text=True, timeout=timeout)

    def start(self, *extra, log="run.log"):
        out = open(self.root / log, "a")
        return subprocess.Popen(self.command(*extra), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def plan(self):
        """[(step, action, output)] from --plan-tsv; raises when svmoe cannot read the directory."""
        result = self.run("--plan-tsv")
        if result.returncode != 0:
            raise RuntimeError(f"--plan-tsv failed ({result.returncode}): {result.stdout}{result.stderr}")
        rows = [line.split("\t") for line in result.stdout.splitlines() if line.strip()]
        return [(r[0], r[2], Path(r[5])) for r in rows]

    def marker(self, step):
        try:
            return json.loads((self.dir / "pipeline" / f"{step}.json").read_text())
        except (OSError, ValueError):
            return None

    def running_step(self, steps):
        for step in steps:
            m = self.marker(step)
            if m and m.get("state") == "started":
                return step
        return None


def results_digest(exp: Path) -> dict:
    """SHA-256 of every result a user keeps: weights, configs, tokenizer, dataset, eval outputs.
    Left out: markers, logs, metrics and TensorBoard events (times), checkpoints (which ones exist
    depends on where a run was stopped), lock files and the report (it shows times). The
    experiment's own path, which manifests and results record, is replaced by EXPERIMENT before
    hashing."""
    digest = {}
    prefix = str(exp.parent).encode()
    for path in sorted(exp.rglob("*")):
        rel = path.relative_to(exp)
        parts = rel.parts
        if not path.is_file() or parts[0] == "pipeline":
            continue
        if any(p.startswith("checkpoint-") for p in parts) or path.suffix in (".log", ".lock", ".html"):
            continue
        if path.name in ("metrics.jsonl", "trainer_state.json") or path.name.startswith("events.out.tfevents."):
            continue
        content = path.read_bytes()
        if path.suffix in (".json", ".md", ".csv", ".jsonl"):
            content = content.replace(prefix, b"EXPERIMENT")
        digest[str(rel)] = hashlib.sha256(content).hexdigest()
    return digest


def check_directory(experiment: Experiment, done_before: set) -> tuple:
    """After a fault: (problems, done steps, outputs lost)."""
    problems = []
    try:
        plan = experiment.plan()
    except RuntimeError as e:
        return [str(e)], set(), 0
    done = {step for step, action, _ in plan if action == "done"}
    lost = len(done_before - done)
    if lost:
        problems.append(f"no longer done: {sorted(done_before - done)}")
    for step, action, output in plan:
        if action != "done" or not output.is_dir():
            continue
        for config in output.rglob("config.json"):
            model = config.parent
            if any(p.startswith("checkpoint-") or p.endswith(".partial") for p in model.parts):
                continue
            if not any(model.glob("*.safetensors")):
                continue
            inspected = subprocess.run([str(experiment.svmoe), "inspect", str(model)], capture_output=True, text=True)
            if inspected.returncode != 0:
                problems.append(f"{step}: {model} does not load: {inspected.stderr.strip()[:200]}")
    return problems, done, lost


def clear_error(output: str, code: int, expected_code: int, expected_text: str) -> str:
    """'' when svmoe failed the way it should; else what was wrong."""
    if code != expected_code:
        return f"exit code {code}, expected {expected_code}: {output.strip()[-300:]}"
    if "[error]" not in output or expected_text not in output:
        return f"the error does not say '{expected_text}': {output.strip()[-300:]}"
    return ""


class Table:
    def __init__(self):
        self.rows = []

    def add(self, fault, where, injected, survived, lost, note=""):
        self.rows.append((fault, where, injected, survived, lost, note))
        print(f"fault-injection: {fault} in {where}: {'survived' if survived == injected else 'NOT SURVIVED'}"
              f"{' (' + note + ')' if note else ''}", flush=True)

    def print(self):
        print("\n| fault | where | injected | survived | outputs lost |\n|---|---|---|---|---|")
        for fault, where, injected, survived, lost, _ in self.rows:
            print(f"| {fault} | {where} | {injected} | {survived} | {lost} |")
        injected = sum(r[2] for r in self.rows)
        survived = sum(r[3] for r in self.rows)
        lost = sum(r[4] for r in self.rows)
        print(f"| **total** | | {injected} | {survived} | {lost} |")
        return injected == survived and lost == 0


def reference_run(experiment: Experiment):
    """The uninterrupted run, timing each step from its marker (started -> done)."""
    steps = [step for step, _, _ in experiment.plan()]
    started, finished = {}, {}
    process = experiment.start(log="reference.log")
    while process.poll() is None:
        now = time.monotonic()
        for step in steps:
            m = experiment.marker(step)
            if m and step not in started:
                started[step] = now
            if m and m.get("state") == "done" and step not in finished:
                finished[step] = now
        time.sleep(0.02)
    if process.returncode != 0:
        sys.exit(f"fault-injection: the reference run failed ({process.returncode}): see {experiment.root}/reference.log")
    durations = {s: max(finished.get(s, 0) - started.get(s, 0), 0.05) for s in steps}
    return steps, durations


def concurrent_writers(experiment, process, step, table):
    """While `process` runs `step`, a second `svmoe run` and a second writer of the step. The
    first is paused meanwhile (SIGSTOP keeps its locks), so that it is still writing however
    slowly the others start."""
    os.killpg(process.pid, signal.SIGSTOP)
    try:
        for name, extra in (("second svmoe run", ()), ("second writer of the step", ("--only", step))):
            second = experiment.run(*extra, timeout=120)
            problem = clear_error(second.stdout + second.stderr, second.returncode, 8, f"pid {process.pid}")
            table.add("concurrent writer", f"{name} ({step})", 1, 0 if problem else 1, 0, problem)
    finally:
        os.killpg(process.pid, signal.SIGCONT)


def kill_faults(experiment, steps, durations, kills, rng, table, reference, training_step):
    done = set()
    for step in steps:
        for kill in range(kills):
            process = experiment.start()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and process.poll() is None:
                m = experiment.marker(step)
                if m and m.get("state") in ("started", "done"):
                    break
                time.sleep(0.01)
            if process.poll() is not None:  # finished (or failed) before the step began
                if process.returncode != 0:
                    table.add("kill -9", step, 1, 0, 0, f"the run failed before the step began ({process.returncode})")
                else:  # an earlier kill landed after the last step: nothing left to kill
                    print(f"fault-injection: kill -9 in {step} not injected: the run had finished", flush=True)
                continue
            if step == training_step and kill == 0:
                concurrent_writers(experiment, process, step, table)
            # A point early enough in the reference's duration to fall inside the step, mostly;
            # at the latest as the step ends (then the kill lands at the start of the next one).
            kill_at = time.monotonic() + rng.uniform(0, 0.6) * durations[step]
            while time.monotonic() < kill_at and process.poll() is None:
                m = experiment.marker(step)
                if m and m.get("state") == "done":
                    break
                time.sleep(0.005)
            where = experiment.running_step(steps) or step
            finished = process.poll() is not None
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended (and poll() reaped it) during the wait
                pass
            process.wait()
            if finished and process.returncode == 0:
                print(f"fault-injection: kill -9 in {step} not injected: the run had finished", flush=True)
                continue
            problems, now_done, lost = check_directory(experiment, done)
            table.add("kill -9", where, 1, 0 if problems else 1, lost, "; ".join(problems))
            done = now_done
    process = experiment.start()  # the run that finishes
    process.wait()
    if process.returncode != 0:
        table.add("finish after the faults", "-", 1, 0, 0, f"exit code {process.returncode}")
    else:
        same = results_digest(experiment.dir) == reference
        table.add("results byte-identical", "all steps", 1, 1 if same else 0, 0, "" if same else "results differ")


def disk_faults(svmoe, work, reference_bytes, rng, table, reference):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        print("fault-injection: full disk and read-only skipped: they need root to mount a tmpfs")
        return
    mount_point = work / f"tmpfs{len(table.rows)}"
    mount_point.mkdir()
    size_kb = int(reference_bytes * rng.uniform(0.3, 0.8) / 1024)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount_point)]).returncode != 0:
        print("fault-injection: full disk and read-only skipped: this machine cannot mount a tmpfs")
        return
    try:
        experiment = Experiment(svmoe, mount_point)
        full = experiment.run()
        problem = clear_error(full.stdout + full.stderr, full.returncode, 5, "No space left on device")
        problems, done, lost = check_directory(experiment, set()) if not problem else ([], set(), 0)
        where = experiment.running_step([s for s, _, _ in experiment.plan()]) or "?"
        table.add("full disk", f"{where} ({size_kb} KiB)", 1, 0 if problem or problems else 1, lost,
                  "; ".join([problem] + problems).strip("; "))
        subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
        read_only = experiment.run()
        problem = clear_error(read_only.stdout + read_only.stderr, read_only.returncode, 5, "Read-only file system")
        subprocess.run(["mount", "-o", f"remount,rw,size={int(reference_bytes * 3 / 1024)}k", str(mount_point)],
                       check=True)
        problems, _, lost = check_directory(experiment, done)
        table.add("read-only output", "the next step", 1, 0 if problem or problems else 1, lost,
                  "; ".join([problem] + problems).strip("; "))
        finish = experiment.run()
        same = finish.returncode == 0 and results_digest(experiment.dir) == reference
        table.add("results byte-identical", "after the disk faults", 1, 1 if same else 0, 0,
                  "" if same else f"exit code {finish.returncode}: {finish.stderr.strip()[-300:]}")
    finally:
        subprocess.run(["umount", str(mount_point)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--svmoe", default=str(ROOT / "build" / "svmoe"))
    parser.add_argument("--kills", type=int, default=1, help="kill -9 faults per step (1: CI's bounded form)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", help="working directory (default: a temporary one, removed)")
    parser.add_argument("--disks", type=int, default=1,
                        help="full-disk (then read-only) experiments, each at its own disk size (0: none)")
    args = parser.parse_args()
    svmoe = Path(args.svmoe).resolve()
    if not svmoe.exists():
        sys.exit(f"fault-injection: {svmoe} does not exist: build svmoe first (scripts/build.sh)")
    if not (ROOT / "data" / "example" / "ci.jsonl").exists():
        sys.exit("fault-injection: data/example/ci.jsonl is missing: run scripts/get-example-corpus.sh")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="svmoe-faults."))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    started = time.monotonic()
    table = Table()
    try:
        reference_experiment = Experiment(svmoe, work / "reference")
        steps, durations = reference_run(reference_experiment)
        reference = results_digest(reference_experiment.dir)
        reference_bytes = sum(p.stat().st_size for p in reference_experiment.dir.rglob("*") if p.is_file())
        print(f"fault-injection: reference run: {len(steps)} steps, {sum(durations.values()):.0f} s, "
              f"{len(reference)} result files, {reference_bytes / 1e6:.1f} MB (seed {args.seed})", flush=True)
        kill_faults(Experiment(svmoe, work / "killed"), steps, durations, args.kills, rng, table, reference,
                    training_step=max(steps[1:], key=lambda s: durations[s]))
        for _ in range(args.disks):
            disk_faults(svmoe, work, reference_bytes, rng, table, reference)
    finally:
        ok = table.print()
        print(f"fault-injection: {time.monotonic() - started:.0f} s; work directory {work}"
              f"{'' if args.work else ' (removed)'}")
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
