"""Dimension symbols (OD702, OD704) and near-miss section titles (OD201/OD204/OD205)."""

from __future__ import annotations

from lint_helpers import VALID_TEXT, edit, lint_file, line_of

from opdoc.lint.markdown import parse_markdown
from opdoc.lint.symbols import concepts, document_definitions

KB = {"B": "batch size", "S": "tokens in the forward pass", "h": "hidden size, the width of the residual stream",
      "H": "attention heads", "E": "routed experts per MoE layer"}


def rules(report) -> list[tuple[str, int]]:
    return [(f.rule, f.line) for f in report.findings]


def test_template_symbols_add_to_the_knowledge_base(write_doc):
    # (B, S, d) is the template's own notation and (B, C, H, W) an image's: both are declared
    text = edit("# (B, S, 1)", "# (B, S, 1) from (B, S, d); an image would be (B, C, H, W)")
    report = lint_file(write_doc(text), symbols=KB)
    assert report.rule_ids("error") == set()  # (a warning says h and d name one dimension twice)


def test_undeclared_symbol_is_still_reported(write_doc):
    text = edit("# (B, S, 1)", "# (B, S, n)")
    assert rules(lint_file(write_doc(text), symbols=KB)) == [("OD702", line_of(text, "# (B, S, n)"))]


def test_a_documents_own_definitions_are_honoured(write_doc):
    text = edit("# (B, S, 1)", "# (B, S, n) where n = number of groups")
    assert lint_file(write_doc(text), symbols=KB).findings == []
    listed = edit("- `h` = hidden size (e.g. 1024)\n", "- `h` = hidden size (e.g. 1024)\n- `G` = groups (e.g. 8)\n").replace(
        "# (B, S, 1)", "# (B, S, G)"
    )
    assert lint_file(write_doc(listed), symbols=KB).findings == []


def test_a_declared_symbol_defined_with_another_meaning(write_doc):
    text = edit("- `h` = hidden size (e.g. 1024)\n", "- `h` = number of attention heads (e.g. 16)\n")
    report = lint_file(write_doc(text), symbols=KB)
    assert rules(report) == [("OD704", line_of(text, "- `h` = number of attention heads"))]
    message = report.findings[0].message
    assert "hidden size, the width of the residual stream" in message and "the symbol for that is `H`" in message


def test_meanings_that_agree_are_not_reported(write_doc):
    # H means heads to the knowledge base but height to an image shape in the template: both are fine
    text = edit("- `h` = hidden size (e.g. 1024)\n", "- `h` = model width (e.g. 1024)\n- `H` = image height in pixels\n")
    assert lint_file(write_doc(text), symbols=KB).findings == []


def test_definitions_are_read_from_lists_and_where_clauses():
    md = parse_markdown(
        "Assume:\n- `B` = batch size (e.g., 1)\n- Typical decode: B=1, S=1, cached_context=K=8192\n\n"
        "Input shape: `(B, S, h)` where B=batch, S=sequence length, h=hidden_size\n"
    )
    found = {(d.name, d.meaning) for d in document_definitions(md)}
    assert {("B", "batch size (e.g., 1)"), ("K", "8192"), ("S", "sequence length"), ("h", "hidden_size")} <= found


def test_concepts_of_meanings():
    assert concepts("width of one attention head") == {"head_dim"}
    assert concepts("number of attention heads") == {"heads"}
    assert concepts("routed experts chosen per token (top-k)") == {"topk"}
    assert concepts("intermediate width of one routed expert") == {"expert_width"}
    assert concepts("intermediate width of a dense MLP") == {"intermediate"}
    assert concepts("shared experts, applied to every token as one wider MLP") == {"shared"}
    assert concepts("896 (one expert)") == set()  # a value with a remark, not a meaning
    assert concepts("number of attention heads; image height") == {"heads", "height"}
    assert "hidden" in concepts("hidden size, the width of the residual stream")  # and its kin: channels
    assert concepts("whatever this is") == set()


def test_near_miss_heading_is_one_misworded_finding(write_doc):
    text = edit("## Usage Pattern\n", "## Usage Examples\n")
    report = lint_file(write_doc(text))
    assert rules(report) == [("OD205", line_of(text, "## Usage Examples"))]
    assert "`## Usage Pattern`" in report.findings[0].message


