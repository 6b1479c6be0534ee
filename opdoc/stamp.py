"""The build stamp: what the committed knowledge base was generated from, so that a build whose
inputs have not changed can say so without rendering anything.

`opdoc build` writes `site/.opdoc-stamp.json` beside the pages: one digest of every input (the model's
spec folder, the templates, opdoc's own source, the source files of the reference classes the pages
quote, the GPU report read from site/measured/, pyproject.toml, and the Python and pinned library
versions) and one digest per generated file. A later `build` or `build --check` that finds
the same input digest, and every generated file still with its digest, has nothing to do and stops
before importing sympy. Anything else, including a missing or unreadable stamp, falls through to the
full build, which renders every page and compares it byte for byte.

This is not a cache: nothing is kept outside the committed output, and a cold build into an empty
folder has no stamp to read. This module imports nothing heavy, on purpose.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

STAMP = ".opdoc-stamp.json"
PACKAGE = Path(__file__).resolve().parent  # opdoc's own source
# The pinned libraries whose version can change the generated text (sympy's printers, jinja2's
# whitespace, ...); only pinned ones, so that every machine set up from pyproject.toml agrees.
LIBRARIES = ("sympy", "jinja2", "pydantic", "pyyaml")
# opdoc's subpackages that a build never imports (tests/test_stamp.py keeps this true): editing the
# checker or the lint does not make the knowledge base out of date.
NOT_BUILT_FROM = ("check", "lint")
# Files under site/ that the build reads (written by `opdoc check`), not writes.
SITE_INPUTS = ("measured/cuda-report.json", "measured/conventions.md")


def _digest(chunks: Iterable[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(len(chunk).to_bytes(8, "little"))  # length-prefixed: no two inputs hash alike
        hasher.update(chunk)
    return hasher.hexdigest()


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    """Files under folder, leaving out bytecode, hidden files and editor backups (never inputs)."""
    return sorted(path for path in folder.rglob(pattern)
                  if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith(".")
                  and not path.name.endswith("~"))


def build_sources() -> list[Path]:
    """opdoc's own source files that a build may run or quote."""
    return [path for path in _files(PACKAGE, "*.py")
            if path.relative_to(PACKAGE).parts[0] not in NOT_BUILT_FROM]


def _name(path: Path, root: Path) -> str:
    """A path as recorded in the stamp: relative to the repository, so the stamp is the same anywhere."""
    for base in (root, PACKAGE.parent):
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return path.resolve().as_posix()


def _environment() -> list[str]:
    versions = [f"python {sys.version_info.major}.{sys.version_info.minor}"]
    installed = _installed(LIBRARIES)
    return versions + [f"{name} {installed.get(name, 'absent')}" for name in LIBRARIES]


def _installed(names: Iterable[str]) -> dict[str, str]:
    """name -> version of each distribution found, as importlib.metadata.version gives it: from the
    name of its metadata folder (`<name>-<version>.dist-info`, or `.egg-info` with an optional
    `-py3.x`), first on sys.path wins. importlib.metadata itself costs every build about 30 ms of
    imports (email, zipfile, ...), a tenth of the import floor, to read the same folder names."""
    names = list(names)
    versions: dict[str, str] = {}  # normalised name -> version
    for entry in sys.path:
        try:
            folders = sorted(os.listdir(entry or "."))
        except OSError:  # a zip file or a missing folder: none of these libraries installs there
            continue
        for folder in folders:
            if match := _METADATA.fullmatch(folder):
                versions.setdefault(_normalised(match["name"]), match["version"])
    return {name: versions[_normalised(name)] for name in names if _normalised(name) in versions}


_METADATA = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+?)(?:-py\d+(?:\.\d+)*)?\.(?:dist|egg)-info")


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()  # PEP 503, with the separator wheels use


