"""The driver: load specs -> evaluate (and prove closed forms) -> render -> write, each stage timed.

A build whose inputs match the stamp of the committed output (opdoc/stamp.py) stops before any of
that; the stages' modules (and sympy) are imported only when there is work to do.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opdoc import stamp
from opdoc.problems import SpecError, SpecProblem

if TYPE_CHECKING:
    from opdoc.catalog import Catalog
    from opdoc.evaluate import Evaluator

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


def load(paths: Paths, timings: Timings | None = None, checks: bool = True, jobs: int = 1) -> tuple[Catalog, Evaluator]:
    """The catalog and its evaluator, every binding checked; with `checks`, every composed quantity too
    (signs, closed forms), which a build leaves to its render stage (op by op, in its workers).
    `jobs`: the processes that read the spec files (a build uses every core; opdoc/parallel.py)."""
    from opdoc.catalog import load_catalog
    from opdoc.evaluate import Evaluator

    timings = timings or Timings()
    dirs = paths.model_dirs()
    if len(dirs) != 1:
        found = ", ".join(map(str, dirs)) or "none"
        raise SpecError([SpecProblem(str(paths.specs or paths.root / "specs"), 0, "",
                                     f"expected one model folder with a model.yaml, found {found}; pass --specs DIR")])
    with timings.stage("load"):
        catalog = load_catalog(dirs[0], paths.root, jobs)
        model_package_path(catalog)
    with timings.stage("evaluate"):
        evaluator = Evaluator(catalog)
        problems = evaluator.check_bindings() or (checks and (evaluator.check_signs() or evaluator.prove_closed_forms()))
        if problems:
            raise SpecError(problems)
    return catalog, evaluator


def model_package_path(catalog: Catalog) -> None:
    """Put a model package that ships beside its specs (`package_path` in model.yaml) on sys.path."""
    import sys

    if catalog.model.package_path is None or catalog.model_dir is None:
        return
    folder = str((catalog.model_dir / catalog.model.package_path).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


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
    from opdoc.spec import GpuReport, Located, read_yaml, validate

    try:  # JSON is YAML, read again only for the line of each key (YAML 1.1 types numbers differently)
        lines = read_yaml(path, str(path)).lines
    except SpecError:
        lines = {}
    validate(Located(path, report, lines), GpuReport, str(path))
    return report


def build(paths: Paths, check: bool = False, full: bool = False, jobs: int | None = None) -> tuple[list[str], Timings]:
    """Render everything; write it (or, with check, list what would change). Returns (changes, timings).
    `jobs`: the processes to render with (the machine's cores unless told; opdoc/parallel.py).

    Unless `full`, a site whose stamp matches today's inputs and files is reported unchanged at once.
    """
    timings = Timings()
    dirs = paths.model_dirs()
    if not full and len(dirs) == 1:
        from opdoc.write import JOURNAL, _leftovers, read_manifest

        with timings.stage("stamp"):
            # An interrupted build (a journal or staged files left behind) is never taken as current,
            # nor a tree whose manifest (read and validated here: a broken one is an error) lists other
            # files than the stamp does.
            site = paths.site_dir
            manifest = {} if (site / JOURNAL).exists() else read_manifest(site)
            current = (not (site / JOURNAL).exists() and not _leftovers(site)
                       and stamp.is_current(dirs[0], paths.root, site, TEMPLATES)
                       and stamp.listed(site, manifest))
        if current:
            return [], timings
    # Python's cycle collector scans the millions of sympy objects a build makes, again and again, and
    # finds next to nothing (they hold no cycles): off while building, 15-20% of a cold build's time
    # and the same peak memory, measured. Back as it was afterwards, for callers in the same process.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(paths, check, jobs, timings)
    finally:
        if collecting:
            gc.enable()


def _build(paths: Paths, check: bool, jobs: int | None, timings: Timings) -> tuple[list[str], Timings]:
    from opdoc import prefetch
    from opdoc.parallel import cores

    jobs = jobs or cores()
    dirs = paths.model_dirs()  # anything but one model folder is load()'s error to report
    arrive = prefetch.start(dirs[0], paths.root, TEMPLATES, jobs) if len(dirs) == 1 else lambda: None
    from opdoc.render import render_all
    from opdoc.write import differences, write

    inputs = arrive()  # the stamp's digest of what is known before rendering, when the helper made it
    catalog, evaluator = load(paths, timings, checks=False, jobs=jobs)
    conventions = (paths.site_dir / CONVENTIONS).exists()
    rendered = render_all(catalog, evaluator, TEMPLATES, timings, gpu_report(paths.site_dir), conventions, jobs)
    with timings.stage("stamp"):
        modules = (rendered.modules[op] for op in catalog.specs)  # read by the workers (render.py)
        libraries = tuple(catalog.model.libraries)  # their files are never read while building (source.py)
        sources = stamp.implementation_sources(
            (m for m in modules if not any(m == lib or m.startswith(lib + ".") for lib in libraries)), paths.root)
        digest = stamp.input_digest(catalog.model_dir, paths.root, paths.site_dir, TEMPLATES, sources, inputs)
        rendered.files[stamp.STAMP] = stamp.stamp_text(digest, sources, rendered.files)
    with timings.stage("write"):
        changes = differences(rendered, paths.site_dir) if check else write(rendered, paths.site_dir)
    return changes, timings
