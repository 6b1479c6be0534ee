"""The index's coverage table and the module list it follows (specs/<model>/coverage/modules.yaml).

The list is checked against two independent sources where they exist: the project's original
progress list of modules (seed 001) and the vendor files themselves (which names each defines, and
whether as a class or a function). Both live in a `shared` folder beside the repository (or at
OPDOC_SHARED); without it those tests skip, and the product builds as before.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opdoc.coverage import load_modules
from opdoc.pipeline import Paths, load
from opdoc_testing import ROOT

TOY = ROOT / "tests" / "fixtures" / "toy"
SHARED = Path(os.environ.get("OPDOC_SHARED") or ROOT.parent / "shared")
VENDOR = SHARED / "upstream" / "deepseek-ocr"


@pytest.fixture(scope="module")
def catalog():
    return load(Paths(root=ROOT))[0]


@pytest.fixture(scope="module")
def modules(catalog):
    listed = load_modules(catalog)
    assert listed, "specs/deepseek_ocr/coverage/modules.yaml is missing or empty"
    return listed


def _vendor_definitions() -> dict[str, dict[str, str]]:
    """{file name: {top-level name: 'class' | 'function'}} of every vendor Python file."""
    found = {}
    for path in sorted(VENDOR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.name] = {node.name: "class" if isinstance(node, ast.ClassDef) else "function"
                            for node in tree.body if isinstance(node, ast.ClassDef | ast.FunctionDef)}
    return found


def _seed_names() -> set[str]:
    """Every bold name in the progress list (`**DeepseekV2MLP**`, `**op-DeepseekOCRModel.md**`)."""
    seeds = sorted((SHARED / "seeds").glob("001_*.txt"))
    if not seeds:
        pytest.skip(f"no seed 001 under {SHARED / 'seeds'}")
    text = seeds[0].read_text(encoding="utf-8")
    return set(re.findall(r"\*\*(?:op-)?([A-Za-z_]\w*)(?:\.md)?\*\*", text))


needs_shared = pytest.mark.skipif(not VENDOR.is_dir(), reason=f"no vendor checkout at {VENDOR}")


@needs_shared
def test_the_list_holds_exactly_the_progress_list_modules_the_vendor_files_define(modules):
    defined = {name for names in _vendor_definitions().values() for name in names}
    expected = _seed_names() & defined
    # The progress list names 39 modules: 7 done, 12 language-model, 17 vision (get_abs_pos and
    # get_abs_pos_sam under one heading), 3 preprocessing; all are defined in the vendor files.
    assert len(expected) == 39
    listed = {module.name for module in modules if module.progress}
    assert listed == expected, (f"missing from the list: {sorted(expected - listed)}; "
                                f"marked progress but not in it: {sorted(listed - expected)}")


@needs_shared
def test_each_listed_vendor_module_is_defined_in_its_file_as_its_kind(modules):
    definitions = _vendor_definitions()
    for module in modules:
        if module.file.startswith(("transformers/", "torch/")):
            continue  # transformers' Llama classes and torch's own: not part of the vendor checkout
        assert module.file in definitions, f"{module.name}: no vendor file {module.file}"
        defined = module.vendor_name or module.name
        assert definitions[module.file].get(defined) == module.kind, (
            f"{module.name}: {module.file} defines {defined} as {definitions[module.file].get(defined)}, "
            f"the list says {module.kind}")


def test_every_documented_op_is_in_the_list(catalog, modules):
    listed = {module.name for module in modules}
    assert not set(catalog.specs) - listed, f"add to modules.yaml: {sorted(set(catalog.specs) - listed)}"


def test_the_list_records_which_modules_ocr_runs(modules):
    runs = {module.name: module.runs for module in modules}
    # config.json sets use_mla: false, so the MLA attention and its rotary classes are never built;
    # LlamaFlashAttention2 is the attention it loads; VitModel builds LayerNormfp32 only under fp32norm.
    assert not runs["DeepseekV2Attention"] and not runs["DeepseekV2YarnRotaryEmbedding"]
    assert runs["LlamaFlashAttention2"] and runs["ImageEncoderViT"]
    assert not runs["LayerNormfp32"]


def _build(root: Path) -> subprocess.CompletedProcess:
    # A process per build: each toy copy imports its own toy_model package.
    return subprocess.run([sys.executable, "-m", "opdoc", "build", "--root", str(root), "--site", str(root / "site")],
                          capture_output=True, text=True, cwd=ROOT)


def _toy_with(tmp_path: Path, modules_yaml: str) -> Path:
    shutil.copytree(TOY, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / "specs" / "toy" / "coverage"
    folder.mkdir()
    (folder / "modules.yaml").write_text(modules_yaml, encoding="utf-8")
    return tmp_path


def test_the_index_shows_documented_and_not_yet_documented_modules(tmp_path):
    root = _toy_with(tmp_path, (
        "modules:\n"
        "  - {name: ToyProjection, file: toy.py, kind: class, family: projection, runs: true}\n"
        "  - {name: ToyNorm, file: toy.py, kind: class, family: projection, runs: false}\n"))
    assert _build(root).returncode == 0
    index = (root / "site" / "index.md").read_text(encoding="utf-8")
    assert "| [ToyProjection](op-ToyProjection.md) | Projections | `toy.py` | class | yes | documented |" in index
    assert "| ToyNorm | Projections | `toy.py` | class | no | not yet |" in index
    assert "1 of the 2 modules listed" in index


def test_without_a_list_the_index_has_no_coverage_table(tmp_path):
    shutil.copytree(TOY, tmp_path, dirs_exist_ok=True)
    assert _build(tmp_path).returncode == 0
    assert "## Coverage" not in (tmp_path / "site" / "index.md").read_text(encoding="utf-8")


def test_a_bad_entry_is_named_by_file_line_and_field(tmp_path):
    root = _toy_with(tmp_path, (
        "modules:\n"
        "  - {name: ToyProjection, file: toy.py, kind: class, family: projection, runs: true}\n"
        "  - {name: ToyNorm, file: toy.py, kind: class, family: vision, runs: false}\n"))
    result = _build(root)
    assert result.returncode == 1
    err = result.stderr
    assert "specs/toy/coverage/modules.yaml:3: modules.1.family: unknown family 'vision'" in err
    assert "Traceback" not in err
