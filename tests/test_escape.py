"""opdoc.escape: spec prose and diagram text reach the reader as typed, never as live markup."""

from __future__ import annotations

import re
from html import unescape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opdoc.escape import (
    code_span, escape_mermaid_label, escape_mermaid_sequence_step, escape_prose, escape_text, fence_block,
)

markdown = pytest.importorskip("markdown", reason="the site extra (mkdocs, pymdown-extensions) is not installed")
pytest.importorskip("pymdownx")

from site_markdown import Elements, to_html  # noqa: E402


# Elements Markdown itself writes for the syntax used here; anything else came from raw HTML.
MARKDOWN_TAGS = {"p", "code", "pre", "span", "div", "br", "a", "em", "strong", "ul", "ol", "li",
                 "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody",
                 "tr", "th", "td", "details", "summary"}


def assert_no_raw_html(html: str) -> None:
    for tag, attrs in Elements(html).tags:
        assert tag in MARKDOWN_TAGS, f"raw <{tag}> reached the page: {html!r}"
        for name, value in attrs:
            assert not name.startswith("on"), f"event handler {name} reached the page: {html!r}"
            if name in {"href", "src"} and value is not None:
                # as a browser reads it: tabs and newlines dropped, leading controls and spaces trimmed
                url = re.sub(r"[\t\n\r]", "", value).lstrip("".join(map(chr, range(33))))
                # the scheme as a browser finds it (urlsplit would raise on a host such as "\\[")
                scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", url)
                assert scheme is None or scheme.group(1).lower() in {"http", "https", "mailto"}, html


# ------------------------------------------------------------------ prose


def test_script_in_prose_becomes_text():
    prose = "Fast path. <script>alert(1)</script> Done."
    escaped = escape_prose(prose)
    assert escaped == "Fast path. &lt;script&gt;alert(1)&lt;/script&gt; Done."
    html = to_html(escaped)
    assert "<script" not in html
    assert "<script>alert(1)</script>" in "".join(Elements(html).text)


@pytest.mark.parametrize("attack", [
    '<img src=x onerror="alert(1)">',
    "<iframe src=javascript:alert(1)></iframe>",
    "<!-- opdoc-family: sam | 1 | SAM encoder -->",
    "<a href='javascript:alert(1)'>x</a>",
    "<svg/onload=alert(1)>",
    "<https://x.org/onclick=alert(1) >",
])
def test_raw_html_never_survives(attack):
    html = to_html(escape_prose(f"Before {attack} after"))
    assert_no_raw_html(html)
    assert attack in "".join(Elements(html).text)


def test_ampersand_and_entities_show_as_typed():
    assert escape_prose("A & B &amp; C &lt;") == "A &amp; B &amp;amp; C &amp;lt;"
    assert "A & B &amp; C &lt;" in "".join(Elements(to_html(escape_prose("A & B &amp; C &lt;"))).text)


def test_inline_code_is_left_for_markdown_to_show_literally():
    prose = "Call `torch.where(x < 0, x, 0)` or ``a ` <b> `` then <b>"
    assert escape_prose(prose) == "Call `torch.where(x < 0, x, 0)` or ``a ` <b> `` then &lt;b&gt;"
    html = to_html(escape_prose(prose))
    assert "<code>torch.where(x &lt; 0, x, 0)</code>" in html
    assert_no_raw_html(html)


def test_fenced_code_is_left_alone():
    prose = "Example:\n\n```python\nif a < b and c > d: x = a & b\n```\n\nThen <i>."
    escaped = escape_prose(prose)
    assert "if a < b and c > d: x = a & b" in escaped
    assert escaped.endswith("Then &lt;i&gt;.")
    html = to_html(escaped)
    assert "if a < b and c > d: x = a & b" in "".join(Elements(html).text)  # shown once, as typed
    assert_no_raw_html(html)


def test_tilde_fence_and_longer_closing_fence():
    prose = "~~~\n<b>\n~~~~\n<b>"
    assert escape_prose(prose) == "~~~\n<b>\n~~~~\n&lt;b&gt;"


@pytest.mark.parametrize("prose", [
    "```\n<script>alert(1)</script>",                 # never closed
    "text\n```\n<script>alert(1)</script>\n```",     # does not start a block
    "- item `a\n- <script>alert(1)</script> b`",      # a code span across list items is no span
    "`a\n\n<script>alert(1)</script>\n\n`",           # nor across paragraphs
])
def test_doubtful_code_is_escaped(prose):
    escaped = escape_prose(prose)
    assert "<script>" not in escaped
    assert_no_raw_html(to_html(escaped))


