"""Helpers shared by several rules: the template's section titles and how to
find a section even when its title is slightly off."""

from __future__ import annotations

import re

from ..markdown import MarkdownDoc, Section

# The H2 titles of the op-doc template, in order.  The first eight are
# required; the rest may be left out but keep their place when present.
REQUIRED_H2 = (
    "What It Is",
    "Definition",
    "Constructor Information",
    "Module Internals",
    "Key Pseudo Code",
    "FLOP Count and Memory Usage Impact",
    "Related Modules",
    "Usage Pattern",
)
OPTIONAL_H2 = ("Key Performance Characteristics", "References", "See Also")
ALL_H2 = REQUIRED_H2 + OPTIONAL_H2

FLOPS_TITLES = ("FLOPs", "FLOPs (per forward pass)")
MEMORY_TITLES = ("Memory Usage",)

PYTHON_LANGS = ("python", "py", "python3")


def python_blocks(md):
    """The non-empty ```python blocks of a document, in order."""
    return [block for block in md.code_blocks if block.lang in PYTHON_LANGS and block.text.strip()]

_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*[.):]?|[ivx]+\.)\s+", re.IGNORECASE)
_OPTIONAL_MARK = re.compile(r"\s*[\[(]\s*optional\s*[\])]\s*$", re.IGNORECASE)


def normalize_title(title: str) -> str:
    text = re.sub(r"[*_`]", "", title).strip()
    text = _NUMBERING.sub("", text)
    text = _OPTIONAL_MARK.sub("", text)
    text = text.rstrip(":.").replace("&", "and")
    return re.sub(r"\s+", " ", text).strip().lower()


_NORMALIZED_H2 = {normalize_title(t): i for i, t in enumerate(ALL_H2)}


def canonical_h2(title: str) -> tuple[int | None, bool]:
    """(index into ALL_H2 or None, whether the title is exactly the template's)."""
    if title in ALL_H2:
        return ALL_H2.index(title), True
    index = _NORMALIZED_H2.get(normalize_title(title))
    return index, False


def find_h2(doc: MarkdownDoc, canonical: str) -> Section | None:
    wanted = ALL_H2.index(canonical)
    for section in doc.sections(2):
        if canonical_h2(section.title)[0] == wanted:
            return section
    return None


def _h3_matching(doc: MarkdownDoc, prefixes: tuple[str, ...]) -> Section | None:
    parent = find_h2(doc, "FLOP Count and Memory Usage Impact")
    candidates = doc.subsections(parent, 3) if parent else doc.sections(3)
    for section in candidates:
        if normalize_title(section.title).startswith(prefixes):
            return section
    return None


def find_flops(doc: MarkdownDoc) -> Section | None:
    return _h3_matching(doc, ("flops", "flop count"))


def find_memory(doc: MarkdownDoc) -> Section | None:
    return _h3_matching(doc, ("memory usage", "memory"))


def section_text(doc: MarkdownDoc, section: Section) -> str:
    return doc.text_between(section.start, section.end)


def strip_inline_markup(text: str) -> str:
    return re.sub(r"[*_`]", "", text)
