"""Paths and the golden-file comparison shared by opdoc's own tests (a unique name: several test folders have a conftest)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny"
GOLDEN = ROOT / "tests" / "golden"


def assert_golden(path: Path, actual: str, update: bool) -> None:
    """Compare with a golden file, or rewrite it under --update-golden."""
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing; run: pytest {path.parent} --update-golden"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (f"{path.relative_to(ROOT)} differs from the output; if the change is intended, "
                                "refresh with: .venv/bin/python -m pytest tests/test_golden.py --update-golden")


# The released checkpoint's parameter names: ../shared beside the checkout (or shared/ inside it).
WEIGHT_INDEX = next(
    (p for p in (ROOT / "shared", ROOT.parent / "shared") if (p / "facts" / "deepseek-ocr-weight-index.json").exists()),
    ROOT.parent / "shared",
) / "facts" / "deepseek-ocr-weight-index.json"


def load_weight_index() -> dict:
    """The checkpoint's weight index; skips the calling test when the facts are not beside the checkout."""
    import json

    import pytest

    if not WEIGHT_INDEX.exists():
        message = f"{WEIGHT_INDEX} not present (the shared facts belong beside the checkout)"
        if os.environ.get("CI"):  # CI always has them: their absence is a broken set-up, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return json.loads(WEIGHT_INDEX.read_text(encoding="utf-8"))


def keys_under(index: dict, prefix: str) -> set[str]:
    """Parameter names of the checkpoint under `prefix`, with the prefix removed."""
    return {k[len(prefix):] for k in index["weight_map"] if k.startswith(prefix)}
