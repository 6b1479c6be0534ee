"""False alarms found on opdoc's own generated pages, fixed as kinds of text (not page by page)."""

from __future__ import annotations

from lint_helpers import edit, lint_file, writer

ASSUME = "Assume:\n- `B` = batch size (e.g. 1)"


def codes(report, code: str) -> list:
    return [f for f in report.findings if f.rule == code]


def test_words_with_a_slash_or_a_hyphen_are_not_factors(tmp_path):
    """"I/O" and "deepseek-ai/DeepSeek-OCR" sit in prose that also multiplies (launches × 5 µs)."""
    text = edit(ASSUME, ASSUME + "\n\nI/O moves launches × 5 µs; counts read from deepseek-ai/DeepSeek-OCR × 1.")
    assert codes(lint_file(writer(tmp_path)(text)), "OD702") == []


def test_an_undeclared_factor_is_still_found(tmp_path):
    text = edit(ASSUME, ASSUME + "\n\nFLOPs = 2 × B × Q × h")
    assert [f.message.split("`")[1] for f in codes(lint_file(writer(tmp_path)(text)), "OD702")] == ["Q"]


def test_a_where_line_defines_its_symbols(tmp_path):
    """"where X = ..." at the start of a line defines X (it is not the head of a list)."""
    text = edit(ASSUME, ASSUME + "\n\nB* = F_tc × h / BW\n\nwhere F_tc = the tensor-core peak and BW = the bandwidth.")
    assert codes(lint_file(writer(tmp_path)(text)), "OD702") == []


def test_a_subclass_may_inherit_its_forward(tmp_path):
    text = edit("class TinyNorm(nn.Module):", "class TinyNorm(BaseNorm):")
    text = text.replace("    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        rms", "    def _norm(self, x):\n        rms", 1)
    assert codes(lint_file(writer(tmp_path)(text)), "OD206") == []
    plain = text.replace("class TinyNorm(BaseNorm):", "class TinyNorm(nn.Module):")
    assert len(codes(lint_file(writer(tmp_path)(plain)), "OD206")) == 1
