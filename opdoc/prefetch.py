"""A helper process that reads ahead while the build imports sympy.

A cold build spends its first third of a second importing sympy, jinja2 and pydantic, on one core.
A helper forked before that reads every YAML file of the model folder and the folder above it
(opdoc/yamlfile.py), compiles every template (opdoc/templating.py) and digests the build's inputs
for its stamp (opdoc/stamp.py), and sends all three back through a pipe: the build then finds the
files read, the templates compiled and the digest made, and spends that work's time on none of them.

Nothing outlives the build. A file changed since the helper read it is read again; a template whose
source changed is compiled again (jinja2 keeps each one's checksum); a file or template that fails
is left for the build to read and report as always; and if the helper itself fails, the build does
all of it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from opdoc.parallel import start_forked


def start(model_dir: Path, root: Path, templates: Path, jobs: int) -> Callable[[], str | None]:
    """Fork the helper, unless the build runs in one process (`jobs`) or has nothing to import (sympy
    is in already: a caller of the Python API). The returned callable waits for what it read and
    compiled, hands that to read_yaml and to every jinja2 Environment made after, and returns the
    stamp's digest of the inputs known before rendering (stamp.fixed_digest; None without a helper)."""
    if jobs < 2 or not hasattr(os, "fork") or not _imports_ahead():
        return lambda: None
    files = sorted(model_dir.rglob("*.yaml")) + sorted(model_dir.parent.glob("*.yaml"))
    arrived = start_forked(lambda: _work(files, model_dir, root, templates))

    def arrive() -> str | None:
        from opdoc import templating, yamlfile

        try:
            documents, compiled, digest = arrived()
        except RuntimeError:  # the helper failed: the build does all of it itself
            return None
        yamlfile.use_read_ahead(documents)
        templating.use_compiled(compiled)
        return digest

    return arrive


def _imports_ahead() -> bool:
    """Whether this process has yet to import sympy: the time the helper's work hides in."""
    return "sympy" not in sys.modules


def _work(files: list[Path], model_dir: Path, root: Path, templates: Path) -> tuple[dict, dict[str, bytes], str]:
    from opdoc import stamp, templating, yamlfile

    return yamlfile.read_ahead(files), templating.compile_all(templates), stamp.fixed_digest(model_dir, root, templates)
