"""Paths and the golden-file comparison shared by opdoc's own tests (a unique name: several test folders have a conftest)."""

import signal
from contextlib import contextmanager
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


# The released checkpoint's parameter names and total size, copied into the model's spec folder as data
# (model.safetensors.index.json of deepseek-ai/DeepSeek-OCR).
WEIGHT_INDEX = ROOT / "specs" / "deepseek_ocr" / "facts" / "model.safetensors.index.json"


def load_weight_index() -> dict:
    """The checkpoint's weight index, as the repository holds it."""
    import json

    return json.loads(WEIGHT_INDEX.read_text(encoding="utf-8"))


def keys_under(index: dict, prefix: str) -> set[str]:
    """Parameter names of the checkpoint under `prefix`, with the prefix removed."""
    return {k[len(prefix):] for k in index["weight_map"] if k.startswith(prefix)}


@contextmanager
def hang_guard(seconds: int, what: str = "still running"):
    """Fail with TimeoutError if the block runs past `seconds` (a guard against hangs, not a timer)."""
    def expire(*_):
        raise TimeoutError(f"{what} after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def parameter_names(evaluator, op: str, *, with_children: bool = False, variant: str | None = None) -> set[str]:
    """The parameter tensors an op's spec lists (its own; with_children: also each child's, under the
    child's name, as torch's named_parameters gives them), in `variant` (default: the op's first)."""
    from opdoc.spec import in_variant

    spec = evaluator.catalog.specs[op].spec
    variant = variant or next(iter(spec.variants), None)
    names = {t.name for t in spec.tensors if t.role == "parameter" and (not with_children or in_variant(t.only, variant))}
    if with_children:
        for child in spec.children:
            if in_variant(child.only, variant):
                names |= {f"{child.name}.{name}" for name in
                          parameter_names(evaluator, child.op, with_children=True, variant=child.variant)}
    return names
