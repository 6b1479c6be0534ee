"""Stage 3a (continued): the reference implementation's class source, read with `ast`, never imported.

An op's implementation resolves only inside the package its model declares (model.yaml `package`)
or a library it declares (`libraries`, e.g. torch.nn for nn.Linear, found by file path, not imported):
a spec cannot make the build import anything else. Without an `implementation` field, the class is
found by its op name in the package's modules.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opdoc.catalog import Catalog, ParsedSpec
from opdoc.spec import SpecError, SpecProblem


@dataclass
class ClassSource:
    file: str
    first: int
    last: int
    source: str
    signature: str
    params: list[tuple[str, str | None]] | None  # (name, default as written); None: a library's, not read
    library: bool = False  # a declared library's own class (torch.nn.Linear), profiled as it is
    kind: str = "class"  # or "function" (get_rel_pos, torch's scaled_dot_product_attention)


def package_folder(catalog: Catalog) -> Path | None:
    """The model package's folder, located without running any module but the package's own parents."""
    package = catalog.model.package
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def class_source(item: ParsedSpec, catalog: Catalog) -> ClassSource:
    """The class that implements `item`'s op: its file, lines, source and constructor signature."""
    package = catalog.model.package
    where = ("implementation",) if item.spec.implementation else ("op",)

    def fail(message: str) -> SpecError:
        return SpecError([SpecProblem(item.path, item.line(*where), where[0], message)])

    folder = package_folder(catalog)
    if folder is None:
        return_message = (f"the model package '{package}' (model.yaml `package`) was not found; "
                          "install it or set `package_path`")
        raise fail(return_message)
    if item.spec.implementation:
        module, _, name = item.spec.implementation.rpartition(".")
        library = next((lib for lib in catalog.model.libraries if module == lib or module.startswith(lib + ".")), None)
        if library is not None:
            return _library_class(item, module, name)
        if module != package and not module.startswith(package + "."):
            libraries = ", ".join(catalog.model.libraries) or "none"
            raise fail(f"'{item.spec.implementation}' is outside the model package '{package}' and the declared "
                       f"libraries ({libraries}); implementations resolve only inside them (model.yaml `libraries`)")
        relative = module[len(package):].lstrip(".").replace(".", "/")
        candidates = [folder / f"{relative}.py", folder / relative / "__init__.py"] if relative else [folder / "__init__.py"]
        files = [path for path in candidates if path.is_file()]
        if not files:
            raise fail(f"module '{module}' not found in {folder}; write it or fix the path")
    else:
        name = item.spec.op
        files = sorted(folder.rglob("*.py"))
    # Only a file that defines the name at its top level is parsed: parsing every module of the
    # package in each build worker took 0.1 s, for one class.
    for path in files:
        if name not in _top_level_names(path):
            continue
        text, tree = _parsed(path)
        for node in tree.body:
            # A helper function (get_rel_pos, window_partition) is documented like a class: its own
            # signature stands where a constructor's would (the template's abbreviated form).
            if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
                return _source(path, text, node, catalog.root)
    if item.spec.implementation:
        raise fail(f"class '{name}' not found in {files[0].name}")
    raise fail(f"no class '{name}' in the model package '{package}'; write it there or name the class in "
               "`implementation`")


def _parsed(path: Path) -> tuple[str, ast.Module]:
    """A source file's text and syntax tree, parsed once per run (every page looks up its class, and
    without an `implementation` field that means reading the package's modules in turn)."""
    return _once(_PARSED, path, lambda: (text := _text(path), ast.parse(text)))


_DEFINES = re.compile(r"^(?:async\s+)?(?:class|def)\s+(\w+)", re.MULTILINE)


def _top_level_names(path: Path) -> frozenset[str]:
    """The classes and functions a file defines at its top level (or seems to: a line of a string may
    look like one; such a file is parsed and the name not found in it), read once per run."""
    return _once(_NAMES, path, lambda: frozenset(_DEFINES.findall(_text(path))))


def _text(path: Path) -> str:
    return _once(_TEXTS, path, lambda: path.read_text(encoding="utf-8"))


def _once(store: dict, path: Path, make: Callable[[], Any]) -> Any:
    """make() for this file as it is now: kept until the file changes (a test may rewrite it)."""
    key = (str(path), path.stat().st_mtime_ns)
    if key not in store:
        store[key] = make()
    return store[key]


_PARSED: dict[tuple[str, int], tuple[str, ast.Module]] = {}
_NAMES: dict[tuple[str, int], frozenset[str]] = {}
_TEXTS: dict[tuple[str, int], str] = {}


