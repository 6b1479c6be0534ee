"""The lint measured on an independent corpus of hand-written op-docs (tests/lint/corpus, written
without reading the lint; see its README): recall over its deliberate defects, precision over every
finding the lint makes on it.

A defect is caught when a finding of a rule of its kind lies on its line (±1).  Every other finding
on a defect file, and every finding on a clean file, is a false alarm.  The figures are printed in
the terminal summary; the floors below are what the lint reaches, rounded down, so that a
regression fails."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import yaml
from conftest import SUMMARY
from lint_helpers import REPO

from opdoc.lint import lint_paths

CORPUS = Path(__file__).parent / "corpus"

# Which rules report each kind of defect (the corpus README's table of kinds).
ARITHMETIC = {"OD901", "OD903"}
SYMBOLS = {"OD702", "OD703", "OD704", "OD705"}
CONFIG = {"OD951", "OD952"}
KIND_RULES = {
    "A": ARITHMETIC, "B": ARITHMETIC, "C": ARITHMETIC, "D": ARITHMETIC, "E": ARITHMETIC, "F": ARITHMETIC,
    "G": ARITHMETIC, "H": SYMBOLS, "I": {"OD205"}, "J": CONFIG,
    # the seed's kinds: inconsistent numbers, dominant term, bytes without dtype, decode vs prefill,
    # an extra section, a Definition without forward, a Location without lines, a ratio claim
    "K": ARITHMETIC | CONFIG | {"OD805", "OD807", "OD204", "OD206", "OD301"},
}

# Measured: recall 63/66 = 0.955, precision 64/70 = 0.914 (the six other findings are OD801 on pages of
# DeepseekV2Model that give their FLOPs in numbers only, with no formula in symbols, which the
# template asks for).  Before the fixes driven by this corpus: recall 0.652, precision 0.095.
RECALL_FLOOR = 0.95
PRECISION_FLOOR = 0.9


_CACHE: dict[str, tuple] = {}


def _lint_corpus(tmp: Path):
    """Lint every corpus file as a knowledge base would hold it: named ``op-<its H1>.md`` (the corpus
    names files by defect), each in a folder of its own.  Linted once per test session."""
    if "result" in _CACHE:
        return _CACHE["result"]
    expected = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
    copies: dict[Path, str] = {}
    for index, name in enumerate(expected):
        text = (CORPUS / name).read_text(encoding="utf-8")
        title = re.search(r"^# (\S+)\s*$", text, re.MULTILINE)
        folder = tmp / f"{index:02d}"
        folder.mkdir()
        copy = folder / f"op-{title.group(1) if title else 'Untitled'}.md"
        copy.write_text(text, encoding="utf-8")
        copies[copy] = name
    started = time.perf_counter()
    report = lint_paths(list(copies), mermaid=False, specs=REPO)
    seconds = time.perf_counter() - started
    by_file: dict[str, list] = {name: [] for name in expected}
    for finding in report.findings:
        by_file[copies[Path(finding.path)]].append(finding)
    _CACHE["result"] = expected, by_file, seconds
    return _CACHE["result"]


def _score(expected, by_file):
    caught: list[tuple[str, dict]] = []
    missed: list[tuple[str, dict]] = []
    true_findings = set()
    for name, defects in expected.items():
        for defect in defects or []:
            hits = [f for f in by_file[name] if abs(f.line - defect["line"]) <= 1 and f.rule in KIND_RULES[defect["kind"]]]
            (caught if hits else missed).append((name, defect))
            # a finding of any rule on a listed line is about that defect, not a false alarm
            true_findings.update(id(f) for f in by_file[name] if abs(f.line - defect["line"]) <= 1)
    false_alarms = [(name, f) for name, findings in by_file.items() for f in findings if id(f) not in true_findings]
    return caught, missed, false_alarms


def test_corpus_precision_and_recall(tmp_path_factory):
    expected, by_file, seconds = _lint_corpus(tmp_path_factory.mktemp("corpus"))
    caught, missed, false_alarms = _score(expected, by_file)
    defects = len(caught) + len(missed)
    findings = sum(len(v) for v in by_file.values())
    recall = len(caught) / defects
    precision = (findings - len(false_alarms)) / findings if findings else 1.0
    kinds = Counter(d["kind"] for _, d in caught)
    all_kinds = Counter(d["kind"] for ds in expected.values() for d in ds or [])
    lines = [
        f"{len(expected)} files ({len(by_file) - sum(1 for n in expected if n.startswith('defects/'))} clean), "
        f"linted in {seconds:.2f} s",
        f"recall    {recall:.3f}  ({len(caught)} of {defects} defects caught)",
        f"precision {precision:.3f}  ({findings - len(false_alarms)} of {findings} findings lie on listed defect lines)",
        "caught by kind: " + ", ".join(f"{k} {kinds[k]}/{all_kinds[k]}" for k in sorted(all_kinds)),
        "false alarms by rule: " + ", ".join(f"{r} {n}" for r, n in sorted(Counter(f.rule for _, f in false_alarms).items())),
    ]
    lines += [f"  missed {name}:{d['line']} ({d['kind']}) {d['says'][:90]}" for name, d in missed]
    lines += [f"  false alarm {name}:{f.line} {f.rule} {f.message[:110]}" for name, f in false_alarms]
    SUMMARY["lint corpus (tests/lint/corpus)"] = lines
    assert recall >= RECALL_FLOOR and precision >= PRECISION_FLOOR, "\n".join(lines)


def test_clean_files_raise_no_arithmetic_symbol_or_config_finding(tmp_path_factory):
    expected, by_file, _ = _lint_corpus(tmp_path_factory.mktemp("corpus"))
    wrong = [
        f"{name}:{f.line} {f.rule} {f.message}"
        for name, findings in by_file.items()
        if name.startswith("clean/")
        for f in findings
        if f.rule in ARITHMETIC | SYMBOLS | CONFIG
    ]
    assert wrong == []
