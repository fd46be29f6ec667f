"""How much the router's TF-IDF teacher changes with train_router.teacher_split (train | all) and
teacher_tf (raw | sublinear), from a prepared dataset's tfidf.safetensors (its token_counts),
computed with scikit-learn's TfidfTransformer (an implementation svmoe did not write).
Prints, per variant: the mean entropy of the teacher over the test split's tokens (what the
router sees at eval), the fraction of those tokens whose teacher argmax differs from the
default's, and the largest difference from the stored teacher (the default must give 0).
Usage: /usr/bin/python3 teacher_variants.py DATASET_DIR (Debian's python3-sklearn and numpy)."""
import json
import struct
import sys

import numpy as np
from sklearn.feature_extraction.text import TfidfTransformer

DTYPES = {"I64": np.int64, "F32": np.float32, "BOOL": np.bool_, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype=DTYPES[spec["dtype"]]).reshape(spec["shape"])
    return tensors


def teacher(counts, sublinear):
    """[N, V] counts -> [V, N] per-token-normalised TF-IDF (zeros where a token occurs nowhere)."""
    rows = TfidfTransformer(sublinear_tf=sublinear).fit_transform(counts.astype(np.float64)).toarray()
    column = rows.sum(axis=0)
    out = np.zeros_like(rows)
    seen = column > 0
    out[:, seen] = rows[:, seen] / column[seen]
    return out.T, seen


def main(dataset):
    t = read_safetensors(f"{dataset}/tfidf.safetensors")
    counts = t["token_counts"]  # [3, N, V]
    test_frequency = counts[2].sum(axis=0).astype(np.float64)
    stored = t["tfidf_target"].astype(np.float64)
    default, default_seen = teacher(counts[0], False)
    print("| teacher_split | teacher_tf | mean teacher entropy (test tokens) | argmax changed | max diff from stored |")
    print("|---|---|---|---|---|")
    for split in ("train", "all"):
        for tf in ("raw", "sublinear"):
            c = counts[0] if split == "train" else counts.sum(axis=0)
            target, seen = teacher(c, tf == "sublinear")
            p = np.clip(target, 1e-30, 1.0)
            entropy = -(target * np.log(p)).sum(axis=1)
            weight = test_frequency * seen
            mean_entropy = (entropy * weight).sum() / weight.sum()
            both = seen & default_seen & (test_frequency > 0)
            changed = (target[both].argmax(1) != default[both].argmax(1))
            changed_share = (changed * test_frequency[both]).sum() / test_frequency[both].sum()
            diff = np.abs(target[: stored.shape[0]] - stored).max()
            print(f"| {split} | {tf} | {mean_entropy:.3f} | {100 * changed_share:.1f}% | {diff:.2e} |")


if __name__ == "__main__":
    main(sys.argv[1])
