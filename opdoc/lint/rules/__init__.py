"""The lint rules; importing this package fills :data:`opdoc.lint.registry.RULES`."""

from . import (  # noqa: F401  (imported for their registrations)
    accuracy,
    code,
    constructor,
    costs,
    diagrams,
    files,
    formulas,
    naming,
    sections,
    shapes,
    spec_compare,
    traceability,
)
