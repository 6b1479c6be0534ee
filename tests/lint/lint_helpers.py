"""Shared helpers for the op-doc linter tests (imported by the test modules)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

from opdoc.lint import LintReport, lint_paths
from opdoc.lint.mermaid import find_chromium, find_mermaid_js

FIXTURES = Path(__file__).parent / "fixtures"
VALID_NAME = "op-TinyNorm.md"
VALID_TEXT = (FIXTURES / VALID_NAME).read_text(encoding="utf-8")
SOURCE_DIR = FIXTURES / "src"
SYMBOLS = frozenset({"B", "S", "h"})
REPO = Path(__file__).resolve().parents[2]
# The project's seed documents sit next to the checkout (../shared/seeds) or where OPDOC_SEEDS says.
SEEDS = Path(os.environ.get("OPDOC_SEEDS") or REPO.parent / "shared" / "seeds")
SEED_004 = SEEDS / "004_1a4b03f26276110f.txt"


def edit(old: str, new: str, text: str = VALID_TEXT) -> str:
    """The valid fixture with one exact, unique passage replaced."""
    assert text.count(old) == 1, f"fixture passage not unique: {old!r}"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """1-based line on which the first occurrence of ``needle`` in ``text`` starts."""
    position = text.find(needle)
    assert position >= 0, f"{needle!r} not in text"
    return text.count("\n", 0, position) + 1


def lint_file(path: Path, **options) -> LintReport:
    options.setdefault("mermaid", False)
    options.setdefault("symbols", SYMBOLS)
    return lint_paths([path], **options)


def writer(directory: Path) -> Callable[..., Path]:
    def write(text: str, name: str = VALID_NAME) -> Path:
        path = directory / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return find_chromium() is not None and find_mermaid_js() is not None


requires_browser = pytest.mark.skipif(
    not browser_available(),
    reason="needs Chromium (`apt-get install chromium`), mermaid (`npm install`) and Playwright for Python",
)
requires_seed = pytest.mark.skipif(
    not SEED_004.is_file(),
    reason=f"seed 004 not found at {SEED_004} (put the seeds in ../shared/seeds next to the checkout or set OPDOC_SEEDS)",
)


def copy_seed(directory: Path) -> Path:
    target = directory / "op-DeepseekV2DecoderLayer.md"
    shutil.copyfile(SEED_004, target)
    return target
