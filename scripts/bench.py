"""`make bench`: cold wall time of `opdoc build` split by stage, against the floor of importing its libraries.

Each run is a fresh process writing into an empty folder, so nothing is cached between runs (Python's
bytecode cache aside). The floor is a bare `python -c "import sympy, jinja2, pydantic, yaml"`, measured
in the same run; the goal is a markdown build within 2x of it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def main() -> int:
    floors, walls, stages = [], [], []
    for _ in range(RUNS):
        floors.append(timed([sys.executable, "-c", "import sympy, jinja2, pydantic, yaml"])[0])
        with tempfile.TemporaryDirectory() as site:
            wall, out = timed([sys.executable, "-m", "opdoc", "build", "--timings", "--site", site])
        walls.append(wall)
        stages.append(json.loads(out.strip().splitlines()[-1]))
    floor = statistics.median(floors)
    wall = statistics.median(walls)
    stage = {name: statistics.median(s[name] for s in stages) for name in stages[0]}
    markdown = wall - stage.get("plots", 0.0)
    print(f"opdoc build, cold, median of {RUNS} fresh processes ({len(list((ROOT / 'specs').rglob('*.yaml'))) - 1} specs)")
    print(f"  import floor (sympy, jinja2, pydantic, yaml): {floor:7.3f} s")
    print(f"  whole build, wall:                            {wall:7.3f} s  ({wall / floor:.2f}x floor)")
    for name, seconds in stage.items():
        print(f"    {name:<10} {seconds:7.3f} s")
    print(f"  markdown build (whole minus plots):           {markdown:7.3f} s  ({markdown / floor:.2f}x floor;"
          f" goal <= 2x: {'met' if markdown <= 2 * floor else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
