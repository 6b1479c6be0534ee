"""A synthetic knowledge base of about 45 pages, for `make bench`: the real specs, renamed copies of
them, and one parent that sums 24 children (the shape of a whole model listing its blocks).

`write_synthetic(dest)` writes `dest/model.yaml` and the op specs and returns the number of specs;
`python scripts/synthetic_kb.py DEST` does the same from the command line. Copies keep their
formulas, prose and implementation path; only op names change (a copy's children are the copies of
the same set), so every copy costs what the original costs to load, evaluate, render and plot.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs" / "deepseek_ocr"
FULL_COPIES = 3  # complete renamed sets beside the originals: 10 + 30 specs
# A fourth, partial set, and the parent's children: language-scope ops, so one binding serves them all.
EXTRA = ("DeepseekV2RMSNorm", "DeepseekV2MLP", "MoEGate", "LlamaAttention")
SUMMED = ("DeepseekV2RMSNorm", "DeepseekV2MLP", "MoEGate", "LlamaAttention", "DeepseekV2MoE",
          "DeepseekV2DecoderLayer")
PARENT = "SyntheticSum"


def _ops() -> list[str]:
    return sorted(path.stem for path in SPECS.glob("*.yaml") if path.name != "model.yaml")


def _renamed(text: str, ops: list[str], suffix: str) -> str:
    """The spec text with every op name suffixed, except the import path of the reference class."""
    pattern = re.compile(r"\b(" + "|".join(sorted(ops, key=len, reverse=True)) + r")\b")
    lines = text.splitlines(keepends=True)
    return "".join(line if line.startswith("implementation:") else pattern.sub(rf"\g<1>{suffix}", line)
                   for line in lines)


def _parent(suffixes: list[str]) -> dict:
    """A language-scope op with no work of its own whose quantities are the sum of 24 children."""
    base = yaml.safe_load((SPECS / "DeepseekV2RMSNorm.yaml").read_text(encoding="utf-8"))
    children = []
    for suffix in suffixes:
        for op in SUMMED:
            child = {"name": f"{op}{suffix}".lower(), "op": f"{op}{suffix}", "why": "summed for the benchmark"}
            if op == "DeepseekV2DecoderLayer":
                child["variant"] = "moe"
            children.append(child)
    peaks = ", ".join(f"peak({child['name']})" for child in children)
    return base | {
        "op": PARENT,
        "summary": "A synthetic parent that adds up 24 children, to time a large composition.",
        "tensors": [{"name": "x", "role": "input", "shape": ["B", "S", "h"]},
                    {"name": "out", "role": "output", "shape": ["B", "S", "h"]}],
        "operations": [],
        "children": children,
        "memory": {"peak": {"any": {"formula": f"max({peaks})",
                                    "explain": "Children run one after another; the largest peak wins."}}},
        "closed_forms": {},
        "related": {},
    }


def write_synthetic(dest: Path) -> int:
    ops = _ops()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SPECS / "model.yaml", dest / "model.yaml")
    sets = [("", ops)] + [(f"Copy{n}", ops) for n in range(1, FULL_COPIES + 1)]
    sets.append((f"Copy{FULL_COPIES + 1}", list(EXTRA)))
    written = 0
    for suffix, members in sets:
        for op in members:
            text = (SPECS / f"{op}.yaml").read_text(encoding="utf-8")
            (dest / f"{op}{suffix}.yaml").write_text(_renamed(text, ops, suffix) if suffix else text,
                                                     encoding="utf-8")
            written += 1
    parent = _parent([suffix for suffix, _ in sets[: 4]])
    (dest / f"{PARENT}.yaml").write_text(yaml.safe_dump(parent, sort_keys=False, allow_unicode=True, width=120),
                                         encoding="utf-8")
    return written + 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/synthetic_kb.py DEST (a folder for model.yaml and the specs)")
    print(f"wrote {write_synthetic(Path(sys.argv[1]))} specs to {sys.argv[1]}")