def _library_class(item: ParsedSpec, module: str, name: str) -> ClassSource:
    """A class of a declared library (model.yaml `libraries`, e.g. torch.nn.modules.linear.Linear). Its
    file is never read while building: the docs build without torch, the page is the same whether the
    library is installed or not, and no third-party code is copied into the knowledge base. The page
    names the class and where the library defines it (the spec's `upstream`); the constructor's
    parameters are the spec's, which tests compare with the installed class's signature."""
    up = item.spec.upstream
    where = f"{up.file}, lines {up.lines[0]}-{up.lines[1]}"
    params = list(item.spec.constructor.parameters)
    # Not imported, so a function (torch.nn.functional's) is told from a class by the name's case (PEP 8).
    kind = "function" if name[:1].islower() else "class"
    return ClassSource(
        file=up.file.split(" (")[0], first=up.lines[0], last=up.lines[1],  # the path, without "(torch 2.13.0)"
        source=f"# {module}.{name}: the library's own {kind}, profiled as it is "
               f"({where}).\n# opdoc writes no reference for it; the library's source is not copied here.",
        signature=f"def {name}({', '.join(params)})" if kind == "function" else f"def __init__(self, {', '.join(params)})",
        params=None, library=True, kind=kind)


def _without_docstrings(text: str, node: ast.ClassDef | ast.FunctionDef, first: int) -> str:
    """A library class's source with its docstrings (the class's and its methods') cut to one comment
    line each: they are the library's documentation, long and in its own markup; the code is what runs."""
    lines = text.splitlines()[first - 1:node.end_lineno]
    cut: dict[int, tuple[int, str]] = {}  # first line of a docstring (in `lines`) -> (its last, indent)
    for owner in [node, *(n for n in node.body if isinstance(n, ast.FunctionDef))]:
        doc = owner.body[0] if owner.body else None
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            cut[doc.lineno - first] = (doc.end_lineno - first, " " * doc.col_offset)
    for statement in node.body:  # `__doc__ = (...)`, as torch writes docstrings it assembles
        if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__doc__" for t in statement.targets):
            cut[statement.lineno - first] = (statement.end_lineno - first, " " * statement.col_offset)
    kept, index = [], 0
    while index < len(lines):
        if index in cut:
            last, indent = cut[index]
            kept.append(f"{indent}# (docstring omitted)")
            index = last + 1
            continue
        kept.append(lines[index])
        index += 1
    return "\n".join(kept)


def _source(path: Path, text: str, node: ast.ClassDef | ast.FunctionDef, root: Path,
            shown: str | None = None) -> ClassSource:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = text.splitlines()[first - 1:node.end_lineno]
    if isinstance(node, ast.FunctionDef):
        signature, params = _signature(node)
    else:
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        signature, params = _signature(init)
    return ClassSource(shown or _relative(path, root), first, node.end_lineno, "\n".join(lines), signature, params,
                       kind="function" if isinstance(node, ast.FunctionDef) else "class")


def _relative(path: Path, root: Path) -> str:
    """The file as the reader finds it: relative to the repository being built, else to opdoc's own."""
    for base in (root, Path(__file__).resolve().parent.parent):
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return path.name


def _signature(init: ast.FunctionDef | None) -> tuple[str, list[tuple[str, str | None]]]:
    if init is None:
        return "def __init__(self)", []
    args = init.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + [ast.unparse(d) for d in args.defaults]
    params = [(a.arg, d) for a, d in zip(positional, defaults) if a.arg != "self"]
    params += [(a.arg, ast.unparse(d) if d is not None else None) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    header = f"def {init.name}({ast.unparse(args)})"
    if init.name != "__init__" and init.returns is not None:
        header += f" -> {ast.unparse(init.returns)}"
    return header, params


def implementation_path(item: ParsedSpec, catalog: Catalog, source: ClassSource | None = None) -> str:
    """The dotted `package.module.Class` of an op's implementation (found the way `class_source` finds it,
    or read off its `source` when the caller has it)."""
    if item.spec.implementation:
        return item.spec.implementation
    source = source or class_source(item, catalog)
    folder = package_folder(catalog)
    path = Path(source.file)
    absolute = path if path.is_absolute() else (catalog.root / path)
    if not absolute.exists():
        absolute = Path(__file__).resolve().parent.parent / path
    relative = absolute.resolve().relative_to(folder.resolve()).with_suffix("")
    parts = [part for part in relative.parts if part != "__init__"]
    return ".".join([catalog.model.package, *parts, item.spec.op])
