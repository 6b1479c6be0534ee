"""Fixtures for the op-doc linter tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from lint_helpers import writer


@pytest.fixture
def write_doc(tmp_path: Path) -> Callable[..., Path]:
    """Write markdown text into the test's tmp dir (as op-TinyNorm.md unless named)."""
    return writer(tmp_path)


# Figures a test wants in the terminal summary (the corpus precision and recall), by title.
SUMMARY: dict[str, list[str]] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    for title, lines in SUMMARY.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.write_line(line)
