"""The knowledge base's counting-rule page is the rule registry, written out; it must not drift."""

from pathlib import Path

from opdoc.check.rules import RULES, conventions_markdown

PAGE = Path(__file__).resolve().parents[2] / "site" / "measured" / "conventions.md"


def test_conventions_page_is_current():
    assert PAGE.read_text(encoding="utf-8") == conventions_markdown(), \
        "site/measured/conventions.md is stale: run `opdoc check --conventions`, then `opdoc build`"


def test_every_registered_op_is_on_the_page():
    text = PAGE.read_text(encoding="utf-8")
    for kind, ops, rule in RULES.grouped_table():
        for op in ops:
            assert f"`{op}`" in text
