"""Prose placeholders: `{{name}}`, `{{name@example}}`, `{{name#variant}}` stand for computed values.

`name` is a dimension symbol (its value, e.g. {{h}} -> 1280) or a quantity (e.g. {{tensor_flops}} ->
'430.84 GFLOPs'). Prose never types a magnitude itself; the loader rejects one.
"""

from __future__ import annotations

import re

from opdoc.formula import suggest

from opdoc.registry import UNITS as QUANTITY_UNITS  # noqa: E402 - quantity -> unit used to print it

_SYNTAX = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:@(?P<example>\w+))?(?:#(?P<variant>\w+))?")


def parse_placeholder(text: str) -> tuple[str, str | None, str | None] | None:
    match = _SYNTAX.fullmatch(text)
    return (match["name"], match["example"], match["variant"]) if match else None


def check_placeholder(text: str, spec, symbols) -> str | None:
    """An error message for a placeholder the renderer could not fill, or None when it is fine."""
    parsed = parse_placeholder(text)
    if parsed is None:
        return f"placeholder '{{{{{text}}}}}' is malformed; write {{{{name}}}}, {{{{name@example}}}} or {{{{name#variant}}}}"
    name, example, variant = parsed
    known = sorted([*symbols, *QUANTITY_UNITS])
    if name not in symbols and name not in QUANTITY_UNITS:
        return f"placeholder '{{{{{text}}}}}' names nothing known{suggest(name, known)}"
    if example is not None and example not in spec.examples:
        return f"placeholder '{{{{{text}}}}}': this op has no example '{example}'{suggest(example, spec.examples)}"
    if variant is not None and variant not in spec.variants:
        return f"placeholder '{{{{{text}}}}}': this op has no variant '{variant}'{suggest(variant, list(spec.variants))}"
    return None
