"""A second model, unrelated to DeepSeek-OCR, builds and checks with no change under opdoc/.

tests/fixtures/toy holds its model.yaml (families, symbols, a limit, check points), one spec, and its
own package toy_model (reference module and harness builder) beside the specs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from opdoc.cli import main as run
from opdoc_testing import ROOT

TOY = ROOT / "tests" / "fixtures" / "toy"


def test_the_toy_model_builds_from_its_own_folder(tmp_path, capsys):
    shutil.copytree(TOY, tmp_path, dirs_exist_ok=True)
    assert run(["build", "--root", str(tmp_path), "--site", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "op-ToyProjection.md").read_text(encoding="utf-8")
    # 2 × B × S × h × d_out at B=2, S=8, h=24, d_out=40: 2 × 2 × 8 × 24 × 40 = 30,720 FLOPs
    assert "30,720" in page
    # parameters h × d_out = 960, in float32: 3,840 bytes
    assert "960" in page and "3,840" in page and "fp32" in page
    assert "<!-- opdoc-family: projection | 0 | Projections -->" in page
    assert "upstream Toy projection model" in page and "DeepSeek" not in page


def test_the_toy_model_is_checked_against_its_own_module(tmp_path):
    """`opdoc check` imports toy_model.harness (found through package_path) and matches every quantity."""
    shutil.copytree(TOY, tmp_path, dirs_exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "opdoc", "check", "--root", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # 2 check points × 9 measured quantities, all exact
    assert "18 pass" in result.stdout and "all formulas match the modules" in result.stdout


def test_the_toy_model_has_its_own_limits(tmp_path, capsys):
    shutil.copytree(TOY, tmp_path, dirs_exist_ok=True)
    assert run(["eval", "ToyProjection", "--root", str(tmp_path), "--set", "S=65"]) == 1
    assert "S = 65 exceeds max_tokens = 64" in capsys.readouterr().err


def _code_strings(path) -> list[tuple[int, str]]:
    """Names and string constants of a module, docstrings left out (they may cite examples)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
    return found


def test_opdoc_holds_no_knowledge_of_either_model_outside_the_model_packages():
    """Model names appear in opdoc's code only inside opdoc/models/<model>/; templates name no model."""
    package = ROOT / "opdoc"
    offenders = []
    for path in package.rglob("*.py"):
        if "models" in path.relative_to(package).parts:
            continue
        for line, text in _code_strings(path):
            # Other model families may be named as vocabulary (the lint's "unlike Llama" hedges);
            # DeepSeek-OCR's own names and classes, and the toy model's, may not.
            if any(name in text.lower() for name in ("deepseek-ocr", "deepseek_ocr", "deepseekv2", "llamaattention",
                                                     "llamaflash", "toyprojection", "toy_model")):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:80]}")
    for path in (ROOT / "templates").glob("*.j2"):
        if any(name in path.read_text(encoding="utf-8").lower() for name in ("deepseek", "llamaattention")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_toy_model_needs_no_harness_module():
    """Its spec's `harness` block is all the checker needs to build and call the module."""
    assert not (TOY / "toy_model" / "harness.py").exists()


def test_a_harness_argument_is_a_checked_formula(tmp_path, capsys):
    shutil.copytree(TOY, tmp_path, dirs_exist_ok=True)
    spec = tmp_path / "specs" / "toy" / "ToyProjection.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("{hidden: h, out: d_out}", "{hidden: hh, out: d_out}"),
                    encoding="utf-8")
    assert run(["build", "--root", str(tmp_path), "--site", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert "ToyProjection.yaml:" in err and "harness.arguments.hidden: unknown symbol 'hh'" in err


def test_the_class_is_found_in_the_one_module_that_defines_it(tmp_path, capsys):
    """Without `implementation`, only a module that defines the op's name at its top level is parsed: a
    broken module beside it is never read as Python, and a docstring that merely shows the class is passed by."""
    shutil.copytree(TOY, tmp_path, dirs_exist_ok=True)
    package = tmp_path / "toy_model"
    (package / "aa_broken.py").write_text("def half(:\n", encoding="utf-8")  # a syntax error
    (package / "ab_mentions.py").write_text('"""How to write one:\n\nclass ToyProjection(nn.Module): ...\n"""\n',
                                            encoding="utf-8")
    assert run(["build", "--root", str(tmp_path), "--site", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "op-ToyProjection.md").read_text(encoding="utf-8")
    assert "toy_model/layers.py:" in page and "ab_mentions" not in page
