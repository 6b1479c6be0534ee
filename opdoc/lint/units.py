"""Numbers as op-docs write them: digits, magnitude prefixes, units, data types.

Every unit is a scale into base units (FLOPs, bytes, parameters, seconds) and a *family*; the audit
compares values in base units, so ``26,843,545,600 FLOPs`` and ``26.8 GFLOPs`` are the same number
and ``27 µs`` is ``2.7e-5``.  A decimal prefix on bytes or on a bare count may also be meant in binary
(``1M`` for 2^20, ``8 MB`` for 8 MiB); ``binary`` is that alternative scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["DTYPE_BYTES", "DTYPE_PATTERN", "UNITS", "Unit", "dtype_bytes"]


@dataclass(frozen=True)
class Unit:
    scale: Fraction
    family: str  # "flops", "bytes", "params", "count", "time", "rate", "ratio"
    label: str  # how a value in this unit is printed
    binary: Fraction | None = None  # the scale if the prefix is read as a power of 1024
    prefixed: bool = False  # carries a magnitude prefix: a whole number shown is still rounded


_PREFIXES = {"K": 1, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_TIME = {"s": 1, "sec": 1, "secs": 1, "seconds": 1, "second": 1, "ms": Fraction(1, 10**3),
         "us": Fraction(1, 10**6), "µs": Fraction(1, 10**6), "μs": Fraction(1, 10**6), "ns": Fraction(1, 10**9)}


def _build() -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    for prefix, power in [("", 0), *_PREFIXES.items()]:
        scale = Fraction(1000) ** power
        upper = prefix.upper()
        if prefix and prefix != "P":  # "2 P" is more often the symbol P than peta
            units[prefix] = Unit(scale, "count", upper, Fraction(1024) ** power, True)
        for flop in ("FLOP", "FLOPs", "FLOPS", "flops", "Flops", "flop"):
            units[prefix + flop] = Unit(scale, "flops", upper + "FLOPs", None, bool(prefix))
            units[prefix + flop + "/s"] = Unit(scale, "rate", upper + "FLOP/s", None, bool(prefix))
        if prefix:
            units[prefix + "B"] = Unit(scale, "bytes", upper + "B", Fraction(1024) ** power, True)
            units[upper + "iB"] = Unit(Fraction(1024) ** power, "bytes", upper + "iB", None, True)
            units[prefix + "B/s"] = Unit(scale, "rate", upper + "B/s", None, True)
            units[upper + "iB/s"] = Unit(Fraction(1024) ** power, "rate", upper + "iB/s", None, True)
    for word in ("bytes", "byte", "B"):
        units[word] = Unit(Fraction(1), "bytes", "bytes" if word != "B" else "B")
    for word in ("params", "parameters", "param", "parameter"):
        units[word] = Unit(Fraction(1), "params", word)
    for word in ("elements", "element", "tokens", "token"):
        units[word] = Unit(Fraction(1), "count", word)
    for word, scale in _TIME.items():
        units[word] = Unit(Fraction(scale), "time", word, None, scale != 1)
    units["%"] = Unit(Fraction(1, 100), "ratio", "%")
    return units


UNITS: dict[str, Unit] = _build()
RATIO = Unit(Fraction(1), "ratio", "x")  # "64x", a number glued to an x
BILLION = Unit(Fraction(10**9), "count", "B", None, True)  # "7B parameters"

# Bytes per element of the data types an op-doc names.
DTYPE_BYTES: dict[str, Fraction] = {}
for _names, _size in (
    ("bf16 bfloat16 fp16 float16 half", 2),
    ("fp32 float32 float tf32 int32", 4),
    ("fp64 float64 double int64 long", 8),
    ("fp8 float8 e4m3 e5m2 int8 uint8", 1),
    ("int4 fp4 nf4", Fraction(1, 2)),
):
    for _name in _names.split():
        DTYPE_BYTES[_name] = Fraction(_size)
DTYPE_PATTERN = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(DTYPE_BYTES, key=len, reverse=True)) + r")(?![A-Za-z0-9_])",
                           re.IGNORECASE)
_AMBIGUOUS_DTYPES = {"float", "half", "double", "long"}  # English words too: only as a dtype in context


def dtype_bytes(text: str) -> set[Fraction]:
    """Element sizes of the data types ``text`` names (``bf16``, ``fp32`` ...), ignoring plain words."""
    sizes = set()
    for match in DTYPE_PATTERN.finditer(text):
        name = match.group(1)
        if name.lower() in _AMBIGUOUS_DTYPES and name != name.lower():
            continue
        if name in _AMBIGUOUS_DTYPES and not re.search(r"torch\.|dtype", text):
            continue
        sizes.add(DTYPE_BYTES[name.lower()])
    return sizes
