"""Writes the German fortunes corpus from an unpacked fortunes-de tree (see get-fortunes-corpus.sh).
Usage: make_fortunes_corpus.py FORTUNES_DIR OUTPUT.jsonl. Standard library only; deterministic.
Each fortune file NAME.u8 (UTF-8) holds fortunes separated by lines holding only '%'; each
fortune becomes one document of category NAME."""
import json
import os
import sys

MIN_FORTUNES = 10  # categories with fewer fortunes are left out


def fortunes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    parts, current = [], []
    for line in text.splitlines():
        if line.strip() == "%":
            parts.append("\n".join(current).strip())
            current = []
        else:
            current.append(line.rstrip())
    parts.append("\n".join(current).strip())
    return [p for p in parts if p]


def main(root, output):
    categories = {}
    for name in sorted(os.listdir(root)):
        if not name.endswith(".u8"):
            continue
        texts = fortunes(os.path.join(root, name))
        if len(texts) >= MIN_FORTUNES:
            categories[name[: -len(".u8")]] = texts
    documents = 0
    size = 0
    with open(output + ".tmp", "w", encoding="utf-8") as f:
        for category, texts in categories.items():
            for text in texts:
                f.write(json.dumps({"text": text, "category": category}, ensure_ascii=False) + "\n")
                documents += 1
                size += len(text.encode("utf-8"))
    os.replace(output + ".tmp", output)
    print(f"make_fortunes_corpus: {output}: {len(categories)} categories, {documents} fortunes, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
