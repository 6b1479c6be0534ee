"""The build stamp (opdoc/stamp.py): an unchanged build stops early, and only when nothing it
depends on has changed; anything else falls through to the full build."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from opdoc_testing import ROOT, TINY
from opdoc import stamp
from opdoc.pipeline import TEMPLATES, Paths, build

# Runs the command line in a fresh process and reports whether sympy was imported.
PROBE = ("import sys; from opdoc.cli import main; code = main(sys.argv[1:]); "
         "print('sympy imported' if 'sympy' in sys.modules else 'sympy not imported'); sys.exit(code)")


def opdoc(*argv: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def tiny(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    return tmp_path, tmp_path / "site"


def test_an_unchanged_build_and_check_stop_before_importing_sympy(tmp_path):
    root, site = tiny(tmp_path)
    code, out = opdoc("build", "--root", str(root), "--site", str(site))
    assert code == 0 and "sympy imported" in out and (site / stamp.STAMP).exists()
    code, out = opdoc("build", "--root", str(root), "--site", str(site))
    assert code == 0 and "already up to date" in out and "sympy not imported" in out
    code, out = opdoc("build", "--check", "--root", str(root), "--site", str(site))
    assert code == 0 and "up to date" in out and "sympy not imported" in out


def test_a_changed_spec_is_rendered_and_reported(tmp_path):
    root, site = tiny(tmp_path)
    assert build(Paths(root=root, site=site))[0]
    spec = root / "specs/tiny/DeepseekV2RMSNorm.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace(
        "what_it_is: ", "what_it_is: Changed for the test. "), encoding="utf-8")
    code, out = opdoc("build", "--check", "--root", str(root), "--site", str(site))
    assert code == 1 and "op-DeepseekV2RMSNorm.md" in out and "sympy imported" in out
    code, out = opdoc("build", "--root", str(root), "--site", str(site))
    assert code == 0 and "op-DeepseekV2RMSNorm.md" in out
    assert "Changed for the test." in (site / "op-DeepseekV2RMSNorm.md").read_text(encoding="utf-8")
    assert opdoc("build", "--check", "--root", str(root), "--site", str(site)) == (0, "knowledge base is up to date\n"
                                                                                    "sympy not imported\n")


def test_a_deleted_or_edited_output_is_not_vouched_for(tmp_path):
    root, site = tiny(tmp_path)
    build(Paths(root=root, site=site))
    (site / "plots" / "overview.svg").unlink()
    changes, _ = build(Paths(root=root, site=site), check=True)
    assert any("missing" in line and "overview.svg" in line for line in changes)
    build(Paths(root=root, site=site))
    svg = site / "plots" / "overview.svg"
    svg.write_text(svg.read_text(encoding="utf-8").replace("Parameters", "Params"), encoding="utf-8")
    changes, _ = build(Paths(root=root, site=site), check=True)
    assert any("differs" in line and "overview.svg" in line for line in changes)


def test_the_input_digest_follows_templates_site_inputs_and_sources(tmp_path):
    root, site = tiny(tmp_path)
    model = root / "specs" / "tiny"
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)

    def digest(sources=()):
        return stamp.input_digest(model, root, site, templates, list(sources))

    before = digest()
    assert digest() == before  # nothing changed: the same digest
    page = templates / "op.md.j2"
    page.write_text(page.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    after_template = digest()
    (site / "measured").mkdir(parents=True)
    (site / "measured" / "cuda-report.json").write_text("{}", encoding="utf-8")
    after_report = digest()
    source = root / "reference.py"
    source.write_text("class A: pass\n", encoding="utf-8")
    with_source = digest(["reference.py"])
    source.write_text("class A: x = 1\n", encoding="utf-8")
    assert len({before, after_template, after_report, with_source, digest(["reference.py"])}) == 5


def test_every_opdoc_module_a_build_imports_is_in_the_digest(tmp_path):
    root, site = tiny(tmp_path)
    code = ("import sys, json; from pathlib import Path; from opdoc.pipeline import Paths, build;"
            f"build(Paths(root=Path({str(root)!r}), site=Path({str(site)!r})));"
            "print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items())"
            " if n.split('.')[0] == 'opdoc' and getattr(m, '__file__', None))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    imported = {Path(name).resolve() for name in json.loads(result.stdout)}
    assert imported, "the build imported no opdoc module?"
    missing = imported - {path.resolve() for path in stamp.build_sources()}
    assert not missing, f"imported by a build but not in the stamp's digest: {sorted(map(str, missing))}"


def test_committed_knowledge_base_is_what_a_full_render_generates():
    # The stamp lets `build --check` answer early; this renders every page and compares, stamp included.
    changes, _ = build(Paths(root=ROOT), check=True, full=True)
    assert changes == [], changes


def test_the_input_digest_follows_the_hardware_and_runtime_files(tmp_path):
    """runtime.yaml and hardware.yaml sit beside the model folder and change the roofline pages: an edit
    to either must not leave a stale knowledge base vouched for."""
    root, site = tiny(tmp_path)
    model = root / "specs" / "tiny"
    shared = root / "specs" / "hardware.yaml"
    assert shared.is_file()

    def digest():
        return stamp.input_digest(model, root, site, TEMPLATES, [])

    before = digest()
    shared.write_text(shared.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert digest() != before


def test_library_versions_are_what_importlib_metadata_reads():
    """The stamp reads versions off the metadata folders' names; importlib.metadata (which the stamp
    no longer imports: it costs ~30 ms a build) is the independent reading of the same install."""
    import importlib.metadata

    names = (*stamp.LIBRARIES, "MarkupSafe", "pydantic-core", "PyYAML")
    assert stamp._installed(names) == {name: importlib.metadata.version(name) for name in names}


def test_library_versions_follow_wheel_and_egg_folder_names(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in ("Foo_Bar-1.2.dist-info", "baz-3.0-py3.11.egg-info", "baz_tools-9.dist-info", "qux.pth"):
        (first / folder).mkdir(parents=True)
    (second / "foo.bar-7.0.dist-info").mkdir(parents=True)  # later on the path: the first one wins
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(first), str(second)])
    assert stamp._installed(["foo-bar", "Baz", "qux"]) == {"foo-bar": "1.2", "Baz": "3.0"}
    assert stamp._environment()[1:] == [f"{name} absent" for name in stamp.LIBRARIES]
