"""A corpus of broken and hostile specs: each is the tiny fixture with one thing wrong.

`CASES` maps a name to (what it breaks, expected words of the message). Each must make `opdoc build`
exit 1 with located problems (`path:line: field: message`) and no traceback, quickly. Used by
test_broken.py and by bench_hostile.py, which prints the counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from hostile_specs import SPECS

RMS = "DeepseekV2RMSNorm.yaml"
MLP = "DeepseekV2MLP.yaml"
MODEL = "model.yaml"


def replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / SPECS / name
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return apply


def flops(formula: str) -> Callable[[Path], None]:
    """The RMSNorm's first operation with another FLOP formula (YAML-quoted as given)."""
    return replace(RMS, "flops: B*S*h,", f"flops: {formula},")


def write_bytes(name: str, content: bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / SPECS / name).write_bytes(content)
    return apply


def symlink_loop(root: Path) -> None:
    (root / SPECS / "Loop.yaml").symlink_to("Loop.yaml")


def gpu_report(content: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / "site" / "measured").mkdir(parents=True, exist_ok=True)
        (root / "site" / "measured" / "cuda-report.json").write_text(content, encoding="utf-8")
    return apply


GOOD_RESULT = {"op": "DeepseekV2RMSNorm", "example": "prefill", "kernel": "fused", "point": "B=1 S=16",
               "peak_bytes": 1024, "formula_peak_bytes": 768, "median_seconds": 1e-5, "flops_per_second": 3e7}


def report(**changes) -> str:
    result = {**GOOD_RESULT, **changes.pop("result", {})}
    return json.dumps({"device": "GPU", "torch": "2.13.0", "results": [result], **changes}, indent=1)


ALIAS_BOMB = ("  - {name: out, role: output, shape: [B, S, h]}\n"
              "anchors:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
              + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)))

