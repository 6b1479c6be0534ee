"""A synthetic knowledge base for `make bench`: the real specs, three renamed copies of the language
model's layer ops and everything they compose (10 specs each), and one parent that sums 24 children (the
shape of a whole model listing its blocks). With the 44 real specs that is 75 pages.

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
COPIES = 3  # renamed sets beside the originals, each the parent's summed ops and everything they compose
# The parent's children: language-scope ops, so one binding serves them all.
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


def _spec(op: str) -> dict:
    return yaml.safe_load((SPECS / f"{op}.yaml").read_text(encoding="utf-8"))


def _composed(ops: tuple[str, ...]) -> list[str]:
    """The ops and every op they use as a child, transitively (a copy's children are copies too)."""
    found, todo = set(), list(ops)
    while todo:
        op = todo.pop()
        if op not in found:
            found.add(op)
            todo += [child["op"] for child in _spec(op).get("children", [])]
    return sorted(found)


def _parent(suffixes: list[str], implementation: str) -> dict:
    """A language-scope op with no work of its own whose quantities are the sum of 24 children."""
    base = yaml.safe_load((SPECS / "DeepseekV2RMSNorm.yaml").read_text(encoding="utf-8"))
    children = []
    for suffix in suffixes:
        for op in SUMMED:
            child = {"name": f"{op}{suffix}".lower(), "op": f"{op}{suffix}", "why": "summed for the benchmark"}
            variants = list(_spec(op).get("variants", {}))
            if variants:  # the MoE layer where there is one, else the op's first variant
                child["variant"] = "moe" if "moe" in variants else variants[0]
            children.append(child)
    peaks = ", ".join(f"peak({child['name']})" for child in children)
    return base | {
        "op": PARENT,
        "implementation": implementation,
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


def _implementations() -> dict[str, str]:
    """Each real op's implementation path: a copy names its original's class (its own name has none)."""
    sys.path.insert(0, str(ROOT))
    from opdoc.pipeline import Paths, load
    from opdoc.source import implementation_path

    catalog, _ = load(Paths(root=ROOT, specs=SPECS))
    return {op: implementation_path(item, catalog) for op, item in catalog.specs.items()}


def _with_implementation(text: str, path: str) -> str:
    """The spec with `implementation:` set (after `scope:`) unless it already names one."""
    if re.search(r"^implementation:", text, re.M):
        return text
    return re.sub(r"^(scope: .*\n)", rf"\g<1>implementation: {path}\n", text, count=1, flags=re.M)


def write_synthetic(dest: Path) -> int:
    ops = _ops()
    implementations = _implementations()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SPECS / "model.yaml", dest / "model.yaml")
    sets = [("", ops)] + [(f"Copy{n}", _composed(SUMMED)) for n in range(1, COPIES + 1)]
    written = 0
    for suffix, members in sets:
        for op in members:
            text = (SPECS / f"{op}.yaml").read_text(encoding="utf-8")
            if suffix:
                text = _renamed(_with_implementation(text, implementations[op]), ops, suffix)
            (dest / f"{op}{suffix}.yaml").write_text(text, encoding="utf-8")
            written += 1
    parent = _parent([suffix for suffix, _ in sets[: 4]], implementations["DeepseekV2RMSNorm"])
    (dest / f"{PARENT}.yaml").write_text(yaml.safe_dump(parent, sort_keys=False, allow_unicode=True, width=120),
                                         encoding="utf-8")
    return written + 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python scripts/synthetic_kb.py DEST (a folder for model.yaml and the specs)")
    print(f"wrote {write_synthetic(Path(sys.argv[1]))} specs to {sys.argv[1]}")
