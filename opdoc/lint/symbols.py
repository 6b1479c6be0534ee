"""Dimension symbols: which are declared, what each means, and what a document defines itself.

Three sources add up: the op-doc template's own symbols (``(B, S, d)``, an image's
``(B, C, H, W)``), the knowledge base's ``symbols`` in ``specs/*/model.yaml``, and the document's
definitions (an ``Assume:`` list, ``where X = ...``).  Meanings are compared by *concept* (batch,
sequence, hidden width, heads, ...): a document that defines ``h`` as the number of heads, where
the knowledge base means the hidden size, is using a declared symbol with another meaning.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable

from .markdown import MarkdownDoc

__all__ = ["BUILTIN_MEANINGS", "Definition", "concepts", "document_definitions"]

# The template's symbols and what it uses them for (the matmul M×K×N, an image's NCHW, a BLC sequence).
BUILTIN_MEANINGS: dict[str, str] = {
    "B": "batch size",
    "S": "sequence length (tokens)",
    "d": "hidden dimension",
    "h": "hidden size",
    "H": "number of attention heads; image height",
    "W": "image width",
    "C": "channels",
    "N": "number of elements; batch (NCHW); tokens",
    "L": "number of layers; sequence length (BLC)",
    "M": "rows of a matrix product",
    "K": "inner dimension of a matrix product; cached context length; kernel size",
    "P": "",
    "V": "vocabulary size",
    "E": "number of experts",
    "k": "top-k experts per token; kernel size",
    "d_in": "input features",
    "d_out": "output features",
    "d_ff": "intermediate (feed-forward) width",
    "d_h": "head dimension",
    "d_k": "head dimension (keys)",
    "d_v": "head dimension (values)",
}

# Concepts by keyword; order matters only for the exclusions below.
_CONCEPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("batch", r"\bbatch|\bnchw\b"),
        ("head_dim", r"head[_ ]?dim|head size|per[- ]head|of (?:one|each|an?) (?:attention )?head|head width|d_head"),
        ("heads", r"\bheads?\b|num_attention_heads|n_heads"),
        ("expert_width", r"(?:expert|moe)\S*\s+(?:intermediate|hidden|inner)|(?:intermediate|inner|hidden) (?:width|size|dim\w*) "
                         r"of (?:one|each|an?) (?:routed )?expert|moe_intermediate"),
        ("shared", r"\bshared\b"),
        ("intermediate", r"intermediate|\bffn\b|feed[- ]?forward|\bmlp\b|expansion|d_ff|inner (?:width|size|dim)"),
        ("topk", r"top[- ]?k|per token|chosen|selected|activated|routed to"),
        ("experts", r"\bexperts?\b"),
        ("cached", r"\bcache|cached|\bpast\b|kv length|prefix"),
        ("sequence", r"sequence|\bseq|\btokens?\b|length|context|patches|\bblc\b"),
        ("hidden", r"hidden|model dim|d_model|embed|residual|\bwidth of the (?:residual|model)|model width"),
        ("vocab", r"vocab"),
        ("layers", r"\blayers?\b|\bdepth\b|\bblocks\b"),
        ("channels", r"channel"),
        ("height", r"height|\brows\b"),
        ("width_img", r"(?:image|pixel|spatial|view)\b.*\bwidth|\bwidth\b.*(?:pixel|image)|^\s*width\s*$|image width"),
        ("patch", r"\bpatch(?![- ]grid)"),  # a patch grid is a count of patches, not the patch size
        ("features", r"features"),
        ("kernel", r"kernel"),
        ("matrix", r"matrix|matmul"),
        ("elements", r"elements|numel"),
    )
)


@functools.lru_cache(maxsize=2048)
def _cached_concepts(meaning: str) -> frozenset[str]:
    return frozenset(_all_concepts(meaning))


def concepts(meaning: str) -> set[str]:
    """See :func:`_all_concepts` (memoised: pages repeat their descriptions)."""
    return set(_cached_concepts(meaning))


def _all_concepts(meaning: str) -> set[str]:
    """What a symbol's description is about, as a set of concept names (empty if unclear).

    Only the description's first part counts ("shared experts, applied to every token as one wider
    MLP" is about shared experts); a description that starts with a number gives a value, and what
    follows it is a remark ("896 (one expert)"), not a meaning."""
    found: set[str] = set()
    for alternative in meaning.split(";"):  # the template's "number of heads; image height"
        found |= _concepts(re.split(r"[,(]", alternative, maxsplit=1)[0])
    return found


def _concepts(meaning: str) -> set[str]:
    if re.match(r"\s*[~≈]?\s*\d", meaning):
        return set()
    found = {name for name, pattern in _CONCEPTS if pattern.search(meaning)}
    if "expert_width" in found:
        found -= {"intermediate", "experts", "hidden"}
    if "shared" in found:
        found -= {"experts", "intermediate"}
    if "head_dim" in found:
        found -= {"heads", "hidden"}
    if "intermediate" in found:
        found -= {"experts", "hidden"}
    if "topk" in found:
        found -= {"experts", "sequence"}
    if "layers" in found and "hidden" in found:
        found -= {"layers"}  # "hidden size of every layer"
    if found & _SAME_WIDTH:
        found |= _SAME_WIDTH  # a vision block's channels are its hidden width
    return found


_SAME_WIDTH = {"hidden", "channels", "features"}


@dataclass(frozen=True)
class Definition:
    name: str
    meaning: str
    line: int


MAX_DEFINITIONS = 1_000
_SYMBOL = r"[A-Za-z][A-Za-z0-9_]{0,15}"
_PAIR = re.compile(
    rf"^\s*(?:[-*+•]\s+|\d+[.)]\s+)?[`*_]*(?P<names>{_SYMBOL}(?:[`*_]*\s*=\s*[`*_]*{_SYMBOL})*)[`*_]*\s*"
    rf"(?::|=|—|–|\bis\b|\bdenotes\b|\bstands for\b|\bmeans\b)\s*(?P<meaning>.+?)\s*$"
)
_LIST_HEAD = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*)?(?:assume|assuming|where|with|variables|notation|symbols|legend|definitions|dimensions)\b[^:]*:?\s*(?:\*\*)?:?\s*$",
    re.IGNORECASE,
)
_INLINE = re.compile(r"\b(?:where|with|assume|assuming|for)\b\s*:?", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_SEVERAL_PAIRS = re.compile(r"[,;]\s*(?=[`*_]*[A-Za-z][A-Za-z0-9_]{0,15}[`*_]*\s*(?:=|:))")
_WORDS = frozenset("a an the it its this that these is are be of to in on at by we and or as for".split())


def _pairs(piece: str) -> Iterable[tuple[str, str]]:
    match = _PAIR.match(piece)
    if not match:
        return []
    names = [n.strip("`*_ ") for n in re.split(r"=", match.group("names"))]
    meaning = match.group("meaning").strip("`*_ ")
    return [(name, meaning) for name in names if name and name.lower() not in _WORDS]


def document_definitions(md: MarkdownDoc) -> list[Definition]:
    """Symbols the document defines itself: ``Assume:``/``where:`` lists and inline ``where X = ...``."""
    found: list[Definition] = []
    in_list = False
    lines = list(md.prose_lines())
    for number, block_line in _code_lines(md):
        lines.append((number, block_line))
    lines.sort()
    for number, text in lines:
        if len(found) >= MAX_DEFINITIONS:
            break  # a page defines tens of symbols; the rest of a hostile file is not read for more
        stripped = text.strip()
        if not stripped:
            in_list = False
            continue
        if _LIST_HEAD.match(stripped) and "=" not in stripped:  # "where:" opens a list; "where X = ..." defines
            in_list = True
            continue
        pairs: list[tuple[str, str]] = []
        if in_list and (_BULLET.match(text) or text[:1].isspace()):
            # "- `h` = 1280, `L` = 12 layers": one definition per comma-separated part
            for part in _SEVERAL_PAIRS.split(text):
                pairs.extend(_pairs(part))
            # a bullet may carry several bindings: "Typical decode: B=1, S=1"
            for piece in re.split(r",|;", text.split(":", 1)[-1]):
                pairs.extend(_pairs(piece))
        else:
            in_list = False
        for marker in _INLINE.finditer(text):
            for piece in re.split(r",|;|\band\b", text[marker.end() :]):
                found_here = list(_pairs(piece))
                if not found_here:
                    break
                pairs.extend(found_here)
        first: dict[str, str] = {}
        for name, meaning in pairs:
            first.setdefault(name, meaning)  # the whole bullet's reading before its comma-separated parts
        for name, meaning in first.items():
            found.append(Definition(name, meaning, number))
    return found


def _code_lines(md: MarkdownDoc) -> Iterable[tuple[int, str]]:
    """Lines of plain-text blocks (a ``where:`` list often sits under a formula there) and the
    comments of python blocks (``# (B, S, n) where n = groups``)."""
    for block in md.code_blocks:
        if block.lang in ("", "text", "plaintext", "math"):
            for offset, line in enumerate(block.text_lines):
                yield block.first_text_line + offset, line
        elif block.lang in ("python", "py", "python3"):
            for offset, line in enumerate(block.text_lines):
                if "#" in line:
                    yield block.first_text_line + offset, "#" + line.split("#", 1)[1]
