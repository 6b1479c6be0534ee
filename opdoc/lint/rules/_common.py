"""Helpers shared by several rules: the template's section titles and how to
find a section even when its title is slightly off."""

from __future__ import annotations

import difflib
import functools
import re

from ..markdown import MarkdownDoc, Section
from ..symbols import Definition, document_definitions

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


@functools.lru_cache(maxsize=4096)
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


_STOP = frozenset("key and the of a an for".split())


def _content_words(title: str) -> set[str]:
    return {w.rstrip("s") for w in re.split(r"[^a-z0-9]+", normalize_title(title)) if w and w not in _STOP}


def _near_miss(title: str, candidates: list[int]) -> int | None:
    """The template title ``title`` was probably meant to be: close in spelling, or sharing a content
    word and fairly close (``Usage Example`` for ``Usage Pattern``)."""
    best: tuple[float, int] | None = None
    words = _content_words(title)
    for index in candidates:
        ratio = difflib.SequenceMatcher(None, normalize_title(title), normalize_title(ALL_H2[index])).ratio()
        if ratio >= 0.7 or (ratio >= 0.5 and words & _content_words(ALL_H2[index])):
            if best is None or ratio > best[0]:
                best = (ratio, index)
    return best[1] if best else None


def recognised_h2(doc: MarkdownDoc) -> list[tuple[int, Section, bool]]:
    """Each H2 that is a template section: (template index, section, worded exactly?).

    A title that is not the template's but close to a template title missing from the document
    (``## Usage Examples``) counts as that section, misworded."""
    cached = doc.cache.get("recognised_h2")
    if cached is not None:
        return cached
    sections = doc.sections(2)
    found: dict[int, tuple[int, Section, bool]] = {}
    unknown: list[int] = []
    for position, section in enumerate(sections):
        index, exact = canonical_h2(section.title)
        if index is None:
            unknown.append(position)
        else:
            found[position] = (index, section, exact)
    present = {entry[0] for entry in found.values()}
    for position in unknown:
        missing = [i for i in range(len(ALL_H2)) if i not in present]
        index = _near_miss(sections[position].title, missing)
        if index is not None:
            found[position] = (index, sections[position], False)
            present.add(index)
    result = [found[p] for p in sorted(found)]
    doc.cache["recognised_h2"] = result
    return result


def find_h2(doc: MarkdownDoc, canonical: str) -> Section | None:
    wanted = ALL_H2.index(canonical)
    for index, section, _ in recognised_h2(doc):
        if index == wanted:
            return section
    return None


def _h3_matching(doc: MarkdownDoc, prefixes: tuple[str, ...]) -> Section | None:
    key = ("h3", prefixes)
    if key not in doc.cache:
        parent = find_h2(doc, "FLOP Count and Memory Usage Impact")
        candidates = doc.subsections(parent, 3) if parent else doc.sections(3)
        doc.cache[key] = next((s for s in candidates if normalize_title(s.title).startswith(prefixes)), None)
    return doc.cache[key]


def find_flops(doc: MarkdownDoc) -> Section | None:
    return _h3_matching(doc, ("flops", "flop count"))


def find_memory(doc: MarkdownDoc) -> Section | None:
    return _h3_matching(doc, ("memory usage", "memory"))


def section_text(doc: MarkdownDoc, section: Section) -> str:
    return doc.text_between(section.start, section.end)


def strip_inline_markup(text: str) -> str:
    return re.sub(r"[*_`]", "", text)


def definitions(doc) -> list[Definition]:
    """The symbols the document defines itself (cached on the document)."""
    if "definitions" not in doc.cache:
        doc.cache["definitions"] = document_definitions(doc.md)
    return doc.cache["definitions"]


def declared_symbols(doc, context) -> frozenset[str]:
    """The template's symbols, the knowledge base's, and the document's own definitions."""
    if "symbols" not in doc.cache:
        doc.cache["symbols"] = context.symbols | frozenset(d.name for d in definitions(doc))
    return doc.cache["symbols"]
