"""What a rule receives: the document being linted and the run's context."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .markdown import MarkdownDoc, parse_markdown
from .symbols import BUILTIN_MEANINGS

__all__ = [
    "BUILTIN_SYMBOLS",
    "find_specs_root",
    "load_symbol_meanings",
    "MAX_BYTES",
    "LintContext",
    "LintDoc",
    "load_declared_symbols",
    "load_doc",
]

MAX_BYTES = 2 * 1024 * 1024
MAX_LINES = 20_000  # an op-doc has hundreds; a longer file is checked in its first MAX_LINES lines
MARKDOWN_SUFFIXES = (".md", ".markdown")

# The dimension names the op-doc template itself uses; a knowledge base's symbols add to them.
BUILTIN_SYMBOLS: frozenset[str] = frozenset(BUILTIN_MEANINGS)

_OP_FILE = re.compile(r"^op-([A-Za-z_][A-Za-z0-9_]*)\.md$")


@dataclass
class LintDoc:
    """One path handed to the linter.  ``md`` is set only when the file could
    be read as markdown; file-stage rules explain why it was not."""

    path: Path
    display: str
    size: int | None = None
    read_error: str | None = None
    raw: bytes | None = None
    decode_error: str | None = None
    md: MarkdownDoc | None = None
    empty_dir: bool = False  # a directory argument that holds no op-*.md file
    cache: dict[str, Any] = field(default_factory=dict)  # results several rules share
    line_total: int | None = None  # set when the file had more than MAX_LINES lines

    @property
    def class_name(self) -> str | None:
        """The class the file name promises (``op-<Class>.md``)."""
        match = _OP_FILE.match(self.path.name)
        return match.group(1) if match else None

    @property
    def has_markdown_suffix(self) -> bool:
        return self.path.suffix.lower() in MARKDOWN_SUFFIXES


@dataclass
class LintContext:
    source: Path | None = None
    mermaid: bool = True
    symbols: frozenset[str] = BUILTIN_SYMBOLS
    symbols_origin: str = "the template's built-in list"
    # name -> what the knowledge base says it means (empty when it gives no description)
    kb_meanings: dict[str, str] = field(default_factory=dict)
    specs_root: Path | None = None  # where opdoc's own specs are, for the spec comparison
    specs: Any = None  # the loaded spec adapter (opdoc.lint.specs), shared by every document
    max_bytes: int = MAX_BYTES
    # Filled by the engine before rules run.
    mermaid_results: dict[tuple[str, int], Any] = field(default_factory=dict)
    mermaid_problem: str | None = None
    mermaid_problem_reported: bool = False
    mermaid_seconds: float = 0.0


def load_doc(path: Path, display: str | None = None, *, max_bytes: int = MAX_BYTES) -> LintDoc:
    """Read ``path`` defensively; never raises for a bad file."""
    doc = LintDoc(path=path, display=display if display is not None else str(path))
    try:
        if not path.exists():
            doc.read_error = "no such file or directory"
            return doc
        if not path.is_file():
            doc.read_error = "not a regular file"
            return doc
        doc.size = path.stat().st_size
        if doc.size > max_bytes:
            return doc
        doc.raw = path.read_bytes()
    except OSError as exc:
        doc.read_error = exc.strerror or str(exc)
        return doc
    doc.size = len(doc.raw)
    if not doc.has_markdown_suffix:
        return doc
    if b"\x00" in doc.raw:
        first_nul = doc.raw.index(b"\x00")
        doc.decode_error = f"contains NUL bytes (first at byte {first_nul})"
        return doc
    try:
        text = doc.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc.decode_error = f"is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        return doc
    if not text.strip():
        return doc
    if text.count("\n") >= MAX_LINES:
        lines = text.split("\n")
        doc.line_total = len(lines)
        text = "\n".join(lines[:MAX_LINES])
    doc.md = parse_markdown(text, path)
    return doc


def _symbols_from(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) if isinstance(v, (str, int, float)) else "" for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        names: dict[str, str] = {}
        for item in value:
            if isinstance(item, dict) and "name" in item:
                names[str(item["name"])] = str(item.get("description", ""))
            elif isinstance(item, dict):
                names.update({str(k): str(v) if isinstance(v, str) else "" for k, v in item.items()})
            else:
                names[str(item)] = ""
        return names
    if isinstance(value, str):
        return {part: "" for part in re.split(r"[\s,]+", value) if part}
    return {}


def _roots(root: Path | None) -> list[Path]:
    return [root] if root is not None else [Path.cwd(), Path(__file__).resolve().parents[2]]


def load_symbol_meanings(root: Path | None = None) -> tuple[dict[str, str], str]:
    """The knowledge base's declared dimension symbols with their descriptions.

    Reads the ``symbols`` key of every ``specs/*/model.yaml`` under ``root`` (default: the working
    directory, then the checkout holding this package).  Returns ({} , "") when there is none."""
    for base in _roots(root):
        files = sorted((base / "specs").glob("*/model.yaml"))
        names: dict[str, str] = {}
        used: list[str] = []
        for spec in files:
            try:
                import yaml

                data = yaml.safe_load(spec.read_text(encoding="utf-8"))
            except Exception:  # unreadable spec: ignore, other files may declare
                continue
            if isinstance(data, dict) and "symbols" in data:
                found = _symbols_from(data["symbols"])
                if found:
                    for name, meaning in found.items():
                        names.setdefault(name, meaning)
                    used.append(str(spec.relative_to(base)) if base == Path.cwd() else str(spec))
        if names:
            return names, ", ".join(used)
    return {}, ""


def load_declared_symbols(root: Path | None = None) -> tuple[frozenset[str], str]:
    """The knowledge base's declared dimension symbols (see :func:`load_symbol_meanings`), or the
    template's built-in list when there is no knowledge base."""
    names, origin = load_symbol_meanings(root)
    if names:
        return frozenset(names), origin
    return BUILTIN_SYMBOLS, "the template's built-in list"


def find_specs_root(root: Path | None = None) -> Path | None:
    """The directory whose ``specs/*/model.yaml`` describes the model (working directory first)."""
    for base in _roots(root):
        if any((base / "specs").glob("*/model.yaml")):
            return base
    return None
