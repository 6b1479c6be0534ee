"""``python -m opdoc.lint``."""

from . import run_lint

raise SystemExit(run_lint())
