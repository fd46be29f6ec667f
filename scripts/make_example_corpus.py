"""Writes the example corpus from an unpacked Linux Documentation/ tree (see get-example-corpus.sh).
Usage: make_example_corpus.py DOCUMENTATION_DIR OUTPUT_DIR. Standard library only; deterministic."""
import gzip
import json
import os
import sys

MIN_FILES = 10            # categories with fewer files are left out
QUICKSTART_BYTES = 120_000  # per category, for quickstart.jsonl
QUICKSTART_MAX_DOC = 30_000  # quickstart.jsonl takes documents up to this size
CI_BYTES = 16_000           # per category, for ci.jsonl
CI_MAX_DOC = 3_000          # ci.jsonl takes small documents only, so each category has many
CI_CATEGORIES = 12          # the largest categories, for ci.jsonl


def read(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def main(root, out):
    documents = {}
    for category in sorted(os.listdir(root)):
        folder = os.path.join(root, category)
        if category == "translations" or not os.path.isdir(folder):
            continue
        texts = []
        for directory, subdirs, files in os.walk(folder):
            subdirs.sort()
            for name in sorted(files):
                if name.endswith((".rst", ".rst.gz", ".txt", ".txt.gz")):
                    text = read(os.path.join(directory, name)).strip()
                    if text:
                        texts.append(text)
        if len(texts) >= MIN_FILES:
            documents[category] = texts

    def write(name, categories, budget, max_doc=None):
        total = 0
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            for category in categories:
                used = 0
                for text in documents[category]:
                    if budget is not None and used >= budget:
                        break
                    if max_doc is not None and len(text.encode("utf-8")) > max_doc:
                        continue
                    f.write(json.dumps({"text": text, "category": category}, ensure_ascii=False) + "\n")
                    used += len(text.encode("utf-8"))
                total += used
        print(f"make_example_corpus: {name}: {len(categories)} categories, {total / 1e6:.1f} MB")

    all_categories = sorted(documents)
    largest = sorted(sorted(documents, key=lambda c: -sum(len(t) for t in documents[c]))[:CI_CATEGORIES])
    write("linux-doc.jsonl", all_categories, None)
    write("quickstart.jsonl", all_categories, QUICKSTART_BYTES, QUICKSTART_MAX_DOC)
    write("ci.jsonl", largest, CI_BYTES, CI_MAX_DOC)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