# name -> (how to break the fixture, a regular expression the message must match)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    # formulas: nesting, sizes, values that are not finite real numbers
    "unary minus 600 deep": (flops('"' + "-" * 600 + 'S"'), "more than 500 parts"),
    "unary minus 60 deep": (flops('"' + "-" * 60 + 'S"'), "nested more than"),
    "floor division 163 deep": (flops('"S' + "//2" * 163 + '"'), "nested more than"),
    "parentheses 250 deep": (flops('"' + "(" * 250 + "S" + ")" * 250 + '"'), "not a formula"),
    "formula of 3000 characters": (flops('"' + "+".join(["S"] * 1500) + '"'), "characters long"),
    "sum of 600 terms": (flops('"' + "+".join(["S"] * 600) + '"'), "parts"),
    "sum of 101 terms": (flops('"' + "+".join(["S"] * 101) + '"'), "terms"),
    "tower of powers": (flops('"((((9)**64)**64)**64)**64"'), "digits"),
    "power of a power of a sum": (flops('"((B+S)**8)**8"'), "degree"),
    "power of a long sum": (flops('"(B+S+h+d_ff)**12"'), "terms"),
    "closed form as a power of powers": (replace(RMS, "cuda_flops: 3*B*S*h", "cuda_flops: ((S**8)**8)**8"), "degree"),
    "exponent not a literal": (flops('"S**h"'), "exponent must be a whole number"),
    "division by zero": (flops('"S/0"'), "divides by zero"),
    "division by zero in disguise": (flops('"S/(h-h)"'), "divides by zero"),
    "zero to a negative power": (flops('"0**-1*S"'), "not a finite real number"),
    "square root of -1": (flops('"sqrt(-1)*S"'), "not a finite real number"),
    "square root of a negative symbol": (flops('"sqrt(-S)"'), "not a finite real number"),
    "log2 of 0": (flops('"log2(0)*S"'), "not a finite real number"),
    "max with 0/0": (flops('"max(S, 0/0)"'), "divides by zero"),
    "literal of 1500 digits": (flops('"' + "1" * 1500 + '"'), "larger than"),
    "literal 1e-400 in a formula": (flops('"1e-400*S"'), "smaller than"),
    "literal 1e400 in a formula": (flops('"1e400*S"'), "larger than"),
    "nan as a formula": (flops(".nan"), "not finite"),
    "infinity as a formula": (flops(".inf"), "not finite"),
    "YAML float that rounds to zero": (flops("1.0e-400"), "too large or too small"),
    "YAML integer past the digit limit": (flops("9" * 5000), "cannot read this value"),
    "boolean as a formula": (flops("true"), "valid"),
    "comment in a formula": (flops('"B*S*h # <img src=x onerror=alert(1)>"'), "comment"),
    "code in a formula": (flops("\"__import__('os').system('true')\""), "cannot be called"),
    # characters
    "fullwidth S in a formula": (flops('"B*Ｓ*h"'), "FULLWIDTH LATIN CAPITAL LETTER S"),
    "Planck constant for h": (flops('"B*S*ℎ"'), "PLANCK CONSTANT"),
    "ligature ff": (replace(MLP, "2*B*S*h*d_ff, reads", "2*B*S*h*d_ﬀ, reads"), "LATIN SMALL LIGATURE FF"),
    "bidi override in a formula": (flops('"B*S\\u202e*h"'), "RIGHT-TO-LEFT OVERRIDE"),
    "bidi override typed into prose": (replace(RMS, "Bandwidth bound", "Bandwidth \u202ebound"), "RIGHT-TO-LEFT OVERRIDE"),
    # (libyaml refuses a surrogate escape itself; Python's YAML reader leaves it to opdoc)
    "lone surrogate in a formula": (flops('"S*\\ud800"'), "surrogate|Unicode character escape"),
    "lone surrogate in a title": (replace(MODEL, "title: Tiny\n", 'title: "Tiny \\udc80"\n'),
                                  "surrogate|Unicode character escape"),
    "NUL character in prose": (replace(RMS, "performance: Bandwidth bound; peak {{peak}}.",
                                       'performance: "Bandwidth\\0 bound; peak {{peak}}."'), "control character"),
    "lookalike in a key": (replace(MODEL, "bind: {B: 1, S: 16}", "bind: {B: 1, Ｓ: 16}"), "FULLWIDTH"),
    "invalid UTF-8": (write_bytes(RMS, b"op: DeepseekV2RMSNorm\nsummary: \xff\xfe\n"), "cannot read the file"),
    # YAML structure and size
    "unhashable key": (replace(RMS, "    eps: {description: added before the square root}",
                               "    eps: {description: added before the square root}\n    ? [a, b]\n    : {description: x}"),
                       "a key must be a plain name"),
    "10,000 nested [": (replace(RMS, "  - {name: out, role: output, shape: [B, S, h]}",
                                "  - {name: out, role: output, shape: [B, S, h], note: " + "[" * 10_000 + "]" * 10_000 + "}"),
                        "nested more than"),
    "alias bomb": (replace(RMS, "  - {name: out, role: output, shape: [B, S, h]}\n", ALIAS_BOMB + "tensors_end: 1\n"),
                   "expands to more than"),
    "alias that contains itself": (replace(RMS, "summary:", "loop: &l [*l]\nsummary:"), "nested more than"),
    "duplicate key": (replace(RMS, "scope: language", "scope: language\nscope: language"), "duplicate key"),
    "file of 2 MB": (replace(RMS, "summary:", "padding: '" + "x" * 2_000_000 + "'\nsummary:"), "larger than"),
    "empty file": (write_bytes(RMS, b""), "the file is empty"),
    "unknown tag": (replace(RMS, "summary: ", "summary: !python/object "), "YAML"),
    "binary where a formula belongs": (flops("!!binary aGVsbG8="), "valid string"),
    "symlink loop": (symlink_loop, "cannot read the file"),
    # references that rendering would trip over
    "participant id with markup": (replace(RMS, "{id: X, label: x, tensor: x}", "{id: 'X<img src=x>', label: x, tensor: x}"),
                                   "participant id"),
    "participant without an id": (replace(RMS, "{id: X, label: x, tensor: x}", "{label: x, tensor: x}"), "participant id"),
    "participant of an unknown tensor": (replace(RMS, "{id: X, label: x, tensor: x}", "{id: X, label: x, tensor: nope}"),
                                         "no tensor named 'nope'"),
    # the model's bindings
    "B: 1/0 in a model bind": (replace(MODEL, "bind: {B: 1, S: 16}", "bind: {B: 1/0, S: 16}"), "divides by zero"),
    "sqrt(-1) in a scope bind": (replace(MODEL, "bind: {h: hidden_size, d_ff: intermediate_size}",
                                         "bind: {h: sqrt(-1), d_ff: intermediate_size}"), "not a finite real number"),
    "nan in a model config": (replace(MODEL, "rms_norm_eps: 1.0e-6", "rms_norm_eps: .nan"), "not finite"),
    # the committed GPU report
    "GPU report that is not JSON": (gpu_report("{\n  \"device\": \"GPU\",\n"), "not valid JSON"),
    "GPU report whose results are a number": (gpu_report(report(results=5)), "valid list"),
    "GPU result without its figures": (gpu_report(report(result={"peak_bytes": None})), "needs peak_bytes"),
    "GPU result with NaN seconds": (gpu_report(report(result={"median_seconds": float("nan")})), "finite"),
    "GPU result with a negative peak": (gpu_report(report(result={"peak_bytes": -1})), "greater than or equal to 0"),
    "GPU report without a device": (gpu_report(json.dumps({"torch": "2", "results": []})), "device"),
}

# Cases whose problem concerns a whole file, which has no line to point at.
WHOLE_FILE = {"invalid UTF-8", "symlink loop", "file of 2 MB", "GPU report without a device"}

if not hasattr(os, "symlink"):
    CASES.pop("symlink loop")