def test_near_miss_headings_of_every_kind(write_doc):
    for wrong, right in (("## What It Does\n", "## What It Is\n"), ("## Constructor Info\n", "## Constructor Information\n"),
                         ("## Pseudocode\n", "## Key Pseudo Code\n"),
                         ("## FLOP Count & Memory Usage\n", "## FLOP Count and Memory Usage Impact\n")):
        text = edit(right, wrong)
        assert rules(lint_file(write_doc(text))) == [("OD205", line_of(text, wrong.strip()))], wrong


def test_an_unrelated_heading_stays_extra(write_doc):
    text = edit("## References\n", "## Training Notes\nnone\n\n## References\n")
    assert rules(lint_file(write_doc(text))) == [("OD204", line_of(text, "## Training Notes"))]


def test_a_heading_cannot_take_a_section_that_is_present(write_doc):
    # "Usage Examples" next to a real "Usage Pattern" is an extra section, not a second Usage Pattern
    text = edit("## Key Performance Characteristics\n", "## Usage Examples\nmore\n\n## Key Performance Characteristics\n")
    assert rules(lint_file(write_doc(text))) == [("OD204", line_of(text, "## Usage Examples"))]


def test_the_valid_fixture_is_still_clean():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "op-TinyNorm.md"
        path.write_text(VALID_TEXT)
        assert lint_file(path, symbols=KB).findings == []


def test_undeclared_symbol_in_a_formula(write_doc):
    text = edit("FLOPs_total = 4 × B × S × h + B × S\n", "FLOPs_total = 4 × B × T × h + B × T\n")
    report = lint_file(write_doc(text), symbols=KB)
    assert rules(report) == [("OD702", line_of(text, "FLOPs_total = 4 × B × T × h"))]
    assert "`T` in formula" in report.findings[0].message


def test_formula_against_the_value_beside_it(write_doc):
    # with k = 6 (experts per token) the row gives 4 × 1 × 10 × 8192 × 6 × 128 = 251,658,240, not 343.6 G;
    # with the keys it means (8192) it would be 343,597,383,680
    table = (
        "\n| term | formula | prefill (S=8192) |\n|---|---|---|\n"
        "| projections | 8 × B × S × h × h | 107.4 G |\n"
        "| attention products | 4 × B × H × S × k × d_h | 343.6 G |\n"
    )
    assume = "- `h` = hidden size (e.g. 1024)\n"
    defs = assume + "- `H` = 10 heads, `d_h` = 128, `k` = 6 experts per token, `h` = 1280\n"
    text = edit(assume, defs).replace("**Operation Breakdown**:\n", "**Operation Breakdown**:\n" + table)
    report = lint_file(write_doc(text), symbols=KB)
    assert [(f.rule, f.line) for f in report.findings if f.rule == "OD705"] == [("OD705", line_of(text, "| attention products"))]
    right = text.replace("| 4 × B × H × S × k × d_h |", "| 4 × B × H × S × S × d_h |")
    assert not [f for f in lint_file(write_doc(right), symbols=KB).findings if f.rule == "OD705"]


def test_definition_without_forward(write_doc):
    text = edit("    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        rms = x.pow(2).mean(-1, keepdim=True).add(self.eps).rsqrt()\n        return x * rms * self.weight\n", "")
    report = lint_file(write_doc(text))
    assert rules(report) == [("OD206", line_of(text, "## Definition"))]
    assert "without its `forward`" in report.findings[0].message


def test_a_formula_in_a_table_counts_as_the_formula(write_doc):
    from test_lint_rules import FLOPS_BODY

    table = "| op | formula | value |\n|---|---|---|\n| all | 4 × B × S × h | 16.8 MFLOPs |\n"
    text = edit(FLOPS_BODY, FLOPS_BODY.replace("FLOPs_total = 4 × B × S × h + B × S\n            ≈ 4 × B × S × h", "").replace(
        "**Operation Breakdown**:\n", "**Operation Breakdown**:\n" + table))
    assert "OD801" not in lint_file(write_doc(text)).rule_ids()