def input_digest(model_dir: Path, root: Path, site: Path, templates: Path, sources: Iterable[str],
                 fixed: str | None = None) -> str:
    """One digest of everything the generated files depend on; `sources` as recorded in the stamp.
    `fixed`: fixed_digest(model_dir, root, templates) when it was computed already (the build's helper
    process computes it while the build imports sympy: opdoc/prefetch.py)."""

    def chunks() -> Iterable[bytes]:
        yield (fixed or fixed_digest(model_dir, root, templates)).encode()
        for name in sources:
            path = _source_path(name, root)
            yield f"source {name}".encode()
            yield path.read_bytes() if path.is_file() else b"(missing)"
        for name in SITE_INPUTS:
            path = site / name
            yield f"site {name}".encode()
            yield path.read_bytes() if path.is_file() else b"(absent)"

    return _digest(chunks())


def fixed_digest(model_dir: Path, root: Path, templates: Path) -> str:
    """The digest of the inputs known before anything is rendered: the environment, the spec folder and
    the files beside it, the templates, opdoc's own source and the pins (input_digest adds the rest)."""

    def chunks() -> Iterable[bytes]:
        yield "\n".join(_environment()).encode()
        yield _name(model_dir, root).encode()  # the index page names the spec folder
        project = PACKAGE.parent / "pyproject.toml"  # the pins
        # hardware.yaml and runtime.yaml sit beside the model folder and feed the roofline pages
        shared = sorted(path for path in model_dir.parent.glob("*.yaml") if path.is_file())
        groups = (("spec", _files(model_dir)), ("spec", shared), ("template", _files(templates)), ("opdoc", build_sources()),
                  ("project", [project] if project.is_file() else []))
        for kind, paths in groups:
            for path in paths:
                yield f"{kind} {_name(path, root)}".encode()
                yield path.read_bytes()

    return _digest(chunks())


def module_file(module: str) -> Path | None:
    """The source file of a dotted module, found by path from its top-level package: nothing is
    imported (find_spec of a submodule would import its parents, e.g. torch for torch.nn.modules)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and Path(spec.origin).is_file() else None
    if not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


def implementation_sources(modules: Iterable[str], root: Path) -> list[str]:
    """Source files of the reference classes' modules outside opdoc's package (already in the digest)."""
    found = set()
    for module in modules:
        path = module_file(module)
        if path is not None and PACKAGE not in path.resolve().parents:
            name = _name(path, root)
            if Path(name).is_absolute():  # a library's file: named from its top-level package, the same anywhere
                name = Path(*module.split("."), *(["__init__"] if path.name == "__init__.py" else [])).as_posix() + ".py"
            found.add(name)
    return sorted(found)


def _source_path(name: str, root: Path) -> Path:
    """A recorded source name back to its file: in the repository, beside opdoc, or in a library."""
    for path in (Path(name) if Path(name).is_absolute() else root / name, PACKAGE.parent / name):
        if path.is_file():
            return path
    module = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return module_file(module) or root / name


def stamp_text(digest: str, sources: list[str], files: dict[str, str]) -> str:
    """The stamp for a build that generated `files` (path under site/ -> content)."""
    record = {
        "about": "written by `opdoc build`: the inputs and outputs of the last build, so that an unchanged "
                 "build can stop early; a cold build never reads it",
        "inputs": digest,
        "sources": sources,
        "files": {name: hashlib.sha256(text.encode("utf-8")).hexdigest()
                  for name, text in sorted(files.items()) if name != STAMP},
    }
    return json.dumps(record, indent=2, sort_keys=False) + "\n"


def is_current(model_dir: Path, root: Path, site: Path, templates: Path) -> bool:
    """True when site/ holds a stamp whose inputs match today's and whose files are all unchanged."""
    try:
        record = json.loads((site / STAMP).read_text(encoding="utf-8"))
        sources, files, digest = record["sources"], record["files"], record["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not files or input_digest(model_dir, root, site, templates, sources) != digest:
        return False
    for name, expected in files.items():
        try:
            if hashlib.sha256((site / name).read_bytes()).hexdigest() != expected:
                return False
        except OSError:
            return False
    return True


def listed(site: Path, manifest: dict[str, str | None]) -> bool:
    """True when the manifest lists exactly the stamp's files, each with the same digest."""
    try:
        files = json.loads((site / STAMP).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    expected = {name: f"sha256:{value}" for name, value in files.items()}
    expected.pop(STAMP, None)
    return {name: value for name, value in manifest.items() if name != STAMP} == expected
