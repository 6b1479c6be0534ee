"""Make spec prose safe to put into a generated page.

Spec authors write Markdown, not HTML. Anything in their prose that a browser would read as markup
(`<script>`, `<img onerror=...>`, comments, entities) must reach the reader as the characters that
were typed. Two places take prose:

* Markdown text — `escape_prose`. `<`, `>` and `&` become entities, except where Markdown already
  shows text literally (inline code spans and fenced code blocks, whose content must stay as typed)
  and in display math, where `<`/`>` become the TeX commands `\\lt`/`\\gt` and `&` (an alignment
  mark) stays. A short allow-list passes through: `<br/>` (also written `<br>` or `<br />`),
  `http(s)` autolinks `<https://...>`, and `>` that opens a blockquote at the start of a line.
  Markdown's own ways to reach attributes are closed too: `{...}` attribute lists (the site enables
  attr_list) and `javascript:`-style link destinations.
* Mermaid diagram text — `escape_mermaid_label` for a label, `escape_mermaid_sequence_step` for one
  statement of a sequence diagram. Mermaid has its own escapes (`#60;`), and only `<br/>` is allowed.

Everything else a page shows is not Markdown but text, and goes through one of: `escape_text` (plain
text within a line: every character Markdown or HTML would read becomes an entity), `code_span` and
`fence_block` (code as typed, delimited by more backticks than it holds), `comment_text` (inside an
HTML comment) and `tex_text` (display math). opdoc/render.py applies them where values enter a page.

The rules lean to safety: where this module cannot be sure Markdown will treat something as code or
math (an unclosed fence, a fence that does not start a block, a code span across lines, math that
is not a paragraph of its own), it escapes. The worst outcome is then a visible `&lt;` in the page,
never live markup. Indented (four-space) code blocks are not recognised: their `<` would show as
`&lt;`; use fences.
"""

from __future__ import annotations

import re

__all__ = ["escape_prose", "escape_text", "code_span", "fence_block", "comment_text", "tex_text",
           "escape_mermaid_label", "escape_mermaid_sequence_step"]

_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
# A backtick is no TeX, and one left in a math paragraph would pair with the next code span on the
# page's line (a template may put text after the prose) and free what that span held.
_TEX = {"<": r"\lt ", ">": r"\gt ", "`": "&#96;"}

# A fence line: up to any indentation (fences may sit inside list items), three or more ` or ~.
_FENCE_OPEN = re.compile(r"(?m)^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_FENCE_ENTITY = {"`": "&#96;", "~": "&#126;"}

# A paragraph that is display math as a whole; only then does arithmatex treat it as a block
# (its block pattern must match the entire paragraph), and only then is its text left as TeX.
_MATH_BLOCK = re.compile(
    r"(?s)^(?:\$\$(?:\\.|[^\\])+?\$\$"
    r"|\\\[(?:\\[^\]]|[^\\])+?\\\]"
    r"|\\begin\{(?P<env>[a-z]+\*?)\}(?:\\.|[^\\])+?\\end\{(?P=env)\})[ ]*$"
)
_MATH_OPENERS = ("$$", "\\[", "\\begin{")  # what such a paragraph starts with: most are not math
_BLANK_LINES = re.compile(r"(\n[ \t]*\n(?:[ \t]*\n)*)")

# Link schemes a link written in prose may use; anything else (javascript:, data:, ...) is defused.
_SAFE_SCHEMES = {"http", "https", "mailto"}

# The pieces of a Markdown paragraph that are not plain text, tried in this order at each position.
_TOKENS = re.compile(
    "|".join(
        [
            # An inline code span on one line: a run of N backticks, content, the next run of exactly N.
            # (Markdown also joins spans across lines, but a line break may be a block boundary, such
            # as the next list item, where the span would not hold; such spans are escaped instead.)
            r"(?P<code>(?<!\\)(?P<ticks>`+)(?!`)[^\n]+?(?<!`)(?P=ticks)(?!`))",
            # Any other backtick would open a span that a backtick after the prose closes: the page's
            # own text in between would become code and a code span of the page's would become text.
            r"(?P<tick>`)",
            # A backslash escape is taken whole, so `\$` or `\`` never opens math or code.
            r"(?P<bslash>\\[\s\S])",
            # Allowed markup.
            r"(?P<br><br[ \t]*/?>)",
            r"(?P<autolink><https?://[^\s<>\"'`]+>)",
            r"(?P<quote>(?:^|(?<=\n))[ ]{0,3}>(?:[ ]?>)*)",
            # A link destination, inline `](dest` or a definition `[id]: dest`, that names a scheme.
            r"(?P<dest>(?:\]\(|(?:^|(?<=\n))[ ]{0,3}\[[^\]\n]+\]:)[ \t]*\n?[ \t]*)"
            r"(?P<scheme>[^\n:/?#()<>\[\]`]*):",
            # A `{` would open an attribute list ({onclick=...}) and becomes an entity. (Placeholders
            # such as {{flops}} are filled before prose is escaped, so none is left here.)
            r"(?P<brace>\{)",
            # `](` opens a link destination; left unclosed in the prose, the page's text after it
            # (another field's value) would become the destination. Closed on the line, it stays.
            r"(?P<link>\]\((?=[^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)))",
            r"(?P<opener>\](?=\())",
            # Anything else that HTML treats specially.
            r"(?P<special>[<>&])",
        ]
    )
)


