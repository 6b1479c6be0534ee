"""`make bench`: wall time of `opdoc build` against the floor of importing its libraries.

For the real knowledge base and for a synthetic one of about 80 pages (scripts/synthetic_kb.py: the
real specs, renamed copies, and a parent summing 24 children) it times, in fresh processes:

* a cold build: an empty output folder, so no stamp and nothing else to reuse;
* a rebuild with nothing changed (the stamp in the output says so: opdoc/stamp.py);
* `build --check` of that output;
* for information, a check that renders and compares everything (what `--check` costs when the
  stamp does not match, e.g. right after a spec changed).

Each measurement is paired with a bare `python -c "import sympy, jinja2, pydantic, yaml"` run just
before it, and the ratio is the median of the pairs' ratios, so load on a shared machine affects
both sides alike. Python's bytecode cache is kept on both sides: the libraries' was written when pip
installed them, and opdoc's own is written here first (compileall), as installing it would; where
PYTHONDONTWRITEBYTECODE is set, Python would otherwise compile opdoc's modules again in every run.
Targets: cold build <= 5x the floor, unchanged rebuild <= 1.5x, `build --check` <= 2x.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from synthetic_kb import write_synthetic  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
FLOOR = [sys.executable, "-c", "import sympy, jinja2, pydantic, yaml"]
TARGETS = {"cold build": 5.0, "unchanged rebuild": 1.5, "build --check": 2.0}
FULL_CHECK = ("import sys; from pathlib import Path; from opdoc.pipeline import Paths, build;"
              "changes, _ = build(Paths(root=Path('.'), specs=Path(sys.argv[1]), site=Path(sys.argv[2])),"
              " check=True, full=True); sys.exit(1 if changes else 0)")


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"bench: {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return seconds, result.stdout


def paired(command: list[str]) -> tuple[float, float, str]:
    """(seconds, seconds / floor of the run just before) of one fresh-process run, and its output."""
    floor, _ = timed(FLOOR)
    seconds, out = timed(command)
    return seconds, seconds / floor, out


def bench(name: str, specs: Path, pages: int) -> dict[str, float]:
    opdoc = [sys.executable, "-m", "opdoc", "build", "--specs", str(specs)]
    results: dict[str, list[tuple[float, float]]] = {}
    stages: list[dict[str, float]] = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as site:
            seconds, ratio, out = paired([*opdoc, "--site", site, "--timings"])
            results.setdefault("cold build", []).append((seconds, ratio))
            stages.append(json.loads(out.strip().splitlines()[-1]))
            for label, extra in (("unchanged rebuild", []), ("build --check", ["--check"])):
                seconds, ratio, _ = paired([*opdoc, "--site", site, *extra])
                results.setdefault(label, []).append((seconds, ratio))
            seconds, ratio, _ = paired([sys.executable, "-c", FULL_CHECK, str(specs), site])
            results.setdefault("full check (renders all)", []).append((seconds, ratio))
    print(f"\n{name}: {pages} pages, median of {RUNS} fresh-process runs, each paired with the import floor")
    ratios = {}
    for label, runs in results.items():
        seconds = statistics.median(s for s, _ in runs)
        ratio = ratios[label] = statistics.median(r for _, r in runs)
        target = TARGETS.get(label)
        verdict = f"target <= {target}x: {'met' if ratio <= target else 'NOT met'}" if target else "information"
        print(f"  {label:<26} {seconds:6.3f} s  {ratio:5.2f}x floor   {verdict}")
    print("  cold build by stage (s):  " + "  ".join(
        f"{stage} {statistics.median(s.get(stage, 0.0) for s in stages):.3f}" for stage in stages[0]))
    return ratios


def main() -> int:
    compileall.compile_dir(ROOT / "opdoc", quiet=1)
    floors = [timed(FLOOR)[0] for _ in range(RUNS)]
    print(f"import floor (sympy, jinja2, pydantic, yaml): median {statistics.median(floors):.3f} s on "
          f"{os.cpu_count()} cores")
    real = ROOT / "specs" / "deepseek_ocr"
    bench("real knowledge base", real, len(list(real.glob("*.yaml"))) - 1)
    with tempfile.TemporaryDirectory() as folder:
        specs = Path(folder) / "deepseek_ocr"
        pages = write_synthetic(specs)
        bench("synthetic knowledge base", specs, pages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
