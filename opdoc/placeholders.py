"""Prose placeholders: `{{name}}`, `{{name@example}}`, `{{name#variant}}` stand for computed values.

`name` is a dimension symbol (its value, e.g. {{h}} -> 1280) or a quantity (e.g. {{tensor_flops}} ->
'430.84 GFLOPs'). A quantity may name another op of the same scope, `{{Op.quantity@example#variant}}`,
so a page can set its numbers beside a sibling's. Prose never types a magnitude itself; the loader
rejects one.
"""

from __future__ import annotations

import re

from opdoc.formula import suggest

from opdoc.registry import UNITS as QUANTITY_UNITS  # noqa: E402 - quantity -> unit used to print it

_SYNTAX = re.compile(r"(?:(?P<op>[A-Za-z_]\w*)\.)?(?P<name>[A-Za-z_]\w*)(?:@(?P<example>\w+))?(?:#(?P<variant>\w+))?")


def parse_placeholder(text: str) -> tuple[str, str | None, str | None] | None:
    """(name, example, variant) of a placeholder of this op (see `placeholder_op` for another op's)."""
    match = _SYNTAX.fullmatch(text)
    return (match["name"], match["example"], match["variant"]) if match else None


def placeholder_op(text: str) -> str | None:
    """The other op a placeholder names (`Op.quantity`), or None for this op's own values."""
    match = _SYNTAX.fullmatch(text)
    return match["op"] if match else None


def check_placeholder(text: str, spec, symbols, specs: dict | None = None) -> str | None:
    """An error message for a placeholder the renderer could not fill, or None when it is fine.

    `specs` (op name -> OpSpec) resolves `Op.quantity` placeholders; they must name an op of the same
    scope, and a quantity (a symbol is the scope's anyway)."""
    parsed = parse_placeholder(text)
    if parsed is None:
        return f"placeholder '{{{{{text}}}}}' is malformed; write {{{{name}}}}, {{{{name@example}}}} or {{{{name#variant}}}}"
    name, example, variant = parsed
    other = placeholder_op(text)
    if other is not None:
        if specs is None or other not in specs:
            return f"placeholder '{{{{{text}}}}}' names no op '{other}'{suggest(other, sorted(specs or {}))}"
        if specs[other].scope != spec.scope:
            return (f"placeholder '{{{{{text}}}}}': op '{other}' is in scope '{specs[other].scope}', not "
                    f"'{spec.scope}'; only ops of the same scope share examples")
        if name not in QUANTITY_UNITS:
            return f"placeholder '{{{{{text}}}}}': '{name}' is not a quantity{suggest(name, sorted(QUANTITY_UNITS))}"
        spec = specs[other]
    known = sorted([*symbols, *QUANTITY_UNITS])
    if name not in symbols and name not in QUANTITY_UNITS:
        return f"placeholder '{{{{{text}}}}}' names nothing known{suggest(name, known)}"
    if example is not None and example not in spec.examples:
        return f"placeholder '{{{{{text}}}}}': this op has no example '{example}'{suggest(example, spec.examples)}"
    if variant is not None and variant not in spec.variants:
        return f"placeholder '{{{{{text}}}}}': this op has no variant '{variant}'{suggest(variant, list(spec.variants))}"
    return None