def _escape_math(text: str) -> str:
    return "".join(_TEX.get(char, char) for char in text)


def _escape_text(text: str) -> str:
    return "".join(_HTML.get(char, char) for char in text)


def _escape_paragraph(text: str) -> str:
    """Escape one paragraph (no blank line, no fenced code block) of Markdown."""

    def replace(match: re.Match) -> str:
        token = match.group(0)
        if match.group("code") is not None or match.group("quote") is not None:
            return token
        if match.group("bslash") is not None:
            return token[0] + _HTML.get(token[1], token[1])  # `\{` is already literal to Markdown
        if match.group("br") is not None:
            return "<br/>"
        if match.group("autolink") is not None:
            return token.replace("&", "&amp;")
        if match.group("dest") is not None:
            scheme = match.group("scheme")
            cleaned = re.sub(r"[\x00-\x20]", "", scheme).lower()
            colon = ":" if cleaned in _SAFE_SCHEMES else "%3A"  # a relative link then, not a script
            return _escape_text(match.group("dest")) + _escape_text(scheme) + colon
        if match.group("brace") is not None:
            return "&#123;"
        if match.group("tick") is not None:
            return "&#96;"
        if match.group("link") is not None:
            return token
        if match.group("opener") is not None:
            return "&#93;"
        return _HTML[token]

    return _TOKENS.sub(replace, text)


def _escape_markdown_text(text: str) -> str:
    """Escape a stretch of Markdown that contains no fenced code block, paragraph by paragraph."""
    parts = _BLANK_LINES.split(text)
    out = []
    for index, part in enumerate(parts):
        if index % 2:  # the blank lines between paragraphs
            out.append(part)
        elif part.lstrip().startswith(_MATH_OPENERS) and _MATH_BLOCK.match(
                "\n".join(line.strip() for line in part.strip().split("\n"))):
            out.append(_escape_math(part))
        else:
            out.append(_escape_paragraph(part))
    return "".join(out)


def _fence_blocks(lines: list[str]):
    """Yield (is_code, lines) runs; a fence counts only if it opens a block and is closed."""
    i = 0
    start = 0
    after_fence = False
    while i < len(lines):
        opening = _FENCE_OPEN.match(lines[i])
        block_start = i == 0 or not lines[i - 1].strip() or after_fence
        after_fence = False
        if opening and block_start and not (opening.group("fence")[0] == "`" and "`" in opening.group("info")):
            fence = opening.group("fence")
            closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
            end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
            if end is not None:
                if start < i:
                    yield False, lines[start:i]
                yield True, lines[i:end + 1]
                i = start = end + 1
                after_fence = True
                continue
        i += 1
    if start < len(lines):
        yield False, lines[start:]


