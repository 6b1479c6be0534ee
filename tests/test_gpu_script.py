"""The prepared GPU run names ops that exist: a stale name would only fail on the GPU machine, whose time is scarce."""

from __future__ import annotations

import re
from pathlib import Path

from opdoc.pipeline import Paths, load

ROOT = Path(__file__).resolve().parents[1]


def test_every_op_the_gpu_script_times_has_a_spec():
    script = (ROOT / "scripts" / "gpu-check.sh").read_text(encoding="utf-8")
    command = script[script.index("--device cuda"):script.index('echo "wrote')]
    named = re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", command.replace("--device cuda", ""))
    catalog, _ = load(Paths(ROOT))
    assert named and set(named) <= set(catalog.specs), sorted(set(named) - set(catalog.specs))
