"""The checks of svmoe's Hugging Face checkpoints that need transformers (run on the GPU
machine, which has transformers 5.17 and PyTorch 2.11; called by checks.sh).
Usage: check_transformers.py SVMOE_BINARY WORK_DIR

1. merge: three dense LlamaForCausalLM experts made and saved by transformers (random, seeded,
   different) are merged by `svmoe merge` (BTX), and the first is upcycled into 4 experts by
   `svmoe merge --method drop_upcycling` with the uniform router init (docs/upcycling.md);
   MixtralForCausalLM.from_pretrained loads each result as it is, and its logits and router
   logits equal `svmoe forward`'s to 1e-4 (float32, CPU). The same for `svmoe merge
   --shared-expert base` (a Qwen2MoeForCausalLM: shared expert, gate, zero q/k/v biases).
2. reading what transformers writes: the Mixtral fixture loaded by transformers and written back
   (a) with save_pretrained and (b) as the module's own state dict (the fused expert layout,
   mlp.experts.gate_up_proj / down_proj, where this version holds experts fused); `svmoe
   forward` on each gives transformers' logits to 1e-4.
3. reading Qwen2-MoE: a random Qwen2MoeForCausalLM (non-zero q/k/v biases and shared-expert gate,
   norm_topk_prob false, GQA) saved by transformers; `svmoe forward` gives its logits and router
   logits to 1e-4.
Prints one PASS/FAIL line per check; exits 1 if any failed."""
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MixtralForCausalLM,
                          Qwen2MoeConfig, Qwen2MoeForCausalLM)

ATOL = 1e-4
failures = []


def report(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def svmoe_forward(svmoe, model_dir, input_ids, work, tag):
    ids_path = os.path.join(work, f"{tag}.input.safetensors")
    out_path = os.path.join(work, f"{tag}.svmoe.safetensors")
    save_file({"input_ids": input_ids.contiguous()}, ids_path)
    subprocess.run([svmoe, "forward", "--device", "cpu", "--model", model_dir, "--input", ids_path, "--output",
                    out_path], check=True)
    return load_file(out_path)


def transformers_forward(model, input_ids):
    with torch.no_grad():
        out = model(input_ids=input_ids, output_router_logits=True)
    return out.logits.float(), [r.float() for r in (getattr(out, "router_logits", None) or [])]


def check_merge(svmoe, work):
    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False)
    experts = []
    for e in range(3):
        torch.manual_seed(100 + e)
        model = LlamaForCausalLM(config)
        for p in model.parameters():  # larger than the init's 0.02, so that logits are of order 1
            p.data.normal_(0.0, 0.2)
        d = os.path.join(work, f"expert_{e}")
        model.save_pretrained(d)
        experts.append(d)
    constructions = (("merge", ["--experts", *experts]),
                     ("drop_upcycling", ["--method", "drop_upcycling", "--base-model", experts[0], "--num-experts", "4",
                                         "--set", "merge.router_init=uniform"]),
                     ("shared_expert", ["--experts", *experts, "--base-model", experts[0], "--shared-expert", "base"]))
    for tag, arguments in constructions:
        moe_dir = os.path.join(work, tag)
        subprocess.run([svmoe, "merge", "--device", "cpu", "--output", moe_dir, *arguments], check=True)
        moe = AutoModelForCausalLM.from_pretrained(moe_dir, dtype=torch.float32).eval()
        expected_class = Qwen2MoeForCausalLM if tag == "shared_expert" else MixtralForCausalLM
        report(f"{tag}: loaded as {type(moe).__name__}", isinstance(moe, expected_class), expected_class.__name__)
        torch.manual_seed(7)
        input_ids = torch.randint(0, 512, (2, 24))
        logits, router_logits = transformers_forward(moe, input_ids)
        ours = svmoe_forward(svmoe, moe_dir, input_ids, work, tag)
        diff = (ours["logits"] - logits).abs().max().item()
        report(f"{tag}: transformers loads svmoe's MoE, logits", diff < ATOL, f"max |diff| {diff:.3g} (logit scale "
               f"{logits.abs().max().item():.3g})")
        for l, r in enumerate(router_logits):
            d = (ours[f"router_logits.{l}"] - r.reshape(-1, r.shape[-1])).abs().max().item()
            report(f"{tag}: router logits of layer {l}", d < ATOL, f"max |diff| {d:.3g}")
        if not router_logits:
            report(f"{tag}: router logits", False, "transformers returned none (output_router_logits=True)")


