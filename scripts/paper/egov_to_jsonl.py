#!/usr/bin/env python3
"""Turns e-Gov law XML (the 法令標準XML of the bulk download, one file per law) into the JSONL
corpus `svmoe prepare` reads: {"text": ..., "category": 法令分類, "law_id": ..., "title": ...}.

The XML does not hold a law's 法令分類 (the e-Gov search's 事項別分類, 50 categories such as
国税, 金融・保険, 地方財政); give it as a CSV with columns law_id,category (a header line, then
one law per line; law_id is the ID the bulk download names its folders and files after, e.g.
129AC0000000089). Laws missing from it are counted and left out (or kept with --unknown NAME).

    /usr/bin/python3 scripts/paper/egov_to_jsonl.py --xml DIR_OR_FILES... \
        --categories law_categories.csv --output data/egov/laws.jsonl.gz [--unit law|article]

--unit law (the default) makes one document per law: its title, then each article of the main
provision on its own line (supplementary provisions left out unless --with-supplementary);
--unit article makes one document per article. Ruby readings (<Rt>) are dropped. Standard
library only; the output is written atomically and is identical for identical inputs.
"""
import argparse
import csv
import gzip
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter


def fail(message, hint):
    sys.exit(f"egov_to_jsonl: {message}\nhint: {hint}")


def read_categories(path):
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        fail(f"cannot read '{path}': {e.strerror}", "give the CSV of law_id,category with --categories")
    if not rows or "law_id" not in rows[0] or "category" not in rows[0]:
        fail(f"'{path}' has no law_id and category columns", "its first line must be: law_id,category")
    return {row["law_id"].strip(): row["category"].strip() for row in rows if row["law_id"].strip()}


def xml_files(inputs):
    files = []
    for item in inputs:
        if os.path.isdir(item):
            for root, _, names in os.walk(item):
                files += [os.path.join(root, n) for n in names if n.endswith(".xml")]
        elif os.path.isfile(item):
            files.append(item)
        else:
            fail(f"'{item}' is neither a file nor a folder", "give the unpacked bulk download's folder, or XML files")
    return sorted(files)


def text_of(element):
    """The element's text without ruby readings, whitespace collapsed."""
    parts = []

    def walk(node):
        if node.tag == "Rt":
            return
        if node.text:
            parts.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(element)
    return re.sub(r"\s+", " ", "".join(parts)).strip()


def law_id_of(path):
    """The bulk download names each file LAWID_DATE_REVISION.xml (older ones LAWID.xml)."""
    return os.path.basename(path)[: -len(".xml")].split("_")[0]


def documents(path, unit, with_supplementary):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        fail(f"'{path}' is not well-formed XML: {e}", "re-extract the bulk download, or leave this file out")
    law = root if root.tag == "Law" else root.find(".//Law")
    if law is None:
        fail(f"'{path}' holds no <Law> element", "give e-Gov 法令標準XML files")
    title = law.find(".//LawTitle")
    title = text_of(title) if title is not None else ""
    provisions = law.findall(".//MainProvision")
    if with_supplementary:
        provisions += law.findall(".//SupplProvision")
    articles = []
    for provision in provisions:
        found = provision.findall(".//Article")
        if found:
            articles += [text_of(a) for a in found]
        else:  # short laws have paragraphs straight under the provision
            articles += [text_of(p) for p in provision.findall("./Paragraph")]
    articles = [a for a in articles if a]
    if unit == "law":
        return [(title, "\n".join([title] + articles))] if articles else []
    return [(title, a) for a in articles]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xml", nargs="+", required=True, help="XML files or folders of them")
    parser.add_argument("--categories", required=True, help="CSV: law_id,category")
    parser.add_argument("--output", required=True, help="a .jsonl or .jsonl.gz file")
    parser.add_argument("--unit", choices=["law", "article"], default="law")
    parser.add_argument("--with-supplementary", action="store_true", help="keep supplementary provisions (附則)")
    parser.add_argument("--unknown", default="", help="category for laws not in the CSV (default: leave them out)")
    args = parser.parse_args()

    categories = read_categories(args.categories)
    files = xml_files(args.xml)
    if not files:
        fail("no .xml files found", "give the folder the e-Gov bulk download unpacks into")
    counts, missing, written = Counter(), [], 0
    temporary = args.output + ".partial"
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    opener = gzip.open if args.output.endswith(".gz") else open
    with opener(temporary, "wt", encoding="utf-8") as out:
        for path in files:
            law_id = law_id_of(path)
            category = categories.get(law_id, args.unknown)
            if not category:
                missing.append(law_id)
                continue
            for title, text in documents(path, args.unit, args.with_supplementary):
                out.write(json.dumps({"text": text, "category": category, "law_id": law_id, "title": title},
                                     ensure_ascii=False) + "\n")
                counts[category] += 1
                written += 1
    os.replace(temporary, args.output)
    print(f"egov_to_jsonl: {written} documents from {len(files) - len(missing)} laws in {len(counts)} categories "
          f"-> {args.output}")
    for category, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:8d}  {category}")
    if missing:
        print(f"egov_to_jsonl: {len(missing)} laws have no category in {args.categories} and were left out "
              f"(e.g. {', '.join(missing[:5])}); add them, or give --unknown NAME", file=sys.stderr)


if __name__ == "__main__":
    main()
