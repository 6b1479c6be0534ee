"""The index's coverage table: every module the knowledge base means to cover, documented or not.

The list is data, not code: `coverage/modules.yaml` in the model's spec folder names each module
(class or function), the vendor file that defines it, its family and whether the model's inference
runs it. A module with an op spec is "documented" and links to its page; one without is "not yet".
An op spec that the list forgets still shows (documented), so the table never hides a page. A model
folder without the file simply has no coverage table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from opdoc.catalog import Catalog
from opdoc.spec import SpecError, SpecProblem, read_yaml, validate

MODULES_FILE = Path("coverage") / "modules.yaml"


class Module(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    file: str
    kind: Literal["class", "function"]
    family: str
    runs: bool
    progress: bool = False
    # The name the file defines when the page covers it under another (opdoc's Activation page stands
    # for deepencoder.py's quick_gelu and the activations torch and transformers supply).
    vendor_name: str | None = None


class ModuleList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    modules: list[Module]


def modules_path(catalog: Catalog) -> Path:
    folder = catalog.model_dir or Path(catalog.root) / Path(catalog.model_path).parent
    return folder / MODULES_FILE


def load_modules(catalog: Catalog) -> list[Module] | None:
    """The model's module list, or None without one; bad entries are SpecErrors naming file and line."""
    path = modules_path(catalog)
    if not path.is_file():
        return None
    display = (Path(catalog.model_path).parent / MODULES_FILE).as_posix()
    located = read_yaml(path, display)
    listing = validate(located, ModuleList, display)
    problems, seen = [], set()
    for index, module in enumerate(listing.modules):
        line = located.line_of(("modules", index))
        if not module.name.isidentifier():
            problems.append(SpecProblem(display, line, f"modules.{index}.name",
                                        f"'{module.name}' is not a Python name; write the class or function name"))
        if module.name in seen:
            problems.append(SpecProblem(display, line, f"modules.{index}.name",
                                        f"'{module.name}' is listed twice; keep one entry"))
        seen.add(module.name)
        if module.family not in catalog.model.families:
            problems.append(SpecProblem(display, line, f"modules.{index}.family",
                                        f"unknown family '{module.family}'; model.yaml declares "
                                        + ", ".join(catalog.model.families)))
    if problems:
        raise SpecError(problems)
    return listing.modules


def coverage_rows(catalog: Catalog, modules: list[Module]) -> list[dict[str, object]]:
    """One row per module, in the families' order then by name; documented rows carry their op."""
    families = catalog.model.families
    rows = []
    for module in modules:
        documented = module.name in catalog.specs
        family = catalog.specs[module.name].spec.family if documented else module.family
        rows.append({"name": module.name, "family_key": family, "family": families[family],
                     "file": module.file, "kind": module.kind, "runs": "yes" if module.runs else "no",
                     "documented": documented})
    listed = {module.name for module in modules}
    for op, item in catalog.specs.items():
        if op not in listed:
            rows.append({"name": op, "family_key": item.spec.family, "family": families[item.spec.family],
                         "file": item.spec.upstream.file, "kind": "", "runs": "", "documented": True})
    order = list(families)
    return sorted(rows, key=lambda row: (order.index(row["family_key"]), row["name"].lower()))


def summary(rows: list[dict[str, object]]) -> dict[str, int]:
    """Counts for the sentence above the table."""
    runs = [row for row in rows if row["runs"] == "yes"]
    return {"modules": len(rows), "documented": sum(bool(row["documented"]) for row in rows),
            "runs": len(runs), "runs_documented": sum(bool(row["documented"]) for row in runs)}