def test_br_is_allowed_and_normalised():
    assert escape_prose("a<br>b<br/>c<br />d<br x>") == "a<br/>b<br/>c<br/>d&lt;br x&gt;"


def test_autolink_and_blockquote_still_work():
    escaped = escape_prose("> quoted a > b\nsee <https://arxiv.org/abs/2510.18234?x=1&y=2>")
    assert escaped == "> quoted a &gt; b\nsee <https://arxiv.org/abs/2510.18234?x=1&amp;y=2>"
    html = to_html(escaped)
    assert "<blockquote>" in html
    assert 'href="https://arxiv.org/abs/2510.18234?x=1&amp;y=2"' in html


def test_display_math_keeps_tex_and_uses_tex_comparisons():
    prose = "Cost:\n\n$$\n\\begin{aligned} F &= 2 B S h \\\\ m &< h \\end{aligned}\n$$\n\nand <b>"
    escaped = escape_prose(prose)
    assert "F &= 2 B S h" in escaped and "m &\\lt  h" in escaped
    html = to_html(escaped)
    # what KaTeX will read: the browser decodes the entities of the text node
    tex = unescape(re.search(r'<div class="arithmatex">(.*?)</div>', html, re.S).group(1))
    assert "F &= 2 B S h" in tex and "m &\\lt  h" in tex
    assert_no_raw_html(html)


def test_inline_math_survives_escaping():
    html = to_html(escape_prose(r"when $a_{i} < b & c$ or \(x > y\)"))
    spans = re.findall(r'<span class="arithmatex">(.*?)</span>', html)
    # what KaTeX reads: the text of the span, entities decoded by the browser
    assert [unescape(s) for s in spans] == [r"\(a_{i} < b & c\)", r"\(x > y\)"]


def test_attribute_lists_cannot_be_attached_from_prose():
    for prose in ["< {on}", "*x*{onclick=alert(1)}", "Paragraph {: onclick=alert(1) }",
                  "[a](https://x){href=javascript:alert(1)}"]:
        html = to_html(escape_prose(prose))
        assert_no_raw_html(html)
        assert "{" in "".join(Elements(html).text)


def test_every_brace_is_escaped_since_placeholders_are_filled_first():
    # A `{{` left over (no closing `}}`, so never a placeholder) once let `{{ onclick=alert(1) }`
    # reach a heading as an attribute list.
    assert escape_prose("costs 3 FLOPs {x} {{ y }") == "costs 3 FLOPs &#123;x} &#123;&#123; y }"
    html = to_html(escape_prose("# t {{ onclick=alert(1) }"))
    assert "onclick" not in "".join(f"{n}" for _, attrs in Elements(html).tags for n, _ in attrs)


def test_an_unclosed_fence_in_prose_cannot_swallow_the_page():
    # Unclosed, the prose's fence would be closed by the page's next fence, whose code would then
    # be read as Markdown: its <img> would be live.
    page = escape_prose("intro\n\n```\nnever closed") + "\n\n```\n<img src=x onerror=alert(1)>\n```\n"
    html = to_html(page)
    assert_no_raw_html(html)
    assert "&lt;img" in html


@pytest.mark.parametrize(("prose", "href"), [
    ("[x](javascript:alert(1))", "javascript%3Aalert(1)"),
    ("[x]( JaVaScRiPt:alert(1))", "JaVaScRiPt%3Aalert(1)"),
    ("[x][r]\n\n[r]: javascript:alert(1)", "javascript%3Aalert(1)"),
    ("![i](data:text/html,x)", None),
    ("[ok](https://arxiv.org/abs/1)", "https://arxiv.org/abs/1"),
    ("[page](op-DeepseekV2MoE.md#flops)", "op-DeepseekV2MoE.md#flops"),
])
def test_link_schemes_other_than_web_and_mail_are_defused(prose, href):
    html = to_html(escape_prose(prose))
    assert "javascript:" not in html.lower() and "data:" not in html
    if href is not None:
        assert f'href="{href}"' in html


def test_backslash_escapes_do_not_open_code_or_math():
    assert escape_prose(r"\`<b>\` and \$<i>\$") == r"\`&lt;b&gt;\` and \$&lt;i&gt;\$"


