"""JSON Schema of the spec files, exported so editors can complete and validate specs as they are typed."""

from __future__ import annotations

import json
from pathlib import Path

from opdoc.spec import ModelConfig, OpSpec, SpecError, SpecProblem

SCHEMAS = {"op.schema.json": OpSpec, "model.schema.json": ModelConfig}


def schema_texts() -> dict[str, str]:
    texts = {}
    for name, model in SCHEMAS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        texts[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return texts


def write_schemas(folder: Path, check: bool = False) -> list[str]:
    """Write the schemas (or, with check, fail when the committed ones are stale)."""
    stale = []
    for name, text in schema_texts().items():
        path = folder / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(SpecProblem(str(path), 0, "", "out of date; run `opdoc schema` and commit it"))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        raise SpecError(stale)
    return [str(folder / name) for name in SCHEMAS]
