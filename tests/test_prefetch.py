"""The build's helper process (opdoc/prefetch.py): what it reads and compiles is used only while it
is still what is on disk, a failing helper costs nothing but time, and the knowledge base is the same
byte for byte with or without it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from opdoc import prefetch, stamp, templating, yamlfile
from opdoc.parallel import start_forked
from opdoc.pipeline import TEMPLATES
from opdoc_testing import TINY


_IMPORTS_AHEAD = prefetch._imports_ahead  # the real test, before the fixture below replaces it


@pytest.fixture(autouse=True)
def nothing_handed(monkeypatch):
    """Each test starts, and leaves this process, with nothing read ahead or compiled ahead; and as a
    fresh `opdoc build` would, with sympy still to import (other tests imported it here)."""
    monkeypatch.setattr(yamlfile, "_AHEAD", {})
    monkeypatch.setattr(templating, "_HANDED", {})
    monkeypatch.setattr(prefetch, "_imports_ahead", lambda: True)


class _NoParsing:
    def __init__(self, text):
        raise AssertionError("parsed again")


def test_a_forked_call_returns_its_value_or_raises_its_traceback_here():
    assert start_forked(lambda: (os.getpid(), [1, 2]))()[1] == [1, 2]
    assert start_forked(os.getpid)() != os.getpid()  # it ran in another process

    def fail():
        raise ValueError("not wanted")

    with pytest.raises(RuntimeError, match="ValueError: not wanted"):
        start_forked(fail)()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left behind


def test_a_file_read_ahead_is_taken_once_while_it_is_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "a.yaml"
    path.write_text("x: 1\nitems: [2, 3]\n")
    (tmp_path / "bad.yaml").write_text("x: [")
    os.mkfifo(tmp_path / "pipe.yaml")  # opened, it would block until someone writes
    yamlfile.use_read_ahead(yamlfile.read_ahead([path, tmp_path / "missing.yaml", tmp_path / "bad.yaml",
                                                 tmp_path / "pipe.yaml"]))
    assert list(yamlfile._AHEAD) == [os.fspath(path)]  # what does not read is left to read_yaml
    monkeypatch.setattr(yamlfile, "_LOADER", _NoParsing)
    located = yamlfile.read_yaml(path, "a.yaml")
    assert located.path == path and located.data == {"x": 1, "items": [2, 3]}
    assert located.line_of(("items",)) == 2
    with pytest.raises(AssertionError, match="parsed again"):  # once: a second read goes to the file
        yamlfile.read_yaml(path, "a.yaml")


def test_a_file_changed_after_it_was_read_ahead_is_read_again(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("x: 1\n")
    yamlfile.use_read_ahead(yamlfile.read_ahead([path]))
    path.write_text("x: 22\n")  # another size
    assert yamlfile.read_yaml(path, "a.yaml").data == {"x": 22}
    yamlfile.use_read_ahead(yamlfile.read_ahead([path]))
    path.write_text("x: 33\n")  # the same size, a later time of change
    os.utime(path, ns=(path.stat().st_atime_ns, yamlfile._AHEAD[os.fspath(path)][1] + 1))
    assert yamlfile.read_yaml(path, "a.yaml").data == {"x": 33}
    yamlfile.use_read_ahead(yamlfile.read_ahead([path]))
    path.unlink()
    with pytest.raises(yamlfile.SpecError, match="cannot read the file"):
        yamlfile.read_yaml(path, "a.yaml")


def test_templates_compiled_ahead_render_as_compiled_here_without_compiling(tmp_path, monkeypatch):
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    (folder / "broken.md.j2").write_text("{% if %}")
    compiled = templating.compile_all(folder)
    names = sorted(path.name for path in folder.glob("*.j2"))
    assert len(compiled) == len(names) - 1  # every template but the broken one
    fresh = templating.environment(folder).get_template("modes_table.md.j2")

    templating.use_compiled(compiled)

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again")

    with monkeypatch.context() as patched:
        patched.setattr(jinja2.Environment, "compile", no_compiling)
        handed = templating.environment(folder).get_template("modes_table.md.j2")
        assert handed.root_render_func.__code__.co_code == fresh.root_render_func.__code__.co_code
        with pytest.raises(AssertionError, match="compiled again"):  # not handed: compiled as always
            templating.environment(folder).get_template("broken.md.j2")

    (folder / "index.md.j2").write_text("edited {{ 1 + 1 }}\n")  # after the helper compiled it
    templating.use_compiled(compiled)
    assert templating.environment(folder).get_template("index.md.j2").render() == "edited 2\n"


def test_the_helper_hands_over_every_model_file_and_template_and_the_inputs_digest(tmp_path):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    model_dir = tmp_path / "specs" / "tiny"
    digest = prefetch.start(model_dir, tmp_path, TEMPLATES, jobs=2)()
    expected = sorted(model_dir.rglob("*.yaml")) + sorted(model_dir.parent.glob("*.yaml"))
    assert expected and sorted(yamlfile._AHEAD) == sorted(map(os.fspath, expected))
    assert len(templating._HANDED) == len(list(TEMPLATES.glob("*.j2")))
    assert digest == stamp.fixed_digest(model_dir, tmp_path, TEMPLATES)  # what this process makes of the same
    site = tmp_path / "site"
    assert (stamp.input_digest(model_dir, tmp_path, site, TEMPLATES, [], digest)
            == stamp.input_digest(model_dir, tmp_path, site, TEMPLATES, []))


def test_one_process_builds_without_a_helper_and_a_failing_helper_changes_nothing(tmp_path, monkeypatch):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    model_dir = tmp_path / "specs" / "tiny"
    forks = []
    with monkeypatch.context() as patched:
        patched.setattr(prefetch, "start_forked", lambda function: forks.append(function))
        assert prefetch.start(model_dir, tmp_path, TEMPLATES, jobs=1)() is None
    assert forks == [] and yamlfile._AHEAD == {} and templating._HANDED == {}

    def fail(*arguments):
        raise OSError("the helper could not read")

    monkeypatch.setattr(prefetch, "_work", fail)
    assert prefetch.start(model_dir, tmp_path, TEMPLATES, jobs=2)() is None
    assert yamlfile._AHEAD == {} and templating._HANDED == {}


def test_a_caller_that_imported_sympy_already_gets_no_helper(tmp_path, monkeypatch):
    import sympy  # noqa: F401 - as a caller of the Python API has

    monkeypatch.setattr(prefetch, "_imports_ahead", _IMPORTS_AHEAD)
    forks = []
    monkeypatch.setattr(prefetch, "start_forked", lambda function: forks.append(function))
    assert prefetch.start(tmp_path, tmp_path, TEMPLATES, jobs=2)() is None
    assert forks == [] and "sympy" in sys.modules


# A fresh process, as `opdoc build` runs: sympy is imported after the helper starts, and the helper
# is seen to start (jobs=2) or not (jobs=1).
_BUILD = """
import sys
from pathlib import Path
from opdoc import prefetch
from opdoc.pipeline import Paths, build
started = []
fork = prefetch.start_forked
prefetch.start_forked = lambda function: started.append(1) or fork(function)
build(Paths(root=Path(sys.argv[1]), site=Path(sys.argv[2])), full=True, jobs=int(sys.argv[3]))
print("helper started" if started else "no helper")
"""


def test_the_knowledge_base_is_the_same_with_and_without_the_helper(tmp_path):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    sites = {}
    for jobs, said in ((1, "no helper"), (2, "helper started")):
        site = tmp_path / f"site-{jobs}"
        run = subprocess.run([sys.executable, "-c", _BUILD, str(tmp_path), str(site), str(jobs)],
                             capture_output=True, text=True, check=True)
        assert run.stdout.strip() == said
        sites[jobs] = {path.relative_to(site): path.read_bytes() for path in sorted(site.rglob("*")) if path.is_file()}
    assert sites[1].keys() == sites[2].keys() and len(sites[1]) > 5
    assert [name for name in sites[1] if sites[1][name] != sites[2][name]] == []
    assert Path(".opdoc-stamp.json") in sites[1]
