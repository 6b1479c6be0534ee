"""A small line-oriented markdown reader shared by every lint rule.

It knows just enough CommonMark to answer the questions the rules ask:
which headings exist (and on which line), which fenced code blocks exist
(language, text, first line), which links and inline code spans occur
outside code, and which lines are prose.  A ``#`` inside a fenced block or
an HTML comment is never taken for a heading.

All line numbers are 1-based and refer to the original file.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

__all__ = [
    "CodeBlock",
    "Heading",
    "InlineCode",
    "Link",
    "MarkdownDoc",
    "Section",
    "parse_markdown",
]

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# The part of an inline link after its `](`: a target and an optional title.  The target excludes
# brackets so that a scan from one `](` never runs past the next one (linear on any line).
_LINK_TAIL = re.compile(r"\s*<?([^)\s>\[\]]*)>?(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^)\n]*\)))?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
_BLOCK_START = re.compile(r"^(?:[-*+](?:\s|$)|[>|<]|\d+[.)](?:\s|$))")
_BACKTICKS = re.compile(r"`+")


@dataclass(frozen=True)
class Heading:
    level: int
    title: str
    line: int


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block.  ``line`` is the line of the opening fence; the
    first line of ``text`` is ``line + 1``."""

    lang: str
    info: str
    text: str
    line: int
    end_line: int
    closed: bool = True

    @property
    def first_text_line(self) -> int:
        return self.line + 1

    @property
    def text_lines(self) -> list[str]:
        return self.text.split("\n") if self.text else []


@dataclass(frozen=True)
class Link:
    text: str
    target: str
    line: int
    kind: str  # "inline", "image", "reference", "autolink"


@dataclass(frozen=True)
class InlineCode:
    text: str
    line: int


@dataclass(frozen=True)
class Section:
    """A heading and the lines it governs, up to the next heading of the same
    or a higher level (``end`` is inclusive)."""

    heading: Heading
    start: int
    end: int

    @property
    def title(self) -> str:
        return self.heading.title

    def contains(self, line: int) -> bool:
        return self.start <= line <= self.end


@dataclass
class MarkdownDoc:
    text: str
    path: Path | None = None
    lines: list[str] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)
    code_blocks: list[CodeBlock] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    inline_code: list[InlineCode] = field(default_factory=list)
    code_lines: set[int] = field(default_factory=set)  # fence and content lines
    comment_lines: set[int] = field(default_factory=set)  # inside <!-- -->
    _ends: list[int] | None = field(default=None, repr=False)  # last line governed by each heading
    _parents: list[int] = field(default_factory=list, repr=False)  # enclosing heading of each heading
    _heading_lines: list[int] = field(default_factory=list, repr=False)
    cache: dict = field(default_factory=dict, repr=False)  # what the rules' section finders worked out

    # -- line access -------------------------------------------------------
    @property
    def line_count(self) -> int:
        return len(self.lines)

    def line(self, number: int) -> str:
        if 1 <= number <= len(self.lines):
            return self.lines[number - 1]
        return ""

    def prose_lines(self, start: int = 1, end: int | None = None) -> Iterator[tuple[int, str]]:
        """Lines outside code fences and HTML comments, with their numbers."""
        last = len(self.lines) if end is None else min(end, len(self.lines))
        for number in range(max(start, 1), last + 1):
            if number not in self.code_lines and number not in self.comment_lines:
                yield number, self.lines[number - 1]

    def text_between(self, start: int, end: int) -> str:
        return "\n".join(self.lines[max(start, 1) - 1 : max(end, 0)])

    # -- structure ---------------------------------------------------------
    def _heading_ends(self) -> list[int]:
        """The last line each heading governs, computed once in one pass (a stack of open headings),
        so that asking for sections stays linear in the number of headings."""
        if self._ends is None:
            ends = [len(self.lines)] * len(self.headings)
            parents = [-1] * len(self.headings)
            open_: list[int] = []
            for index, heading in enumerate(self.headings):
                while open_ and self.headings[open_[-1]].level >= heading.level:
                    ends[open_.pop()] = heading.line - 1
                parents[index] = open_[-1] if open_ else -1
                open_.append(index)
            self._ends, self._parents = ends, parents
            self._heading_lines = [h.line for h in self.headings]
        return self._ends

    def sections(self, level: int) -> list[Section]:
        """Every heading of ``level`` with its extent (a new list; the sections are computed once)."""
        key = ("sections", level)
        if key not in self.cache:
            ends = self._heading_ends()
            self.cache[key] = [Section(h, h.line, ends[i]) for i, h in enumerate(self.headings) if h.level == level]
        return list(self.cache[key])

    def subsections(self, parent: Section, level: int) -> list[Section]:
        return [s for s in self.sections(level) if parent.start < s.start <= parent.end and s.end <= parent.end]

    def enclosing(self, line: int, level: int | None = None) -> Section | None:
        """The section holding ``line``: the innermost one, or the one of exactly ``level``."""
        ends = self._heading_ends()
        index = bisect.bisect_right(self._heading_lines, line) - 1
        while index >= 0 and level is not None and self.headings[index].level > level:
            index = self._parents[index]  # at most six steps up
        if index < 0 or (level is not None and self.headings[index].level != level):
            return None
        heading = self.headings[index]
        return Section(heading, heading.line, ends[index])

    def blocks_in(self, start: int, end: int, lang: str | None = None) -> list[CodeBlock]:
        return [
            b
            for b in self.code_blocks
            if start <= b.line <= end and (lang is None or b.lang == lang)
        ]