def escape_prose(text: str) -> str:
    """Escape raw HTML in Markdown prose so that it shows as typed.

    Outside code, `<`, `>` and `&` become `&lt;`, `&gt;`, `&amp;`, and `{` becomes `&#123;` (so no
    `{attribute=list}` can attach to an element); fill placeholders before escaping. In a
    paragraph that is display math, `<` and `>` become `\\lt` and `\\gt` and the rest stays TeX;
    inline math needs nothing (entities in it reach KaTeX as the characters). `<br/>`, http(s)
    autolinks and line-leading blockquote markers are kept. A link destination with a scheme other
    than http, https or mailto has its colon percent-encoded, which makes it a harmless relative link.

    >>> escape_prose("a <b>bold</b> claim & `x < y`")
    'a &lt;b&gt;bold&lt;/b&gt; claim &amp; `x < y`'
    """
    lines = text.split("\n")
    out: list[str] = []
    for is_code, block in _fence_blocks(lines):
        chunk = "\n".join(block)
        out.append(chunk if is_code else _defuse_fences(_escape_markdown_text(chunk)))
    return "\n".join(out)


def _defuse_fences(text: str) -> str:
    """Turn the first character of a fence opener outside code into an entity.

    Such a line is one that `_fence_blocks` found no end for. Left alone it would open a block that
    the page's own next fence closes, and that fence's code would then be read as live Markdown.
    """

    def defuse(match: re.Match) -> str:
        fence = match.group("fence")
        if fence[0] == "`" and "`" in match.group("info"):
            return match.group(0)  # not a fence (an info string holds no backtick): a code span
        return match.group("indent") + _FENCE_ENTITY[fence[0]] + match.group(0)[len(match.group("indent")) + 1:]

    return _FENCE_OPEN.sub(defuse, text)


# ------------------------------------------------------------------ plain text and code

# Plain text (a title, a name, a symbol's meaning) is not Markdown: every character that Markdown or
# HTML would read as syntax becomes an entity, which the reader sees as the character itself.
_TEXT = {**_HTML, "`": "&#96;", "\\": "&#92;", "[": "&#91;", "]": "&#93;", "{": "&#123;", "}": "&#125;",
         "|": "&#124;", "$": "&#36;", "*": "&#42;", "\r": " ", "\n": " "}
_TEXT_TABLE = str.maketrans(_TEXT)
def escape_text(text: str) -> str:
    """Plain text within a line of Markdown, shown exactly as typed: no markup, no link, no code, no math.

    (Templates put plain values inside a line, never where a line would start a heading or a list.)

    >>> escape_text("hidden size <img src=x onerror=alert(1)> | [x](javascript:y)")
    'hidden size &lt;img src=x onerror=alert(1)&gt; &#124; &#91;x&#93;(javascript:y)'
    """
    return text.translate(_TEXT_TABLE)


def _longest_run(text: str, char: str = "`") -> int:
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)


