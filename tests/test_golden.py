"""Golden files: rendered op-docs of the tiny fixture, and the exact errors of a corpus of broken specs.

Refresh after an intended change with
    .venv/bin/python -m pytest tests/test_golden.py --update-golden
and review the diff like code.
"""

import shutil
from pathlib import Path

import pytest

from opdoc_testing import GOLDEN, TINY, assert_golden
from opdoc.cli import main

SPECS = Path("specs/tiny")


def build(root: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["build", "--root", str(root), "--site", str(root / "site"), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_rendered_pages_match_golden(tmp_path, capsys, update_golden):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    code, _ = build(tmp_path, capsys)
    assert code == 0
    for page in sorted((tmp_path / "site").glob("*.md")):
        assert_golden(GOLDEN / "render" / page.name, page.read_text(encoding="utf-8"), update_golden)


# Each case: (file to edit, text to replace, replacement). The golden file holds the exact messages.
BROKEN = {
    "yaml_syntax": ("DeepseekV2RMSNorm.yaml", "family: language_model", "family: [language_model"),
    "unknown_key": ("DeepseekV2RMSNorm.yaml", "summary:", "sumary:"),
    "wrong_type": ("DeepseekV2RMSNorm.yaml", "examples: [prefill, batch]", "examples: prefill"),
    "undeclared_symbol": ("DeepseekV2RMSNorm.yaml", "flops: B*S*h,", "flops: B*S*hh,"),
    "malformed_formula": ("DeepseekV2RMSNorm.yaml", "flops: 2*B*S*h,", "flops: 2*B*S*h.real,"),
    "code_in_formula": ("DeepseekV2RMSNorm.yaml", "flops: 2*B*S*h,", "flops: \"__import__('os').getcwd()\","),
    "missing_child": ("DeepseekV2MLP.yaml", "op: DeepseekV2RMSNorm, count: 2", "op: DeepseekV2RMSNrom, count: 2"),
    "cycle": ("DeepseekV2RMSNorm.yaml", "memory:",
              "children:\n  - {name: loop, op: DeepseekV2MLP, why: a cycle}\nmemory:"),
    "parent_total_disagrees": ("DeepseekV2MLP.yaml", "cuda_flops: 6*B*S*h", "cuda_flops: 3*B*S*h"),
    "magnitude_in_prose": ("DeepseekV2RMSNorm.yaml", "costs {{cuda_flops}} at prefill", "costs 384 FLOPs at prefill"),
    "unknown_placeholder": ("DeepseekV2RMSNorm.yaml", "{{cuda_flops@batch}}", "{{cuda_flop@batch}}"),
    "unknown_tensor": ("DeepseekV2RMSNorm.yaml", "reads: [sq, weight]", "reads: [sq, wieght]"),
    "comma_in_flow_mapping": ("DeepseekV2RMSNorm.yaml", "explain: One multiply per element.}",
                              "explain: One multiply, per element.}"),
    "undocumented_parameter": ("DeepseekV2RMSNorm.yaml", "    eps: {description: added before the square root}\n", ""),
    # A part that is negative at an example, though the total it belongs to stays positive.
    "negative_flops": ("DeepseekV2RMSNorm.yaml", "flops: B*S*h, reads: [x], writes: [sq]",
                       "flops: -B*S*h, reads: [x], writes: [sq]"),
    # Several problems in one run are all reported, each at its place.
    "two_bad_binds": [("model.yaml", "bind: {B: 1, S: 16}", "bind: {B: 1, S: 0}"),
                      ("model.yaml", "bind: {B: 2, S: 4}", "bind: {B: 2.5, S: 4}")],
    "two_undocumented_parameters": [
        ("DeepseekV2RMSNorm.yaml", "    eps: {description: added before the square root}\n", ""),
        ("DeepseekV2MLP.yaml", "    hidden_size: {description: width}\n", "")],
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_spec_errors_match_golden(case, tmp_path, capsys, update_golden):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    code, _ = build(tmp_path, capsys)  # a good build first: the broken one must leave it untouched
    assert code == 0
    before = {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    edits = BROKEN[case] if isinstance(BROKEN[case], list) else [BROKEN[case]]
    for name, old, new in edits:
        spec = tmp_path / SPECS / name
        text = spec.read_text(encoding="utf-8")
        assert old in text, f"case {case}: '{old}' not found in {name}"
        spec.write_text(text.replace(old, new, 1), encoding="utf-8")
    code, output = build(tmp_path, capsys)
    assert code == 1
    assert "Traceback" not in output
    assert_golden(GOLDEN / "errors" / f"{case}.txt", output, update_golden)
    after = {p: p.read_bytes() for p in (tmp_path / "site").rglob("*") if p.is_file()}
    assert after == before, "a failed build must leave the knowledge base exactly as it was"
