"""The driver: load specs -> evaluate (and prove closed forms) -> render -> write, each stage timed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from opdoc.catalog import Catalog, load_catalog
from opdoc.evaluate import Evaluator
from opdoc.render import Rendered, render_all
from opdoc.spec import GpuReport, Located, SpecError, SpecProblem, read_yaml, validate
from opdoc.write import differences, write

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "templates"


@dataclass
class Paths:
    root: Path = field(default_factory=Path.cwd)
    specs: Path | None = None
    site: Path | None = None

    def model_dirs(self) -> list[Path]:
        base = self.specs or self.root / "specs"
        if (base / "model.yaml").exists():
            return [base]
        return sorted(path.parent for path in base.glob("*/model.yaml"))

    @property
    def site_dir(self) -> Path:
        return self.site or self.root / "site"


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def load(paths: Paths, timings: Timings | None = None) -> tuple[Catalog, Evaluator]:
    timings = timings or Timings()
    dirs = paths.model_dirs()
    if len(dirs) != 1:
        found = ", ".join(map(str, dirs)) or "none"
        raise SpecError([SpecProblem(str(paths.specs or paths.root / "specs"), 0, "",
                                     f"expected one model folder with a model.yaml, found {found}; pass --specs DIR")])
    with timings.stage("load"):
        catalog = load_catalog(dirs[0], paths.root)
    with timings.stage("evaluate"):
        evaluator = Evaluator(catalog)
        problems = evaluator.prove_closed_forms()
        if problems:
            raise SpecError(problems)
    return catalog, evaluator


GPU_REPORT = Path("measured") / "cuda-report.json"
CONVENTIONS = Path("measured") / "conventions.md"  # written by `opdoc check --conventions` (needs torch)


def gpu_report(site: Path) -> dict | None:
    """The committed result of `opdoc check --device cuda`, shown beside the formulas; None if absent."""
    import json

    path = site / GPU_REPORT
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise SpecError([SpecProblem(str(path), getattr(exc, "lineno", 0), "",
                                     f"not valid JSON ({exc}); rerun `opdoc check --device cuda`")]) from None
    try:  # JSON is YAML, read again only for the line of each key (YAML 1.1 types numbers differently)
        lines = read_yaml(path, str(path)).lines
    except SpecError:
        lines = {}
    validate(Located(path, report, lines), GpuReport, str(path))
    return report


def build(paths: Paths, check: bool = False) -> tuple[list[str], Timings]:
    """Render everything; write it (or, with check, list what would change). Returns (changes, timings)."""
    timings = Timings()
    catalog, evaluator = load(paths, timings)
    conventions = (paths.site_dir / CONVENTIONS).exists()
    rendered: Rendered = render_all(catalog, evaluator, TEMPLATES, timings, gpu_report(paths.site_dir), conventions)
    with timings.stage("write"):
        changes = differences(rendered, paths.site_dir) if check else write(rendered, paths.site_dir)
    return changes, timings
