"""Counts for issue 9, printed: hostile formulas, broken specs and killed builds.

    .venv/bin/python tests/hostile/bench_hostile.py [--formulas N] [--no-kills]

Hostile formulas (deterministic, seed 9): code payloads, nesting, towers of powers, hidden and
lookalike characters, non-finite values and random text. Each is parsed with a 5 s guard and
counted as refused, parsed, executed (a payload's side effect was seen), traceback (any exception
but FormulaError) or over 1 s. Broken specs: the corpus of broken_specs.py, each built once.
Kills: the writer killed at every file-system call, as in test_crash.py.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import io
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1])]

import sympy  # noqa: E402

from opdoc.formula import FormulaError, parse_formula  # noqa: E402

SYMBOLS = {name: sympy.Symbol(name, positive=True) for name in ("B", "S", "h", "d_ff")}
CANARY = "__opdoc_canary__"
PAYLOADS = [f"__import__('builtins').__dict__.setdefault('{CANARY}', []).append(1)",
            f"exec(\"__import__('builtins').{CANARY} = 1\")", f"eval(\"setattr(__import__('builtins'), '{CANARY}', 1)\")",
            f"[setattr(__import__('builtins'), '{CANARY}', 1) for _ in [0]]",
            f"(lambda: setattr(__import__('builtins'), '{CANARY}', 1))()",
            f"globals().update({CANARY}=1)", f"S.__class__.__init__.__globals__.update({CANARY}=1)",
            f"f'{{setattr(__import__(\"builtins\"), \"{CANARY}\", 1)}}'",
            f"breakpoint() or setattr(__import__('builtins'), '{CANARY}', 1)"]
WRAPPERS = ["-{}", "({})", "{}//2", "floor({})", "sqrt({})", "max(S, {})", "log2({})", "{}**2", "({}+h)", "1/({})"]
HIDDEN = ["\ud800", "\udfff", "\u202e", "\u202d", "\u2066", "\u2069", "\u200b", "\x00", "\x1b", "\u2028", "\ufeff"]
LOOKALIKES = {"S": "Ｓ𝐒𝑆ˢ", "B": "Ｂ𝐁ℬ", "h": "ｈℎ𝐡ₕ", "d": "ｄ𝐝ⅆ", "f": "ｆﬀ"}
VALID = ["2*B*S*h*d_ff", "max(S, h) + 1", "S**2 * h", "ceil(log2(B*S))", "B*S*h // 2", "sqrt(h) * S"]


def hostile_formulas(count: int, rng: random.Random):
    kinds = ["payload", "nesting", "tower", "hidden", "lookalike", "value", "ascii", "unicode"]
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind == "payload":
            text = rng.choice(["", "2*", "S + ", "(", "max(S, "]) + rng.choice(PAYLOADS) + rng.choice(["", "*h", ")", ", h)"])
        elif kind == "nesting":
            text = rng.choice(list(SYMBOLS))
            for _ in range(rng.randint(1, 700)):
                text = rng.choice(WRAPPERS).format(text)
        elif kind == "tower":
            text = rng.choice(["9", "S", "(S+h)", "2", "0.5", "10**21", "(B+S+h+d_ff)"])
            for _ in range(rng.randint(1, 6)):
                text = f"({text})**{rng.randint(-70, 70)}"
        elif kind == "hidden":
            valid = rng.choice(VALID)
            at = rng.randint(0, len(valid))
            text = valid[:at] + rng.choice(HIDDEN) + valid[at:]
        elif kind == "lookalike":
            valid = rng.choice(VALID)
            spots = [i for i, c in enumerate(valid) if c in LOOKALIKES]
            at = rng.choice(spots)
            text = valid[:at] + rng.choice(LOOKALIKES[valid[at]]) + valid[at + 1:]
        elif kind == "value":
            text = rng.choice(["S/0", "S/(h-h)", "sqrt(-1)", "sqrt(-S)", "log2(0)", "log2(-2)", "max(x, 0/0)",
                               "0**-1", "1e-400*S", "1e400", "9" * rng.randint(20, 1990), float("nan"), float("inf"),
                               "((((9)**64)**64)**64)**64", "S # <img src=x onerror=alert(1)>", "S**-1"])
        elif kind == "ascii":
            text = "".join(rng.choice("SBhd_f0123456789+-*/().,% <>#'\"[]{}:;=!~^&|@`\\ \n") for _ in range(rng.randint(0, 80)))
        else:
            text = "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(rng.randint(0, 40)))
        yield kind, text


class Expired(Exception):
    pass


def _expire(*_):
    raise Expired


def formulas(count: int) -> dict[str, int]:
    counts = dict(tried=0, executed=0, tracebacks=0, over_1s=0, refused=0, parsed=0)
    signal.signal(signal.SIGALRM, _expire)
    slowest = 0.0
    for kind, text in hostile_formulas(count, random.Random(9)):
        counts["tried"] += 1
        start = time.perf_counter()
        signal.alarm(5)
        try:
            parse_formula(text, SYMBOLS)
            counts["parsed"] += 1
        except FormulaError:
            counts["refused"] += 1
        except Expired:
            counts["over_1s"] += 1
            counts["tracebacks"] += 0
            continue
        except BaseException as exc:  # noqa: BLE001 - counted
            counts["tracebacks"] += 1
            if counts["tracebacks"] <= 3:
                print(f"  traceback ({kind}): {type(exc).__name__}: {str(exc)[:100]}", file=sys.stderr)
        finally:
            signal.alarm(0)
        elapsed = time.perf_counter() - start
        slowest = max(slowest, elapsed)
        counts["over_1s"] += elapsed > 1.0
        if hasattr(builtins, CANARY):
            counts["executed"] += 1
            delattr(builtins, CANARY)
    counts["slowest_ms"] = round(slowest * 1000, 1)
    return counts


def broken_specs() -> dict[str, int]:
    import re

    from broken_specs import CASES, WHOLE_FILE
    from hostile_specs import tiny_copy
    from opdoc.cli import main

    counts = dict(tried=0, located=0, tracebacks=0, over_1s=0)
    slowest = 0.0
    for name, (apply, _) in sorted(CASES.items()):
        counts["tried"] += 1
        root = Path(tempfile.mkdtemp(prefix="opdoc-broken-"))
        tiny_copy(root)
        apply(root)
        stderr, sys.stderr = sys.stderr, _Capture()
        start = time.perf_counter()
        try:
            code = main(["build", "--root", str(root), "--site", str(root / "site")])
        except BaseException:  # noqa: BLE001 - counted
            code = None
            stderr.write(f"  traceback ({name}): {traceback.format_exc().splitlines()[-1][:120]}\n")
        finally:
            output, sys.stderr = sys.stderr.text, stderr
        elapsed = time.perf_counter() - start
        slowest = max(slowest, elapsed)
        counts["over_1s"] += elapsed > 1.0
        if code is None:
            counts["tracebacks"] += 1
            continue
        lines = [line for line in output.splitlines() if not re.match(r"\d+ problem\(s\)", line)]
        line_ok = all(re.match(r"^[^:\n]+:[1-9]\d*: \S", line) for line in lines)
        if code == 1 and lines and (line_ok or name in WHOLE_FILE):
            counts["located"] += 1
        else:
            print(f"  not located ({name}): exit {code}: {lines[:2]}", file=sys.stderr)
    counts["slowest_ms"] = round(slowest * 1000)
    return counts


class _Capture:
    def __init__(self):
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def kills() -> dict[str, int]:
    from types import SimpleNamespace

    from test_crash import change_specs, knowledge_base, restore, snapshot, write_killed_at
    from hostile_specs import tiny_copy
    from opdoc.write import differences, recover, write

    quiet = SimpleNamespace(readouterr=lambda: None)
    base = Path(tempfile.mkdtemp(prefix="opdoc-kills-"))
    old_root, new_root = tiny_copy(base / "old"), tiny_copy(base / "new")
    change_specs(new_root)
    with contextlib.redirect_stdout(io.StringIO()):
        versions = [knowledge_base(old_root, quiet), knowledge_base(new_root, quiet)]
    counts = dict(tried=0, mixed_after_recovery=0, mixed_called_up_to_date=0)
    for (old, old_tree), (new, new_tree) in (versions, versions[::-1]):
        site = base / "site"
        for step in range(1, 1000):
            restore(site, old_tree)
            killed = write_killed_at(step, new, site)
            tree = snapshot(site)
            for rendered, whole in ((new, new_tree), (old, old_tree)):
                if differences(rendered, site) == [] and tree != whole:
                    counts["mixed_called_up_to_date"] += 1
            recover(site)
            counts["mixed_after_recovery"] += snapshot(site) not in (old_tree, new_tree)
            write(new, site)
            if not killed:
                break
            counts["tried"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--formulas", type=int, default=21_000)
    parser.add_argument("--no-kills", action="store_true", help="skip the kills (e.g. for an opdoc without opdoc.write)")
    args = parser.parse_args()
    print("hostile formulas:", formulas(args.formulas), flush=True)
    print("broken specs:", broken_specs(), flush=True)
    if not args.no_kills:
        print("kills:", kills(), flush=True)


if __name__ == "__main__":
    main()
