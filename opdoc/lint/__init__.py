"""``opdoc lint``: check op-docs against the op-doc template's Quality Checklist.

>>> report = lint_paths(["site/"], mermaid=False)      # doctest: +SKIP
>>> report.exit_code                                   # doctest: +SKIP
0

``run_lint(argv)`` is the command line; ``python -m opdoc.lint`` runs it too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .engine import LintReport, lint_paths
from .registry import RULES, Finding
from .report import FORMATS

__all__ = ["Finding", "LintReport", "RULES", "build_parser", "lint_paths", "run_lint"]

DEFAULT_PATH = "site/"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opdoc lint",
        description="Check op-*.md files against the op-doc template's Quality Checklist.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help=f"files or directories (default: {DEFAULT_PATH})")
    parser.add_argument("--source", metavar="DIR", help="source tree to check **Location** line ranges against")
    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format (default: text)")
    parser.add_argument("--no-mermaid", action="store_true", help="do not parse diagrams in headless Chromium")
    parser.add_argument("--list-rules", action="store_true", help="print the rules and exit")
    return parser


def _rule_table() -> str:
    return "".join(f"{r.id}  {r.severity:<7}  {r.description}\n" for r in sorted(RULES.values(), key=lambda r: r.id))


def run_lint(argv: Sequence[str] | None = None) -> int:
    """``opdoc lint [PATH ...] [--source DIR] [--format text|github|json] [--no-mermaid]``.

    Returns 1 when any error is found, 0 otherwise (warnings alone pass), 2 on
    a usage problem."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    except SystemExit as exc:  # argparse already printed the problem
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.list_rules:
        sys.stdout.write(_rule_table())
        return 0
    try:
        report = lint_paths(args.paths or [DEFAULT_PATH], source=args.source, mermaid=not args.no_mermaid)
    except NotADirectoryError as exc:
        sys.stderr.write(f"opdoc lint: {exc}\n")
        return 2
    sys.stdout.write(FORMATS[args.format](report))
    return report.exit_code