PROSE_ALPHABET = st.sampled_from(
    ["<", ">", "&", "`", "``", "```", "~~~", "$", "$$", "\\", "\\(", "\\)", "\\[", "\\]", "|", "\n",
     "\n\n", "- ", "> ", "    ", "x", "xy", " ", "=", '"', "'", "/", "on", "amp;", "#", "br",
     "<br/>", "https://", "<https://a.b/", "!--", "script", "{", "}", "*", "_", "(", ")", "[", "]",
     "](", "]:", "javascript:", "JavaScript:", "\t", "data:", "{{", "}}", ":", ".", "onclick=alert(1)"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(PROSE_ALPHABET, max_size=40).map("".join))
def test_no_generated_prose_produces_raw_html(prose):
    assert_no_raw_html(to_html(escape_prose(prose)))


@settings(max_examples=200, deadline=None)
@given(st.lists(PROSE_ALPHABET, max_size=30).map("".join))
def test_no_generated_prose_produces_raw_html_inside_a_table_cell(prose):
    cell = escape_prose(prose.replace("\n", " "))
    assert_no_raw_html(to_html(f"| a | b |\n|---|---|\n| {cell} | z |\n"))


# A page puts other values after a field's prose; what an unbalanced backtick or `](` in the prose
# would do to them is what these check. The code span holds raw markup (a code span shows it as typed),
# and the plain value a scheme: either would be live if the prose captured it.
AFTER_PROSE = " " + code_span("<img src=x onerror=alert(1)>") + " and " + escape_text("javascript:alert(1)") + ")"


@settings(max_examples=400, deadline=None)
@given(st.lists(PROSE_ALPHABET, max_size=30).map("".join))
def test_prose_cannot_capture_the_page_text_after_it(prose):
    for layout in ("- {p}{rest}\n- item {rest}\n", "{p}{rest}\n\nnext {rest}\n"):
        assert_no_raw_html(to_html(layout.format(p=escape_prose(prose), rest=AFTER_PROSE)))


def test_a_backtick_in_a_math_paragraph_cannot_pair_with_the_code_after_it():
    """Found by the property test above: `$$`$$` alone is a display-math paragraph, but a template
    may put more on its line, where the backtick would open a code span that ends inside the next one."""
    assert escape_prose("$$`$$") == "$$&#96;$$"
    for layout in ("- {p}{rest}\n- item {rest}\n", "{p}{rest}\n\nnext {rest}\n"):
        assert_no_raw_html(to_html(layout.format(p=escape_prose("$$`$$"), rest=AFTER_PROSE)))


def test_a_backtick_left_open_in_prose_is_shown_not_paired():
    assert escape_prose("costs ``") == "costs &#96;&#96;"
    html = to_html("- " + escape_prose("costs ``") + AFTER_PROSE)
    assert "<code>&lt;img src=x onerror=alert(1)&gt;</code>" in html


def test_a_link_left_open_in_prose_cannot_take_the_next_value_as_destination():
    assert escape_prose("see [x](") == "see [x&#93;("
    assert escape_prose("see [x](https://a.b/(c)) ok") == "see [x](https://a.b/(c)) ok"
    html = to_html(escape_prose("see [x](") + escape_text("javascript:alert(1)") + ")")
    assert "href" not in html


# ---------------------------------------------------------------- plain text, code, fences


@settings(max_examples=300, deadline=None)
@given(st.lists(PROSE_ALPHABET, max_size=30).map("".join))
def test_plain_text_is_shown_as_typed_with_no_markup(text):
    html = to_html(f"| a | b |\n|---|---|\n| x {escape_text(text)} | `c` |\n")
    assert_no_raw_html(html)
    # No link, code or math from the text (`_a_` may still emphasise: harmless, and `_` stays as
    # typed so that names such as language_model are left alone).
    assert [tag for tag, _ in Elements(html).tags if tag in ("a", "code", "span")] == ["code"]
    if "_" not in text:
        shown = " ".join("".join(Elements(html).text).split())
        assert " ".join(("x " + text).split()) in shown


def _trimmed(text: str) -> list[str]:
    """The lines of `text` without trailing spaces, blank lines at either end left out."""
    rows = [row.rstrip() for row in text.split("\n")]
    while rows and not rows[0]:
        rows.pop(0)
    while rows and not rows[-1]:
        rows.pop()
    return rows


@settings(max_examples=300, deadline=None)
@given(st.lists(PROSE_ALPHABET, max_size=20).map("".join))
def test_code_spans_and_fences_hold_any_text_as_typed(text):
    text = text.replace("\t", "    ")  # Markdown expands tabs itself

    def shown(html: str) -> str:
        return unescape(re.search(r"<code>(.*)</code>", html, re.S).group(1))

    line = " ".join(text.splitlines())
    html = to_html("x " + code_span(line) + " y")
    assert_no_raw_html(html)
    if line.strip():
        assert " ".join(shown(html).split()) == " ".join(line.split())
    html = to_html("before\n\n" + fence_block(text + "\n", "") + "\nafter <b>\n")
    assert_no_raw_html(html.replace("after <b>", ""))
    if text.strip():  # line by line, but for blank lines at either end (spaces only too), which Markdown drops
        assert _trimmed(shown(html)) == _trimmed(text)


# ---------------------------------------------------------------- mermaid


def test_mermaid_label_allows_only_br():
    assert escape_mermaid_label('x<br/>(B, S, h) <script>alert("1")</script>') == (
        "x<br/>(B, S, h) #60;script#62;alert(#34;1#34;)#60;/script#62;")
    assert escape_mermaid_label("a<br>b<br />c\nd") == "a<br/>b<br/>c<br/>d"
    assert escape_mermaid_label("a & b; #1 `c`") == "a #38; b#59; #35;1 #96;c#96;"


@given(st.text(alphabet='<>&"#;`br/ x\n', max_size=40))
def test_mermaid_label_output_has_only_br_markup_and_mermaid_escapes(text):
    out = escape_mermaid_label(text)
    rest = re.sub(r"#\d+;", "", out.replace("<br/>", ""))
    assert not set(rest) & set('<>&"#;`\n'), out


@pytest.mark.parametrize(("line", "expected"), [
    ("A->>B: x <y> ; z", "A->>B: x #60;y#62; #59; z"),
    ("    A-->>B: done", "    A-->>B: done"),
    ("A->>+B: hi & bye", "A->>+B: hi #38; bye"),
    ("B--xA: fail #1", "B--xA: fail #35;1"),
    ("A-)B: async", "A-)B: async"),
    ("Note over A,B: a<b", "Note over A,B: a#60;b"),
    ("participant E as embed<br/>(B, S, h) bf16", "participant E as embed<br/>(B, S, h) bf16"),
    ("participant Y as out \"y\"", "participant Y as out #34;y#34;"),
    ("loop every layer <i>", "loop every layer #60;i#62;"),
    ("alt S > 1", "alt S #62; 1"),
    ("end", "end"),
    ("rect rgb(200, 220, 255)", "rect rgb(200, 220, 255)"),
    ("activate A", "activate A"),
    ("weird <script>alert(1)</script>", "weird #60;script#62;alert(1)#60;/script#62;"),
])
def test_sequence_steps_keep_syntax_and_escape_text(line, expected):
    assert escape_mermaid_sequence_step(line) == expected


# ---------------------------------------------------------------- the one door: render.environment


def test_every_value_a_template_prints_is_escaped_unless_a_filter_marked_it():
    from markupsafe import Markup

    from opdoc.render import environment
    from opdoc_testing import ROOT

    env = environment(ROOT / "templates")
    value = "<b>x</b> ``` [a](javascript:b) {: onclick=c}"
    page = env.from_string(
        "text {{ v }}\ncode {{ v | code }}\nsafe {{ m }}\nnumber {{ n }}\n<!-- {{ '-->' | comment }} -->\n"
        "{% fence 'python' %}\n{{ v }}\n{% endfence %}"
        "- {% fence '', '    ' %}\n{{ v }}\n{% endfence %}").render(v=value, m=Markup("<br/>"), n=3)
    lines = page.split("\n")
    assert lines[0] == "text &lt;b&gt;x&lt;/b&gt; &#96;&#96;&#96; &#91;a&#93;(javascript:b) &#123;: onclick=c&#125;"
    assert lines[1] == "code ````<b>x</b> ``` [a](javascript:b) {: onclick=c}````"
    assert lines[2:4] == ["safe <br/>", "number 3"]
    assert lines[4] == "<!-- &#45;-&gt; -->"  # no `-->` can end the comment early
    assert lines[5:8] == ["````python", value, "````"]  # printed as typed, fenced longer than its ```
    assert lines[8:11] == ["-     ````", "    " + value, "    ````"]
    assert_no_raw_html(to_html(page.replace("<!-- &#45;-&gt; -->", "").replace("safe <br/>", "")))
