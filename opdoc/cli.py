"""Command line: `main(argv) -> int`, one function per subcommand, a dict maps names to them."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from opdoc import __version__
from opdoc.problems import SpecError, SpecProblem


def _paths(args: argparse.Namespace):
    from opdoc.pipeline import Paths

    return Paths(root=Path(args.root), specs=Path(args.specs) if args.specs else None,
                 site=Path(args.site) if args.site else None)


@contextlib.contextmanager
def _unbounded_sympy_cache():
    """sympy keeps its last 1,000 results of each cached function; a build revisits far more than that
    (composing and printing the whole model), and an unbounded cache took 9% off a cold build's CPU for
    3 MB. sympy reads the size once, when a build that renders first imports it (one that finds its
    stamp current never does); the setting is gone when the build returns, and a size the user chose is
    kept."""
    if "sympy" in sys.modules or "SYMPY_CACHE_SIZE" in os.environ:
        yield
        return
    os.environ["SYMPY_CACHE_SIZE"] = "none"
    try:
        yield
    finally:
        del os.environ["SYMPY_CACHE_SIZE"]


def cmd_build(args: argparse.Namespace) -> int:
    from opdoc.pipeline import build

    with _unbounded_sympy_cache():
        changes, timings = build(_paths(args), check=args.check, full=args.full, jobs=args.jobs)
    if args.check:
        if changes:
            print("the knowledge base differs from what the specs generate:")
            print("\n".join(f"  {line}" for line in changes))
            print("run `opdoc build` (or `make docs`) and commit the result")
            return 1
        print("knowledge base is up to date")
        return 0
    print(f"wrote {len(changes)} file(s)" if changes else "knowledge base already up to date")
    for line in changes:
        print(f"  {line}")
    if args.timings:
        print(json.dumps({k: round(v, 4) for k, v in timings.seconds.items()}))
    return 0


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _parse_sets(values: list[str]) -> tuple[tuple[str, str], ...]:
    overrides = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise SpecError([SpecProblem("--set", 0, item, "expected NAME=VALUE, e.g. --set S=4096")])
        overrides[name.strip()] = value.strip()
    return tuple(overrides.items())


def _selection(args: argparse.Namespace, ops: tuple[str, ...]):
    from opdoc.export import Selection

    examples = tuple(args.example) if isinstance(args.example, list) else ((args.example,) if args.example else ())
    return Selection(ops, examples, _parse_sets(args.set), args.beyond_limits)


def cmd_eval(args: argparse.Namespace) -> int:
    import sympy

    from opdoc.export import record, select
    from opdoc.formula import engineering, plain_text
    from opdoc.pipeline import load
    from opdoc.registry import UNITS

    catalog, ev = load(_paths(args))
    results = select(catalog, ev, _selection(args, (args.op,)))
    if args.format == "json":
        print(json.dumps([record(result, example) for result, example in results], indent=2))
        return 0
    width = max(len(name) for name in UNITS)
    for result, example in results:
        bound = " ".join(f"{name}={value}" for name, value in result.binding)
        print(f"{result.op} [{result.variant or 'default'}] at {example}, {result.kernel} kernel: {bound}")
        for line in result.passed:
            print(f"  BEYOND A LIMIT (asked for): {line}")
        for name, value in result.totals.items():
            formula = plain_text(sympy.expand(result.formulas[name]))
            print(f"  {name:<{width}}  {engineering(value, UNITS[name]):>32}   {formula}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from opdoc.export import record, rows, select
    from opdoc.pipeline import load

    catalog, ev = load(_paths(args))
    results = select(catalog, ev, _selection(args, tuple(args.op)))
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8", newline="")
    try:
        if args.format == "json":
            json.dump([record(result, example) for result, example in results], out, indent=2)
            out.write("\n")
        else:
            table = rows(results)
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["op"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(table)
            out.write(buffer.getvalue())
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from opdoc.export import listing
    from opdoc.pipeline import load

    catalog, _ = load(_paths(args))
    entries = listing(catalog)
    if args.format == "json":
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        variants = f" variants: {', '.join(entry['variants'])};" if entry["variants"] else ""
        print(f"{entry['op']} ({entry['family']}, scope {entry['scope']}):{variants} "
              f"examples: {', '.join(entry['examples'])}")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from opdoc.skeleton import write_skeleton

    path = write_skeleton(_paths(args), args.name, args.family, args.scope)
    print(f"wrote {path}; fill in every TODO, then run `opdoc build`")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from opdoc.schema import write_schemas

    for path in write_schemas(Path(args.root) / "specs" / "schema", check=args.check):
        print(path)
    return 0


def cmd_lint(argv: list[str]) -> int:
    from opdoc.lint import run_lint

    return run_lint(argv)


def cmd_check(argv: list[str]) -> int:
    from opdoc.check.runner import run_check

    return run_check(argv)


# Subcommands that parse their own arguments.
PASSTHROUGH: dict[str, Callable[[list[str]], int]] = {"lint": cmd_lint, "check": cmd_check}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="opdoc", description="Generate and verify op-docs from YAML specs.")
    root.add_argument("--version", action="version", version=f"opdoc {__version__}")
    sub = root.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", default=".", help="repository root (default: current folder)")
        p.add_argument("--specs", help="model spec folder (default: the one folder under specs/)")
        p.add_argument("--site", help="knowledge-base folder (default: site/)")

    p = sub.add_parser("build", help="write the knowledge base from the specs")
    common(p)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 listing files that differ")
    p.add_argument("--timings", action="store_true", help="print seconds per stage")
    p.add_argument("--full", action="store_true",
                   help="render everything even when the stamp says nothing changed (compare byte for byte)")
    p.add_argument("--jobs", type=positive_int, help="processes to render with (default: the cores this machine gives "
                                                   "the build; the pages are the same whatever the number)")
    p.set_defaults(func=cmd_build)

    def binding(p: argparse.ArgumentParser, many: bool) -> None:
        if many:
            p.add_argument("--example", action="append", default=[], help="a named example (repeatable; default: each op's own)")
        else:
            p.add_argument("--example", help="a named example (default: all of the op's examples)")
        p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a symbol or a configuration key, e.g. --set S=4096 (repeatable); "
                            "symbols bound after it are re-derived from it")
        p.add_argument("--beyond-limits", action="store_true",
                       help="evaluate even where the scope's limits (e.g. the trained context) are exceeded")

    p = sub.add_parser("eval", help="print every quantity of one op")
    common(p)
    p.add_argument("op")
    binding(p, many=False)
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="json: exact integers, the full binding used and a unit per quantity")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="every quantity of every op at every example, for tools")
    common(p)
    p.add_argument("--op", action="append", default=[], help="only this op (repeatable)")
    binding(p, many=True)
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--output", default="-", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("list", help="list ops, their variants and examples")
    common(p)
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("new", help="write a spec skeleton for a module")
    common(p)
    p.add_argument("name")
    p.add_argument("--family", help="one of the model's families (default: its first)")
    p.add_argument("--scope", help="one of the model's scopes (default: its first)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("schema", help="write the JSON Schema of specs (specs/schema/)")
    p.add_argument("--root", default=".")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    p.set_defaults(func=cmd_schema)

    sub.add_parser("lint", help="check op-docs against the template's quality checklist", add_help=False)
    sub.add_parser("check", help="measure the reference modules and compare with the formulas", add_help=False)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return PASSTHROUGH[argv[0]](argv[1:])
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        # A spec mistake: every problem with its place, no traceback. Internal bugs keep theirs.
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        writes = args.command in WRITING
        print(f"{len(exc.problems)} problem(s)" + ("; no file was changed" if writes else ""), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader left (`opdoc eval X | head`): not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# Commands that write files: their errors say that nothing was written.
WRITING = {"build", "new", "schema", "export"}


def entry() -> None:
    code = main()
    if sys.argv[1:2] == ["build"]:
        # A build leaves millions of sympy objects behind, and freeing them one by one at exit took
        # 0.3 s (as long as importing sympy): its files are written and closed, so leave at once.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        os._exit(code)
    raise SystemExit(code)
