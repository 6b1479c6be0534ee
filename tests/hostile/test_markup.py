"""Item 1 of issue 9: markup typed into any spec field reaches the built pages as text, never as HTML.

A spec with markup in every field a reader sees is built; each page is converted with the site's own
Markdown extensions and every element and attribute of the result is inspected.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hostile_specs import INLINE, markup_everywhere
from opdoc.cli import main
from opdoc_testing import ROOT

markdown = pytest.importorskip("markdown", reason="the site extra (mkdocs, pymdown-extensions) is not installed")
pytest.importorskip("pymdownx")

# Elements Markdown writes for the syntax opdoc's templates use; anything else came from raw HTML.
MARKDOWN_TAGS = {"p", "code", "pre", "span", "div", "br", "a", "em", "strong", "ul", "ol", "li", "blockquote",
                 "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td", "img"}
PLOT = re.compile(r"plots/(?:op-\w+|roofline-\w+|overview)\.svg")


def to_html(text: str) -> str:
    """Markdown -> HTML with the extensions mkdocs.yml enables."""
    from pymdownx.superfences import fence_code_format

    md = markdown.Markdown(
        extensions=["admonition", "tables", "attr_list", "md_in_html", "toc", "pymdownx.details",
                    "pymdownx.superfences", "pymdownx.arithmatex"],
        extension_configs={
            "pymdownx.superfences": {"custom_fences": [
                {"name": "mermaid", "class": "mermaid", "format": fence_code_format}]},
            "pymdownx.arithmatex": {"generic": True},
        },
    )
    return md.convert(text)


class Elements(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def live_markup(html: str) -> list[str]:
    """Every element, attribute or link in `html` that Markdown would not write for opdoc's templates."""
    found = []
    for tag, attrs in Elements(html).tags:
        if tag not in MARKDOWN_TAGS:
            found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                found.append(f"<{tag} {name}>")
            if name in ("href", "src") and value is not None:
                url = re.sub(r"[\x00-\x20]", "", value)
                scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", url)
                if scheme and scheme.group(1).lower() not in ("http", "https", "mailto"):
                    found.append(f"<{tag} {name}={value!r}>")
                if tag == "img" and not PLOT.fullmatch(value):
                    found.append(f"<img src={value!r}>")
    return found


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> Path:
    root = markup_everywhere(tmp_path_factory.mktemp("hostile"))
    (root / "site" / "measured").mkdir(parents=True)
    report = {"device": INLINE, "torch": INLINE, "results": [
        {"op": "DeepseekV2RMSNorm", "variant": INLINE, "kernel": INLINE, "example": "prefill", "point": INLINE,
         "peak_bytes": 1024, "formula_peak_bytes": 768, "median_seconds": 1e-5, "flops_per_second": 3e7}]}
    (root / "site" / "measured" / "cuda-report.json").write_text(json.dumps(report), encoding="utf-8")
    assert main(["build", "--root", str(root), "--site", str(root / "site")]) == 0
    return root / "site"


def test_markup_in_every_field_reaches_the_pages_as_text(hostile_site, capsys):
    pages = sorted(hostile_site.glob("*.md"))
    assert len(pages) == 4  # the index, the two op pages and the analytic report
    for page in pages:
        html = to_html(page.read_text(encoding="utf-8"))
        assert live_markup(html) == [], f"{page.name}: live markup {live_markup(html)}"
        # The payload is shown, not dropped: its characters are in the page's text.
        assert 'onerror="window.__pwned=1"' in "".join(Elements(html).text), page.name
    capsys.readouterr()


def test_each_code_block_holds_what_was_typed(hostile_site):
    page = (hostile_site / "op-DeepseekV2RMSNorm.md").read_text(encoding="utf-8")
    html = to_html(page)
    # The pseudo code holds lines of three and four backticks: its fence is five long.
    assert "\n`````python\ndef forward" in page
    blocks = re.findall(r"<code>(.*?)</code>", html, flags=re.S)
    assert any("```\n&lt;img src=x onerror=" in block for block in blocks)


def test_templates_pass_every_value_through_the_one_door():
    """What keeps item 1 fixed as templates change: no literal fence, no hand-made code span around a
    value, no switch that turns escaping off (each would print a value unescaped)."""
    for template in sorted((ROOT / "templates").glob("*.j2")):
        text = template.read_text(encoding="utf-8")
        assert "```" not in text, f"{template.name}: write code blocks with {{% fence %}}"
        spans = re.findall(r"`[^`\n]*`", text)
        assert not [s for s in spans if "{{" in s], f"{template.name}: write inline code with the code filter"
        assert not re.search(r"autoescape|\|\s*safe\b|Markup\(", text), f"{template.name}: escaping turned off"
