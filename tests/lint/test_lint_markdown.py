"""The shared markdown reader."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from opdoc.lint.markdown import parse_markdown

SAMPLE = """# Title

Intro with `inline code` and a [link](op-Other.md#part) plus <https://example.org>.

## Section One
```python
# not a heading
def f():
    return 1
```

~~~
## also not a heading
~~~

<!--
## hidden heading
-->

    ```mermaid
    sequenceDiagram
        A->>B: hi
    ```

Setext Title
------------

### Sub
[ref]: op-Ref.md
````markdown
```python
x = 1
```
````
## Last
"""


def test_headings_ignore_fences_and_comments():
    doc = parse_markdown(SAMPLE)
    assert [(h.level, h.title, h.line) for h in doc.headings] == [
        (1, "Title", 1),
        (2, "Section One", 5),
        (2, "Setext Title", 25),
        (3, "Sub", 28),
        (2, "Last", 35),
    ]


def test_code_blocks_have_language_text_and_lines():
    doc = parse_markdown(SAMPLE)
    blocks = [(b.lang, b.line, b.first_text_line, b.end_line) for b in doc.code_blocks]
    assert blocks == [("python", 6, 7, 10), ("", 12, 13, 14), ("mermaid", 20, 21, 23), ("markdown", 30, 31, 34)]
    assert doc.code_blocks[0].text == "# not a heading\ndef f():\n    return 1"
    # an indented fence loses its own indentation, nothing more
    assert doc.code_blocks[2].text == "sequenceDiagram\n    A->>B: hi"
    # a longer fence holds a shorter one
    assert doc.code_blocks[3].text == "```python\nx = 1\n```"


def test_links_and_inline_code():
    doc = parse_markdown(SAMPLE)
    assert [(l.target, l.line, l.kind) for l in doc.links] == [
        ("op-Other.md#part", 3, "inline"),
        ("https://example.org", 3, "autolink"),
        ("op-Ref.md", 29, "reference"),
    ]
    assert [(c.text, c.line) for c in doc.inline_code] == [("inline code", 3)]


def test_sections_and_prose():
    doc = parse_markdown(SAMPLE)
    sections = doc.sections(2)
    assert [(s.title, s.start, s.end) for s in sections] == [
        ("Section One", 5, 24),
        ("Setext Title", 25, 34),
        ("Last", 35, 35),
    ]
    assert [s.title for s in doc.subsections(sections[1], 3)] == ["Sub"]
    prose = dict(doc.prose_lines())
    assert 7 not in prose and 18 not in prose and 3 in prose


def test_unclosed_fence_runs_to_the_end():
    doc = parse_markdown("# T\n```python\nx = 1\n## swallowed\n")
    assert [h.title for h in doc.headings] == ["T"]
    assert not doc.code_blocks[0].closed
    assert doc.code_blocks[0].text == "x = 1\n## swallowed"


def test_crlf_and_bom():
    doc = parse_markdown("\ufeff# T\r\n\r\n## A\r\n")
    assert [(h.title, h.line) for h in doc.headings] == [("T", 1), ("A", 3)]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("#`~ \n\t-=*[]()<>!:abc1")), max_size=300))
def test_reader_never_raises(text):
    doc = parse_markdown(text)
    for heading in doc.headings:
        assert 1 <= heading.line <= max(doc.line_count, 1)
    for block in doc.code_blocks:
        assert block.line <= block.end_line
