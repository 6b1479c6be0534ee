"""One broken variant per rule, each breaking exactly that rule, and the valid
fixture breaking none.  Variants are the valid fixture with one passage
edited; every case checks the rule id and the line reported."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from lint_helpers import SOURCE_DIR, SYMBOLS, VALID_NAME, VALID_TEXT, edit, lint_file, line_of

from opdoc.lint import RULES, lint_paths
from opdoc.lint.registry import rule

FLOPS_HEAD = "### FLOPs (per forward pass)\n"
FLOPS_BODY = VALID_TEXT[VALID_TEXT.index(FLOPS_HEAD) + len(FLOPS_HEAD) : VALID_TEXT.index("### Memory Usage")]

ASSUME = """
Assume:
- `B` = batch size (e.g. 1)
- `S` = tokens in the forward pass (e.g. 4096)
- `h` = hidden size (e.g. 1024)
"""
FORMULA = """
```
FLOPs_total = 4 × B × S × h + B × S
```
"""
EXAMPLE = """
Example (B=1, S=4096, h=1024): about 16.8 MFLOPs.
"""
DOMINANT = """
The per-element terms dominate.
"""


def flops_variant(*parts: str) -> str:
    return edit(FLOPS_BODY, "".join(parts) + "\n")


@dataclass(frozen=True)
class Case:
    rule: str
    text: str
    needle: str  # text on the line the finding must point at
    name: str = VALID_NAME
    source: bool = False


CASES = [
    Case("OD101", VALID_TEXT, "# TinyNorm", name="TinyNorm.md"),
    Case("OD102", edit("# TinyNorm\n", "# `TinyNorm` module\n"), "# `TinyNorm` module"),
    Case(
        "OD201",
        edit(VALID_TEXT[VALID_TEXT.index("## Related Modules") : VALID_TEXT.index("## Usage Pattern")], ""),
        "## Usage Pattern",
    ),
    Case(
        "OD202",
        edit(
            VALID_TEXT[VALID_TEXT.index("## Related Modules") : VALID_TEXT.index("## Key Performance")],
            VALID_TEXT[VALID_TEXT.index("## Usage Pattern") : VALID_TEXT.index("## Key Performance")]
            + VALID_TEXT[VALID_TEXT.index("## Related Modules") : VALID_TEXT.index("## Usage Pattern")],
        ),
        "## Related Modules",
    ),
    Case("OD203", edit("### Memory Usage\n", ""), "## FLOP Count and Memory Usage Impact"),
    Case("OD204", edit("## References\n", "## Optimization Opportunities\n- fuse it into the next matmul\n\n## References\n"), "## Optimization Opportunities"),
    Case("OD205", edit("## Key Pseudo Code\n", "## 5. Key Pseudo Code\n"), "## 5. Key Pseudo Code"),
    Case(
        "OD206",
        edit(
            VALID_TEXT[VALID_TEXT.index("## Usage Pattern\n") : VALID_TEXT.index("## Key Performance")],
            "## Usage Pattern\nBuild it with the hidden size and call it on the residual stream.\n\n",
        ),
        "## Usage Pattern",
    ),
    Case("OD301", edit("**Location**: `tiny/norm.py:7-15`", "**Location**: `tiny/norm.py`"), "**Location**"),
    Case("OD302", edit("`tiny/norm.py:7-15`", "`tiny/norm.py:9-17`"), "**Location**", source=True),
    Case("OD303", edit("`tiny/norm.py:7-15`", "`tiny/gone.py:7-15`"), "**Location**", source=True),
    Case(
        "OD401",
        edit("**Signature**:\n```python\ndef __init__", "**Signature**:\n```text\n__init__"),
        "## Constructor Information",
    ),
    Case(
        "OD402",
        edit("- `hidden_size`: width of the vectors being normalised (typical values: 1024, 1280)\n", ""),
        "def __init__(self, hidden_size: int, eps: float = 1e-6)\n",
    ),
    Case("OD403", edit("(default: 1e-6)", "(keeps the square root finite)"), "- `eps`:"),
    Case("OD501", edit("```mermaid\n", "```text\n"), "## Module Internals"),
    Case("OD502", edit("```mermaid\nsequenceDiagram\n", "```mermaid\nflowchart LR\n"), "flowchart LR"),
    Case("OD601", edit("norm = TinyNorm(hidden_size=1024)\n", "norm = TinyNorm(hidden_size=1024\n"), "norm = TinyNorm("),
    Case("OD602", edit("y = norm(x)\n", "if x is not None:\n  y = norm(x)\n"), "  y = norm(x)"),
    Case("OD603", VALID_TEXT + "\n```python\nprint('never closed')\n", "```python\nprint('never closed')"),
    Case(
        "OD701",
        edit("participant Output as output<br/>(B, S, h)", "participant Output as output").replace(
            "output of shape (B, S, h)", "the normalised tensor"
        ),
        "## Key Pseudo Code",
    ),
    Case("OD702", edit("# (B, S, 1)", "# (B, S, n)"), "# (B, S, n)"),
    Case("OD703", edit("x: input of shape (B, S, h)", "x: input of shape (batch, S, h)"), "(batch, S, h)"),
    Case(
        "OD801",
        flops_variant(ASSUME, "\n**Total FLOPs**: four per element; the per-element terms dominate,", EXAMPLE),
        FLOPS_HEAD.strip(),
    ),
    Case("OD802", flops_variant(FORMULA, EXAMPLE, DOMINANT), FLOPS_HEAD.strip()),
    Case("OD803", flops_variant(ASSUME, FORMULA, DOMINANT), FLOPS_HEAD.strip()),
    Case(
        "OD804",
        flops_variant(ASSUME, "```\nFLOPs = 4 × B × S × h\n```\n", EXAMPLE, DOMINANT),
        FLOPS_HEAD.strip(),
    ),
    Case("OD805", flops_variant(ASSUME, FORMULA, EXAMPLE), FLOPS_HEAD.strip()),
    Case(
        "OD806",
        edit("#### Activations (per forward pass):\n", "#### Working set:\n").replace(
            "Peak activation memory", "Peak extra memory"
        ),
        "### Memory Usage",
    ),
    Case("OD807", edit("Example (B=1, S=4096, h=1024, bf16):", "Example (B=1, S=4096, h=1024):"), "output: 1 × 4096"),
    Case("OD901", edit("output: 1 × 4096 × 1024 × 2 = 8 MiB", "output: 1 × 4096 × 1024 × 2 = 9 MiB"), "= 9 MiB"),
    Case(
        "OD902",
        edit("- **Alternative implementations**", "- **Used with**: see `op-TinyMissing.md`\n- **Alternative implementations**"),
        "op-TinyMissing.md",
    ),
]


def test_valid_fixture_passes_every_rule(tmp_path):
    path = tmp_path / VALID_NAME
    path.write_text(VALID_TEXT, encoding="utf-8")
    report = lint_file(path, source=SOURCE_DIR)
    assert report.findings == []
    assert report.exit_code == 0


def test_committed_fixture_passes_where_it_lies():
    report = lint_paths([SOURCE_DIR.parent / VALID_NAME], mermaid=False, symbols=SYMBOLS, source=SOURCE_DIR)
    assert report.findings == []


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_variant_breaks_exactly_its_rule(case, write_doc):
    path = write_doc(case.text, case.name)
    report = lint_file(path, source=SOURCE_DIR if case.source else None)
    assert {f.rule for f in report.findings} == {case.rule}, [str(f) for f in report.findings]
    expected_line = line_of(case.text, case.needle)
    assert [f.line for f in report.findings][0] == expected_line
    severity = RULES[case.rule].severity
    assert all(f.severity == severity for f in report.findings)
    assert report.exit_code == (1 if severity == "error" else 0)


def test_every_rule_is_exercised():
    covered = {c.rule for c in CASES}
    # File-level rules are covered in test_lint_robustness.py, the browser rules
    # in test_lint_mermaid.py, stated totals in test_lint_calc.py, symbol meanings in
    # test_lint_symbols_sections.py and the spec comparison in test_lint_spec_compare.py.
    covered |= {"OD001", "OD002", "OD003", "OD004", "OD005", "OD006", "OD503", "OD504"}
    covered |= {"OD704", "OD705", "OD903", "OD951", "OD952"}
    assert covered == set(RULES)


def test_messages_carry_the_useful_detail(write_doc):
    case = {c.rule: c for c in CASES}
    report = lint_file(write_doc(case["OD901"].text))
    assert "evaluates to 8 MiB, not 9 MiB" in report.findings[0].message

    report = lint_file(write_doc(case["OD302"].text), source=SOURCE_DIR)
    assert "starts at 9" in report.findings[0].message and "line 7" in report.findings[0].message
    assert "7-15" in report.findings[0].message

    report = lint_file(write_doc(case["OD402"].text))
    assert "`hidden_size`" in report.findings[0].message

    report = lint_file(write_doc(case["OD703"].text))
    assert "write `B`" in report.findings[0].message


def test_cross_reference_passes_when_target_exists(write_doc):
    text = {c.rule: c for c in CASES}["OD902"].text
    write_doc("# TinyMissing\n", "op-TinyMissing.md")
    report = lint_file(write_doc(text))
    assert report.findings == []


def test_markdown_links_to_missing_docs_are_reported(write_doc):
    text = edit("- **Alternative implementations**", "- [helper](op-TinyGone.md#flops) and [site](https://example.org/op-X.md)\n- **Alternative implementations**")
    report = lint_file(write_doc(text))
    assert [(f.rule, f.line) for f in report.findings] == [("OD902", line_of(text, "op-TinyGone.md"))]


def test_location_class_missing_from_source(write_doc):
    text = edit("# TinyNorm\n", "# TinyNorm\n").replace("tiny/norm.py:7-15", "tiny/norm.py:7-15")
    path = write_doc(text.replace("# TinyNorm\n", "# TinyNormal\n", 1), "op-TinyNormal.md")
    report = lint_file(path, source=SOURCE_DIR)
    assert ("OD302", line_of(text, "**Location**")) in {(f.rule, f.line) for f in report.findings}
    assert any("defines no class `TinyNormal`" in f.message for f in report.findings)


def test_decorated_class_may_start_at_its_decorator(tmp_path, write_doc):
    source = tmp_path / "src" / "tiny"
    source.mkdir(parents=True)
    original = (SOURCE_DIR / "tiny" / "norm.py").read_text()
    (source / "norm.py").write_text(original.replace("class TinyNorm", "@register\nclass TinyNorm"))
    assert not lint_file(write_doc(VALID_TEXT), source=tmp_path / "src").findings  # decorator line 7
    text = edit("tiny/norm.py:7-15", "tiny/norm.py:8-16")  # the class line itself
    assert not lint_file(write_doc(text), source=tmp_path / "src").findings


def test_default_in_different_spelling_is_accepted(write_doc):
    text = edit("(default: 1e-6)", "(defaults to 0.000001)")
    assert not lint_file(write_doc(text)).findings


def test_registry_rejects_duplicate_and_malformed_ids():
    with pytest.raises(ValueError, match="duplicate rule id OD101"):

        @rule("OD101", "error", "again")
        def again(doc, context):  # pragma: no cover
            return []

    with pytest.raises(ValueError):
        rule("X1", "error", "bad id")
    with pytest.raises(ValueError):
        rule("OD998", "fatal", "bad severity")
    with pytest.raises(ValueError):
        rule("OD997", "error", "two\nlines")
    assert "OD998" not in RULES and "OD997" not in RULES


def test_every_rule_has_a_one_line_description():
    for registered in RULES.values():
        assert registered.description and "\n" not in registered.description
        assert registered.severity in ("error", "warning")


def test_declared_symbols_come_from_the_knowledge_base(tmp_path, monkeypatch, write_doc):
    from opdoc.lint.context import BUILTIN_SYMBOLS, load_declared_symbols

    (tmp_path / "specs" / "one").mkdir(parents=True)
    (tmp_path / "specs" / "one" / "model.yaml").write_text("symbols:\n  B: batch\n  S: tokens\n")
    (tmp_path / "specs" / "two").mkdir()
    (tmp_path / "specs" / "two" / "model.yaml").write_text("symbols: [d_ff, G]\n")
    (tmp_path / "specs" / "three").mkdir()
    (tmp_path / "specs" / "three" / "model.yaml").write_text("model: no symbols here\n")
    symbols, origin = load_declared_symbols(tmp_path)
    assert symbols == {"B", "S", "d_ff", "G"}
    assert "one" in origin and "two" in origin
    assert load_declared_symbols(tmp_path / "elsewhere") == (BUILTIN_SYMBOLS, "the template's built-in list")

    # lint_paths(symbols=None) reads specs/*/model.yaml under the working directory; those symbols
    # add to the template's own (h is one), so only a name neither declares is reported
    monkeypatch.chdir(tmp_path)
    assert lint_paths([write_doc(VALID_TEXT)], mermaid=False).findings == []
    text = edit("# (B, S, 1)", "# (B, S, G) then (B, S, n)")
    report = lint_paths([write_doc(text)], mermaid=False)
    assert {f.rule for f in report.findings} == {"OD702"}
    assert "`n` in shape" in report.findings[0].message and "specs/one/model.yaml" in report.findings[0].message


def test_two_symbols_for_one_dimension_is_a_warning(write_doc):
    text = edit("# (B, S, 1)", "# (B, S, 1) after reducing (B, S, d)")
    report = lint_file(write_doc(text), symbols={"B", "S", "h", "d"})
    assert [(f.rule, f.severity, f.line) for f in report.findings] == [("OD703", "warning", line_of(text, "(B, S, d)"))]
    assert "both `h`" in report.findings[0].message


def test_location_past_the_end_of_the_source(write_doc):
    text = edit("tiny/norm.py:7-15", "tiny/norm.py:7-99")
    report = lint_file(write_doc(text), source=SOURCE_DIR)
    assert [(f.rule, f.line) for f in report.findings] == [("OD302", line_of(text, "**Location**"))]
    assert "past the end" in report.findings[0].message


def test_dtype_named_elsewhere_in_the_same_subsection_covers_it(write_doc):
    text = edit("Example (B=1, S=4096, h=1024, bf16):", "Example (B=1, S=4096, h=1024):").replace(
        "Peak activation memory: ~8 MiB beyond the input\n```\n",
        "Peak activation memory: ~8 MiB beyond the input\n```\nAll activations are bf16.\n",
    )
    assert not lint_file(write_doc(text)).findings


def test_multiplying_a_modules_bytes_is_not_a_conversion(write_doc):
    text = edit("- Total parameters: h (1024 for the example below)", "- Cache: 2 × TinyCache = 4 MB")
    assert not lint_file(write_doc(text)).findings


def test_key_value_pairs_are_not_shapes(write_doc):
    text = edit("    # 1. Mean of squares", "    # cache entries are (k, v) pairs\n    # 1. Mean of squares")
    assert not lint_file(write_doc(text)).findings


def _as_helper_function(text: str) -> str:
    """The valid page turned into a helper function's page: its own signature stands for __init__."""
    return (text.replace("# TinyNorm\n", "# tiny_norm\n", 1)
            .replace("def __init__(self, hidden_size: int, eps: float = 1e-6)", "def tiny_norm(hidden_size: int, eps: float = 1e-6)"))


def test_helper_function_page_shows_its_own_signature(write_doc):
    text = _as_helper_function(VALID_TEXT)
    assert "def tiny_norm(hidden_size" in text
    report = lint_file(write_doc(text, "op-tiny_norm.md"))
    assert not [f for f in report.findings if f.rule.startswith("OD40")]


def test_helper_function_page_parameters_still_checked(write_doc):
    text = _as_helper_function(edit("- `hidden_size`: width of the vectors being normalised (typical values: 1024, 1280)\n", ""))
    report = lint_file(write_doc(text, "op-tiny_norm.md"))
    # the finding points at the parameter in the Signature block, two lines under its label
    assert [(f.rule, f.line) for f in report.findings if f.rule.startswith("OD40")] == [
        ("OD402", line_of(text, "**Signature**") + 2)]
