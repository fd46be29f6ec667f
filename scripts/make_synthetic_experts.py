"""Writes N random dense Llama checkpoints (bf16 safetensors, Hugging Face layout) for the merge
benchmark. Usage: make_synthetic_experts.py OUT_DIR N [hidden intermediate layers vocab].
numpy only; the weights are noise, the layout and sizes are real."""
import json
import os
import struct
import sys

import numpy as np


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        data = tensors[name]
        header[name] = {"dtype": "BF16", "shape": list(data.shape), "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob.tobytes())


def bf16(rng, *shape):
    # The upper 16 bits of float32 values are their bfloat16.
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).view(np.uint32).__rshift__(16).astype(np.uint16)


def main(out, n, hidden=1024, intermediate=3584, layers=8, vocab=32000):
    heads = hidden // 64
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": hidden,
              "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": heads, "head_dim": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "max_position_embeddings": 4096, "tie_word_embeddings": False, "dtype": "bfloat16",
              "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "initializer_range": 0.02}
    for e in range(n):
        rng = np.random.default_rng(e)
        d = os.path.join(out, f"expert_{e}")
        os.makedirs(d, exist_ok=True)
        t = {"model.embed_tokens.weight": bf16(rng, vocab, hidden), "lm_head.weight": bf16(rng, vocab, hidden),
             "model.norm.weight": bf16(rng, hidden)}
        for l in range(layers):
            p = f"model.layers.{l}."
            for k in ("q", "k", "v", "o"):
                t[p + f"self_attn.{k}_proj.weight"] = bf16(rng, hidden, hidden)
            t[p + "mlp.gate_proj.weight"] = bf16(rng, intermediate, hidden)
            t[p + "mlp.up_proj.weight"] = bf16(rng, intermediate, hidden)
            t[p + "mlp.down_proj.weight"] = bf16(rng, hidden, intermediate)
            t[p + "input_layernorm.weight"] = bf16(rng, hidden)
            t[p + "post_attention_layernorm.weight"] = bf16(rng, hidden)
        write_safetensors(os.path.join(d, "model.safetensors"), t)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *[int(x) for x in sys.argv[3:]])