def code_span(text: str) -> str:
    """An inline code span that shows `text` as typed, whatever backticks it holds (on one line).

    >>> code_span("a ``` b")
    '````a ``` b````'
    """
    text = " ".join(str(text).splitlines())
    ticks = "`" * (_longest_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence_block(body: str, info: str = "", indent: str = "") -> str:
    """A fenced code block holding `body` as typed: the fence is longer than any backtick run in it.

    Each line of the block, fences included, starts with `indent` (a block inside a list item).
    """
    if "`" in info or "\n" in info:
        raise ValueError(f"a fence's info string cannot hold a backtick or a line break: {info!r}")
    ticks = "`" * max(3, _longest_run(body) + 1)
    lines = body.removesuffix("\n").split("\n") if body.strip("\n") else []
    inner = "".join(f"{indent}{line}\n" if line else "\n" for line in lines)
    return f"{indent}{ticks}{info}\n{inner}{indent}{ticks}\n"


def comment_text(text: str) -> str:
    """Text inside an HTML comment `<!-- ... -->`: escaped, and no `--` that could end it early."""
    return re.sub("-(?=-)", "&#45;", escape_text(text))


def tex_text(text: str) -> str:
    """TeX for a display-math block (`$$ ... $$`): nothing in it can end the block or become HTML."""
    return re.sub(r"[<>&$\n]", lambda m: {"<": r"\lt ", ">": r"\gt ", "&": r"\&", "$": r"\$", "\n": " "}[m.group(0)], text)


# ------------------------------------------------------------------ mermaid

# Mermaid's own escape is `#<decimal>;` (it turns `#\w+;` into an entity before parsing). `#` and `;`
# are escaped too: `#` would start an accidental escape, `;` ends a statement in sequence diagrams.
_MERMAID = {char: f"#{ord(char)};" for char in '<>&"#;`'}
_MERMAID_TOKENS = re.compile(r"(?P<br><br[ \t]*/?>)|(?P<newline>\r?\n)|(?P<special>[<>&\"#;`])")


def escape_mermaid_label(text: str) -> str:
    """Escape text shown inside a mermaid diagram (a node label, message, note or participant alias).

    Only `<br/>` survives as markup (also accepted as `<br>`/`<br />`, written `<br/>`); a newline
    becomes `<br/>`. Every other `<`, `>`, `&`, `"`, `#`, `;` and backtick becomes mermaid's numeric
    escape, which mermaid shows as the character. The result fits in a quoted flowchart label
    (`A["..."]`) and in sequence-diagram message or alias text.

    >>> escape_mermaid_label('x<br/>(B, S, h) <script>')
    'x<br/>(B, S, h) #60;script#62;'
    """

    def replace(match: re.Match) -> str:
        if match.group("special") is not None:
            return _MERMAID[match.group("special")]
        return "<br/>"

    return _MERMAID_TOKENS.sub(replace, text)


# Statements of a sequence diagram whose trailing text is shown to the reader.
_SEQ_PARTICIPANT = re.compile(r"^(?P<head>\s*(?:participant|actor)\s+[^\s:;#<>&\"`]+\s+as\s+)(?P<text>.*)$")
_SEQ_NOTE = re.compile(r"^(?P<head>\s*[Nn]ote\s+(?:over|left of|right of)\s+[^:]+?\s*:)(?P<text>.*)$")
_SEQ_MESSAGE = re.compile(
    r"^(?P<head>\s*[^\s:;#<>&\"`+-][^:;#<>&\"`]*?\s*(?:<<)?(?:-{1,2})(?:>>|>|x|\)|)(?:[+-])?\s*"
    r"[^\s:;#<>&\"`]+\s*:)(?P<text>.*)$"
)
_SEQ_BLOCK = re.compile(
    r"^(?P<head>\s*(?:loop|alt|else|opt|par|par_over|and|critical|option|break|box)\b[ \t]*)(?P<text>.*)$"
)
_SEQ_BARE = re.compile(
    r"^\s*(?:end|autonumber|(?:activate|deactivate|destroy)\s+[^\s:;#<>&\"`]+"
    r"|rect\s+(?:rgba?\([\d\s.,%]+\)|[A-Za-z]+))?\s*$"
)


def escape_mermaid_sequence_step(line: str) -> str:
    """Escape the reader-visible text of one sequence-diagram statement, keeping its syntax.

    `A->>B: text`, `Note over A,B: text`, `participant A as text`, `loop text`, `alt text` and the
    like keep everything up to the text; the text goes through `escape_mermaid_label`. `end` and
    other bare keywords pass unchanged. A line that is none of these is escaped whole, so it can
    never inject markup (mermaid then reports it as a syntax error rather than running it).

    >>> escape_mermaid_sequence_step("A->>B: x <y> ; z")
    'A->>B: x #60;y#62; #59; z'
    """
    if _SEQ_BARE.match(line):
        return line
    for pattern in (_SEQ_PARTICIPANT, _SEQ_NOTE, _SEQ_MESSAGE, _SEQ_BLOCK):
        match = pattern.match(line)
        if match:
            return match.group("head") + escape_mermaid_label(match.group("text"))
    return escape_mermaid_label(line)