def _strip_code_spans(line: str) -> tuple[str, list[str]]:
    """Return the line with code spans blanked out, and the span texts.

    CommonMark: a run of N backticks opens a span that the next run of exactly N backticks closes;
    an unmatched run is literal.  Runs are paired in one pass from the right (the next run of each
    length), so any line takes linear time."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(line)]
    if len(runs) < 2:
        return line, []
    following: list[int] = [-1] * len(runs)
    last_of_length: dict[int, int] = {}
    for index in range(len(runs) - 1, -1, -1):
        length = runs[index][1] - runs[index][0]
        following[index] = last_of_length.get(length, -1)
        last_of_length[length] = index
    spans: list[str] = []
    pieces: list[str] = []
    position = 0
    index = 0
    while index < len(runs):
        closing = following[index]
        if closing < 0:
            index += 1
            continue
        start, end = runs[index][0], runs[closing][1]
        body = line[runs[index][1] : runs[closing][0]]
        spans.append(body.strip())
        pieces.append(line[position:start])
        pieces.append(" " * (end - start))
        position = end
        index = closing + 1
    pieces.append(line[position:])
    return "".join(pieces), spans


def _inline_links(line: str) -> Iterator[tuple[str, str, str]]:
    """(``!`` or ``""``, text, target) for every ``[text](target)`` on the line, in one pass: a stack
    of open brackets, and a bounded look at what follows each ``](``."""
    stack: list[int] = []
    for index, char in enumerate(line):
        if char == "[":
            stack.append(index)
        elif char == "]" and stack:
            opened = stack.pop()
            if index + 1 < len(line) and line[index + 1] == "(":
                tail = _LINK_TAIL.match(line, index + 2)
                if tail:
                    bang = "!" if opened > 0 and line[opened - 1] == "!" else ""
                    yield bang, line[opened + 1 : index], tail.group(1)
                    stack.clear()  # a link's brackets never nest another link around it


def parse_markdown(text: str, path: Path | None = None) -> MarkdownDoc:
    """Parse markdown ``text``.  Never raises on any string."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    doc = MarkdownDoc(text=text, path=path, lines=lines)

    fence: tuple[str, int, str, str, int, int] | None = None  # char, len, lang, info, start, indent
    body: list[str] = []
    in_comment = False
    paragraph: list[tuple[int, str]] = []  # plain-text run, for setext headings

    for number, raw in enumerate(lines, start=1):
        if fence is not None:
            char, length, lang, info, start, indent = fence
            stripped = raw.strip()
            if stripped and set(stripped) == {char} and len(stripped) >= length:
                doc.code_blocks.append(CodeBlock(lang, info, "\n".join(body), start, number, True))
                doc.code_lines.add(number)
                fence = None
                body = []
            else:
                doc.code_lines.add(number)
                body.append(_dedent_by(raw, indent))
            continue

        if in_comment:
            doc.comment_lines.add(number)
            if "-->" in raw:
                in_comment = False
            paragraph = []
            continue

        opened = _FENCE_OPEN.match(raw)
        if opened and not (opened.group("fence")[0] == "`" and "`" in opened.group("info")):
            info = opened.group("info").strip()
            lang = info.split()[0].lower() if info else ""
            lang = lang.strip("{}.")
            indent = len(opened.group("indent").expandtabs(4))
            fence = (opened.group("fence")[0], len(opened.group("fence")), lang, info, number, indent)
            doc.code_lines.add(number)
            body = []
            paragraph = []
            continue

        stripped = raw.strip()
        if stripped.startswith("<!--"):
            doc.comment_lines.add(number)
            if "-->" not in stripped[4:]:
                in_comment = True
            paragraph = []
            continue

        atx = _ATX.match(raw)
        if atx:
            title = (atx.group(2) or "").strip()
            doc.headings.append(Heading(len(atx.group(1)), title, number))
            paragraph = []
        elif paragraph and _SETEXT.match(raw):
            level = 1 if stripped.startswith("=") else 2
            title = " ".join(text.strip() for _, text in paragraph)
            doc.headings.append(Heading(level, title, paragraph[0][0]))
            paragraph = []
        elif stripped and not raw.startswith("    ") and not _BLOCK_START.match(stripped):
            paragraph.append((number, raw))
        else:
            paragraph = []

        _collect_inline(doc, raw, number)

    if fence is not None:
        char, length, lang, info, start, indent = fence
        doc.code_blocks.append(CodeBlock(lang, info, "\n".join(body), start, len(lines), False))

    doc.headings.sort(key=lambda h: h.line)
    return doc


def _dedent_by(line: str, indent: int) -> str:
    """Remove up to ``indent`` columns of leading whitespace (the fence's own
    indentation, as CommonMark does)."""
    removed = 0
    index = 0
    while index < len(line) and removed < indent and line[index] in " \t":
        removed += 4 - (removed % 4) if line[index] == "\t" else 1
        index += 1
    return line[index:]


def _collect_inline(doc: MarkdownDoc, raw: str, number: int) -> None:
    blanked, spans = _strip_code_spans(raw)
    for span in spans:
        doc.inline_code.append(InlineCode(span, number))
    ref = _REF_DEF.match(blanked)
    if ref:
        doc.links.append(Link(ref.group(1), ref.group(2), number, "reference"))
        return
    if "](" in blanked:
        for bang, text, target in _inline_links(blanked):
            doc.links.append(Link(text, target, number, "image" if bang else "inline"))
    for match in _AUTOLINK.finditer(blanked):
        doc.links.append(Link(match.group(1), match.group(1), number, "autolink"))
