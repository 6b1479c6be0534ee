"""How `opdoc build` treats the knowledge base: atomic, deterministic, never touching files it did not make."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opdoc_testing import ROOT, TINY
from opdoc.cli import main


def tiny_copy(tmp_path: Path) -> Path:
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    return tmp_path


def run(*argv: str) -> int:
    return main(list(argv))


def test_foreign_files_survive_and_stale_generated_files_go(tmp_path, capsys):
    root = tiny_copy(tmp_path)
    site = root / "site"
    site.mkdir()
    (site / "op-HandWritten.md").write_text("# HandWritten\n", encoding="utf-8")
    assert run("build", "--root", str(root), "--site", str(site)) == 0
    assert (site / "op-DeepseekV2MLP.md").exists()
    # Drop the MLP spec: its page was generated (listed in the manifest), so it goes; the foreign page stays.
    (root / "specs/tiny/DeepseekV2MLP.yaml").unlink()
    assert run("build", "--root", str(root), "--site", str(site)) == 0
    assert not (site / "op-DeepseekV2MLP.md").exists()
    assert (site / "op-HandWritten.md").read_text(encoding="utf-8") == "# HandWritten\n"
    manifest = json.loads((site / ".opdoc-manifest.json").read_text(encoding="utf-8"))
    assert "op-HandWritten.md" not in manifest["generated"]
    capsys.readouterr()


def test_check_lists_what_differs_and_changes_nothing(tmp_path, capsys):
    root = tiny_copy(tmp_path)
    site = root / "site"
    assert run("build", "--root", str(root), "--site", str(site)) == 0
    page = site / "op-DeepseekV2RMSNorm.md"
    page.write_text(page.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert run("build", "--check", "--root", str(root), "--site", str(site)) == 1
    out = capsys.readouterr().out
    assert "differs" in out and "op-DeepseekV2RMSNorm.md" in out
    assert page.read_text(encoding="utf-8").endswith("edited by hand\n")


def _build_in_subprocess(root: Path, site: Path, seed: str) -> dict[str, bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    subprocess.run([sys.executable, "-m", "opdoc", "build", "--root", str(root), "--site", str(site)],
                   check=True, env=env, capture_output=True)
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def test_two_builds_are_byte_identical(tmp_path):
    root = tiny_copy(tmp_path)
    first = _build_in_subprocess(root, tmp_path / "one", "1")
    second = _build_in_subprocess(root, tmp_path / "two", "98765")
    assert first == second
    assert any(name.endswith(".svg") for name in first)


def test_building_the_docs_never_imports_torch(tmp_path):
    # Into an empty folder: a build that finds its stamp current would render (and import) nothing.
    probe = ("import sys; from opdoc.cli import main; "
             "code = main(['build', '--root', sys.argv[1], '--site', sys.argv[2]]); "
             "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, str(ROOT), str(tmp_path / "site")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_build_sizes_sympys_cache_for_itself_and_passes_nothing_on():
    # sympy's default keeps 1,000 results per function; a build that renders (--full) asks for no limit
    # while it runs: afterwards the environment that programs started from this process inherit is as
    # it was. (An unchanged build never imports sympy: tests/test_stamp.py.)
    probe = ("import os, sys; from opdoc.cli import main; code = main(['build', '--check', '--full', '--root', sys.argv[1]]); "
             "from sympy.core import cache; print(cache.SYMPY_CACHE_SIZE, 'SYMPY_CACHE_SIZE' in os.environ, code)")
    result = subprocess.run([sys.executable, "-c", probe, str(ROOT)], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "SYMPY_CACHE_SIZE"})
    assert result.stdout.split()[-3:] == ["None", "False", "0"], result.stdout + result.stderr
    # a size the user set is kept
    result = subprocess.run([sys.executable, "-c", probe, str(ROOT)], capture_output=True, text=True,
                            env={**os.environ, "SYMPY_CACHE_SIZE": "500"})
    assert result.stdout.split()[-3:] == ["500", "True", "0"], result.stdout + result.stderr


def test_committed_knowledge_base_is_what_the_specs_generate(capsys):
    assert run("build", "--check", "--root", str(ROOT)) == 0, capsys.readouterr().out


def test_every_spec_has_a_page_and_every_generated_page_a_spec():
    specs = {p.stem for p in (ROOT / "specs/deepseek_ocr").glob("*.yaml")} - {"model"}
    generated = json.loads((ROOT / "site/.opdoc-manifest.json").read_text(encoding="utf-8"))["generated"]
    pages = {name[3:-3] for name in generated if name.startswith("op-")}
    assert specs == pages


def test_schema_is_current(capsys):
    assert run("schema", "--check", "--root", str(ROOT)) == 0


def test_eval_prints_every_quantity_with_overrides(tmp_path, capsys):
    root = tiny_copy(tmp_path)
    assert run("eval", "DeepseekV2MLP", "--root", str(root), "--example", "prefill", "--set", "S=32") == 0
    out = capsys.readouterr().out
    # tensor FLOPs 2 × B × S × h × d_ff = 2 × 1 × 32 × 8 × 32 = 16,384
    assert "16.38 KFLOPs" in out
    assert run("eval", "DeepseekV2MLP", "--root", str(root), "--set", "Q=1") == 1
    assert "'Q' is neither a symbol nor a configuration key" in capsys.readouterr().err


def test_export_writes_every_quantity_at_every_example(tmp_path, capsys):
    root = tiny_copy(tmp_path)
    assert run("export", "--root", str(root), "--format", "json") == 0
    records = json.loads(capsys.readouterr().out)
    assert {(r["op"], r["example"]) for r in records} >= {("DeepseekV2RMSNorm", "batch"), ("DeepseekV2MLP", "prefill")}
    norm = next(r for r in records if r["op"] == "DeepseekV2RMSNorm" and r["example"] == "batch")
    # RMSNorm CUDA FLOPs at B=2, S=4, h=8: 3 × 2 × 4 × 8 = 192, with the binding that gave it
    assert norm["quantities"]["cuda_flops"] == {"value": 192, "unit": "FLOPs", "formula": "3 × B × S × h"}
    assert (norm["binding"]["B"], norm["binding"]["S"], norm["binding"]["h"]) == (2, 4, 8)
    assert run("export", "--root", str(root), "--format", "csv", "--output", str(tmp_path / "out.csv")) == 0
    header = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:7] == ["op", "variant", "example", "kernel", "quantity", "value", "unit"]
    assert {"bind.B", "bind.S", "bind.h"} <= set(header)


def test_new_skeleton_loads_and_fails_only_on_its_todos(tmp_path, capsys):
    root = tiny_copy(tmp_path)
    assert run("new", "TinyThing", "--root", str(root)) == 0
    assert run("new", "TinyThing", "--root", str(root)) == 1  # never overwrites
    capsys.readouterr()
    assert run("build", "--root", str(root), "--site", str(root / "site")) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "TinyThing.yaml" in line]
    assert errors and all("still a TODO" in line for line in errors)


def test_a_committed_gpu_report_shows_beside_the_formulas(tmp_path, capsys):
    root = tiny_copy(tmp_path)
    site = root / "site"
    (site / "measured").mkdir(parents=True)
    report = {"device": "NVIDIA H200", "torch": "2.13.0", "cuda": "13.0", "dtype": "bfloat16", "repeats": 20,
              "warmup": 3, "results": [{"op": "DeepseekV2RMSNorm", "variant": None, "kernel": "fused",
                                        "example": "prefill", "point": "B=1 S=16", "peak_bytes": 1024,
                                        "formula_peak_bytes": 768, "median_seconds": 0.0000125,
                                        "flops_per_second": 30720000.0}]}
    (site / "measured" / "cuda-report.json").write_text(json.dumps(report), encoding="utf-8")
    assert run("build", "--root", str(root), "--site", str(site)) == 0
    page = (site / "op-DeepseekV2RMSNorm.md").read_text(encoding="utf-8")
    assert "**Measured on NVIDIA H200**" in page
    # 1024 B (1.02 KB in decimal units) against the formula's 768 B; 0.0000125 s = 0.013 ms; 384 FLOPs / 12.5 µs = 30.72 MFLOPs/s
    assert "| prefill B=1, S=16 | fused | 1.02 KB | 768 B | 0.013 ms | 30.72 MFLOPs/s |" in page
    assert "NVIDIA H200" in (site / "index.md").read_text(encoding="utf-8")
    # opdoc never generated the report, so a later build leaves it alone
    assert run("build", "--root", str(root), "--site", str(site)) == 0
    assert (site / "measured" / "cuda-report.json").exists()
    capsys.readouterr()


def test_an_implementation_outside_the_model_package_is_refused_without_importing_it(tmp_path, capsys):
    """`implementation: this.x.Y` would import the `this` module (it prints a poem): it is never imported."""
    root = tiny_copy(tmp_path)
    spec = root / "specs" / "tiny" / "DeepseekV2MLP.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text("\n".join("implementation: this.x.Y" if line.startswith("implementation:") else line
                              for line in text.splitlines()) + "\n", encoding="utf-8")
    assert run("build", "--root", str(root), "--site", str(root / "site")) == 1
    out, err = capsys.readouterr()
    assert "outside the model package 'opdoc.models.deepseek_ocr'" in err
    assert "Beautiful is better" not in out


def test_the_implementation_defaults_to_the_class_named_as_the_op(tmp_path, capsys):
    root = tiny_copy(tmp_path)
    spec = root / "specs" / "tiny" / "DeepseekV2MLP.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text("".join(line for line in text.splitlines(keepends=True) if not line.startswith("implementation:")),
                    encoding="utf-8")
    assert run("build", "--root", str(root), "--site", str(root / "site")) == 0
    page = (root / "site" / "op-DeepseekV2MLP.md").read_text(encoding="utf-8")
    assert "reference implementation `opdoc/models/deepseek_ocr/deepseek_v2.py:" in page


def test_a_peak_formula_keyed_by_an_unknown_variant_is_refused(tmp_path, capsys):
    """memory.peak keys: any, a kernel, a variant of the op, or variant.kernel (the op here has no variants)."""
    root = tiny_copy(tmp_path)
    spec = root / "specs" / "tiny" / "DeepseekV2MLP.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("    any: {formula: 'max(up, peak(norm))'", "    windowed: {formula: 'max(up, peak(norm))'"),
                    encoding="utf-8")
    assert run("build", "--root", str(root), "--site", str(root / "site")) == 1
    err = capsys.readouterr().err
    assert "DeepseekV2MLP.yaml:" in err and "memory.peak: unknown key(s) ['windowed']" in err


@pytest.mark.parametrize("folders", [0, 2])
def test_a_build_without_exactly_one_model_folder_says_so(tmp_path, capsys, folders):
    specs = tmp_path / "specs"
    specs.mkdir()
    for index in range(folders):
        (specs / f"model{index}").mkdir()
        (specs / f"model{index}" / "model.yaml").write_text("title: x\n", encoding="utf-8")
    assert main(["build", "--root", str(tmp_path), "--full", "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "expected one model folder with a model.yaml, found " in err and "no file was changed" in err
    assert not (tmp_path / "site").exists()

