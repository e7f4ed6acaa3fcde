"""Summarise a pytest JUnit XML from a bare GPU machine: real failures in full, missing-wheel ones counted.

The GPU machine lacks the UI wheels (streamlit, plotly, ...), so tests that import them fail there with
ModuleNotFoundError; those say nothing about CUDA and are only counted. Every other failure is printed.
Usage: python3 bench/gpu_tests_summary.py results.xml   (exit 1 when a real failure is found)
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter


def main(path: str) -> int:
    root = ET.parse(path).getroot()
    counts: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    real: list[tuple[str, str]] = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            counts["skipped" if case.find("skipped") is not None else "passed"] += 1
            continue
        text = f"{problem.get('message') or ''}\n{problem.text or ''}"
        module = re.search(r"No module named '([\w.]+)'", text)
        if module:
            counts["needs a wheel not carried"] += 1
            missing[module.group(1).split(".")[0]] += 1
        else:
            counts["FAILED"] += 1
            real.append((name, text))
    print(", ".join(f"{n} {k}" for k, n in counts.items()))
    if missing:
        print("not carried (tests not run here):", ", ".join(f"{m} ({n})" for m, n in missing.most_common()))
    for name, text in real:
        print(f"\nFAILED {name}\n{text[-1500:]}")
    for case in root.iter("testcase"):
        skipped = case.find("skipped")
        if skipped is not None:
            print(f"skipped {case.get('classname')}::{case.get('name')}: {skipped.get('message')}")
    return 1 if real else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