def check_reading(svmoe, work, fixture):
    expected = load_file(os.path.join(fixture, "expected.safetensors"))
    input_ids = expected["input_ids"]
    model = MixtralForCausalLM.from_pretrained(fixture, dtype=torch.float32).eval()
    logits, _ = transformers_forward(model, input_ids)
    saved = os.path.join(work, "saved_pretrained")
    model.save_pretrained(saved)
    raw = os.path.join(work, "state_dict")
    os.makedirs(raw, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, os.path.join(raw, "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(raw)
    for tag, directory in (("save_pretrained", saved), ("state_dict", raw)):
        names = sorted(load_file(os.path.join(directory, "model.safetensors")).keys()) \
            if os.path.exists(os.path.join(directory, "model.safetensors")) else []
        layout = "fused" if any("gate_up_proj" in n for n in names) else "classic"
        try:
            ours = svmoe_forward(svmoe, directory, input_ids, work, tag)
            diff = (ours["logits"] - logits).abs().max().item()
            report(f"read transformers' {tag} ({layout} expert layout)", diff < ATOL, f"max |diff| {diff:.3g}")
        except subprocess.CalledProcessError as error:
            report(f"read transformers' {tag} ({layout} expert layout)", False, f"svmoe forward failed: {error}")
        with open(os.path.join(work, f"{tag}.keys.json"), "w") as f:
            json.dump(names, f, indent=1)


def check_reading_qwen2_moe(svmoe, work):
    config = Qwen2MoeConfig(vocab_size=512, hidden_size=64, intermediate_size=96, moe_intermediate_size=48,
                            shared_expert_intermediate_size=80, num_experts=6, num_experts_per_tok=2,
                            norm_topk_prob=False, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            max_position_embeddings=128, tie_word_embeddings=False, use_sliding_window=False)
    torch.manual_seed(11)
    model = Qwen2MoeForCausalLM(config)
    for p in model.parameters():  # every weight and bias non-zero, of order 1 logits
        p.data.normal_(0.0, 0.2)
    model.eval()
    directory = os.path.join(work, "qwen2_moe")
    model.save_pretrained(directory)
    torch.manual_seed(8)
    input_ids = torch.randint(0, 512, (2, 24))
    logits, router_logits = transformers_forward(model, input_ids)
    try:
        ours = svmoe_forward(svmoe, directory, input_ids, work, "qwen2_moe")
    except subprocess.CalledProcessError as error:
        report("read transformers' Qwen2MoeForCausalLM", False, f"svmoe forward failed: {error}")
        return
    diff = (ours["logits"] - logits).abs().max().item()
    report("read transformers' Qwen2MoeForCausalLM, logits", diff < ATOL, f"max |diff| {diff:.3g}")
    for l, r in enumerate(router_logits):
        # Some transformers versions return the router's softmax here rather than its logits.
        mine = ours[f"router_logits.{l}"]
        theirs = r.reshape(-1, r.shape[-1])
        d = min((mine - theirs).abs().max().item(), (mine.softmax(-1) - theirs).abs().max().item())
        report(f"read transformers' Qwen2MoeForCausalLM, router logits of layer {l}", d < ATOL, f"max |diff| {d:.3g}")


def main():
    svmoe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import transformers
    print(f"transformers {transformers.__version__}, torch {torch.__version__}", flush=True)
    check_merge(svmoe, work)
    check_reading(svmoe, work, os.path.join(root, "tests", "data", "models", "mixtral_8e_top2"))
    check_reading_qwen2_moe(svmoe, work)
    print(f"{len(failures)} failed" if failures else "all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
