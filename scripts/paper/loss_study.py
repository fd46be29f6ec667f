"""Prints the stage-3 loss study of an experiment directory (docs/reproducing-the-paper.md) as a
Markdown table: per model row of eval/results.json, PPL, CMR_1, CMR_2 and S_RL on one split,
and for each SvMoE row the mean entropy of the TF-IDF teacher and of the routers at the end of
its stage 3 (the last `router` record of its router step's metrics.jsonl, averaged over layers).
Usage: loss_study.py EXPERIMENT_DIR [SPLIT]. Standard library only."""
import json
import os
import sys


def mean(values):
    return sum(values) / len(values) if values else float("nan")


def router_entropies(run_dir):
    """(teacher entropy, router entropy) at the last logged step of a train-router run."""
    path = os.path.join(run_dir, "metrics.jsonl")
    last = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if "router" in record:
                last = record["router"]
    if last is None:
        raise SystemExit(f"loss_study: {path} has no router record")
    return last["target_entropy"], mean(last["router_entropy"])


def cell(metric):
    if not metric or metric.get("mean") is None:
        return "-"
    return f"{metric['mean']:.3f}±{metric['std']:.3f}"


def router_dir(experiment, model_path):
    """The router step a stage-4 model started from: models/NAME -> router[_...] by the name."""
    name = os.path.basename(os.path.dirname(model_path.rstrip("/")))
    if not name.startswith("svmoe"):
        return None
    suffix = name[len("svmoe"):]
    if suffix.endswith("_lb"):
        suffix = suffix[: -len("_lb")]
    return os.path.join(experiment, "router" + suffix)


def main(experiment, split="test"):
    with open(os.path.join(experiment, "eval", "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    print(f"| model | LB | PPL | CMR_1 | CMR_2 | S_RL | teacher entropy | router entropy after stage 3 |")
    print("|---|---|---|---|---|---|---|---|")
    for model in results["models"]:
        r = model["splits"].get(split)
        if r is None:
            continue
        teacher = router = "-"
        directory = router_dir(experiment, model["path"]) if model.get("moe") else None
        if directory and os.path.isdir(directory):
            t, e = router_entropies(directory)
            teacher, router = f"{t:.3f}", f"{e:.3f}"
        print(f"| {model['name']} | {model['lb']} | {cell(r.get('ppl'))} | {cell(r.get('cmr_1'))} | "
              f"{cell(r.get('cmr_2'))} | {cell(r.get('s_rl'))} | {teacher} | {router} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
