"""Paths and the golden-file comparison shared by opdoc's own tests (a unique name: several test folders have a conftest)."""

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
