"""Item 3 of issue 9: a build killed at any moment leaves one whole knowledge base, old or new.

The writer is run in a forked child whose k-th file-system call (create, write, sync, close, rename,
remove, make or remove a folder) kills it with SIGKILL first: no `finally`, no clean-up, as if the
machine had stopped. For every k until a build completes, the parent checks what the next commands
see: `build --check` never calls the tree up to date unless it is exactly the old or the new one,
and recovery (what every build does first) leaves exactly the old or the new knowledge base.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from types import SimpleNamespace

import pytest

import opdoc.write
from hostile_specs import SPECS, tiny_copy
from opdoc.cli import main
from opdoc.write import differences, recover, write
from opdoc_testing import ROOT

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash test forks")

# Every call by which opdoc.write changes the file system, by module.
MUTATING = {os: {"open", "write", "fsync", "close", "replace", "unlink", "rmdir", "mkdir"},
            shutil: {"rmtree"}, tempfile: {"mkdtemp"}}


class Tripwire:
    """Stands in for a module inside opdoc.write; the `limit`-th mutating call kills the process first."""

    def __init__(self, module, counter: list[int], limit: int):
        self._module, self._counter, self._limit = module, counter, limit

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if name not in MUTATING[self._module]:
            return value

        def call(*args, **kwargs):
            self._counter[0] += 1
            if self._counter[0] == self._limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return value(*args, **kwargs)

        return call


def write_killed_at(step: int, rendered, site: Path) -> bool:
    """Run write() in a child killed before its `step`-th mutating call; True if it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            counter = [0]
            for name, module in (("os", os), ("shutil", shutil), ("tempfile", tempfile)):
                setattr(opdoc.write, name, Tripwire(module, counter, step))
            write(rendered, site)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - reported by the parent as a failed build
            traceback.print_exc()
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the build failed without being killed"
    return False


def snapshot(site: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under site/, hidden ones included."""
    return {str(p.relative_to(site)): (None if p.is_dir() else p.read_bytes()) for p in sorted(site.rglob("*"))}


def restore(site: Path, files: dict[str, bytes | None]) -> None:
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir()
    for name, content in files.items():
        path = site / name
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def knowledge_base(root: Path, capsys) -> tuple[SimpleNamespace, dict[str, bytes | None]]:
    """What a build of `root` renders, and the site/ it leaves."""
    assert main(["build", "--root", str(root), "--site", str(root / "site")]) == 0
    capsys.readouterr()
    site = root / "site"
    files = {str(p.relative_to(site)): p.read_text(encoding="utf-8") for p in site.rglob("*")
             if p.is_file() and p.name != ".opdoc-manifest.json"}  # the stamp is a generated file like a page
    return SimpleNamespace(files=files), snapshot(site)


def change_specs(root: Path) -> None:
    """The new specs: one op removed (its page and plot go), another's prose changed."""
    (root / SPECS / "DeepseekV2MLP.yaml").unlink()
    spec = root / SPECS / "DeepseekV2RMSNorm.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("Bandwidth bound", "Memory bound"), encoding="utf-8")


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    capsys = SimpleNamespace(readouterr=lambda: None)
    old_root = tiny_copy(tmp_path_factory.mktemp("old"))
    new_root = tiny_copy(tmp_path_factory.mktemp("new"))
    change_specs(new_root)
    return knowledge_base(old_root, capsys), knowledge_base(new_root, capsys)


@pytest.mark.parametrize("direction", ["remove and change", "add and change back"])
def test_a_build_killed_at_any_call_leaves_the_old_or_the_new_knowledge_base(versions, tmp_path, direction):
    (old, old_tree), (new, new_tree) = versions if direction == "remove and change" else versions[::-1]
    assert old_tree != new_tree
    site = tmp_path / "site"
    kills = mixed = 0
    for step in range(1, 1000):
        restore(site, old_tree)
        killed = write_killed_at(step, new, site)
        tree = snapshot(site)
        # `build --check`: up to date only for a tree that is exactly what those specs build.
        for rendered, whole in ((new, new_tree), (old, old_tree)):
            if differences(rendered, site) == []:
                assert tree == whole, f"killed at call {step}: a mixed tree was called up to date"
        recover(site)
        after = snapshot(site)
        if after not in (old_tree, new_tree):
            mixed += 1
            pytest.fail(f"killed at call {step}: recovery left neither the old nor the new knowledge base: "
                        f"{sorted(set(after) ^ set(new_tree))}")
        write(new, site)
        assert snapshot(site) == new_tree
        if not killed:
            break
        kills += 1
    else:
        pytest.fail("the build never completed")
    # Every file is written, synced and renamed: far more than ten places to be killed.
    assert kills > 10 and mixed == 0


def test_the_command_after_a_killed_build_finishes_it(tmp_path, capsys):
    """End to end: `opdoc build` killed at its middle rename; `build --check` says so; `build` finishes."""
    root = tiny_copy(tmp_path / "repo")
    assert main(["build", "--root", str(root), "--site", str(root / "site")]) == 0
    change_specs(root)
    killer = (
        "import os, signal, sys, opdoc.write as w\n"
        "real, count = os.replace, [0]\n"
        "class Os:\n"
        "    def __getattr__(self, name): return getattr(os, name)\n"
        "    def replace(self, *a):\n"
        "        count[0] += 1\n"
        "        if count[0] == 4: os.kill(os.getpid(), signal.SIGKILL)  # 1: the journal, 2.. the pages\n"
        "        real(*a)\n"
        "w.os = Os()\n"
        "from opdoc.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", killer, "build", "--root", str(root), "--site", str(root / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (root / "site" / opdoc.write.JOURNAL).exists()
    capsys.readouterr()
    assert main(["build", "--check", "--root", str(root), "--site", str(root / "site")]) == 1
    assert "was stopped part-way" in capsys.readouterr().out
    assert main(["build", "--root", str(root), "--site", str(root / "site")]) == 0
    assert "finished an interrupted build" in capsys.readouterr().out
    assert main(["build", "--check", "--root", str(root), "--site", str(root / "site")]) == 0
    leftovers = [p.name for p in (root / "site").rglob(".opdoc-*") if p.name not in (opdoc.write.MANIFEST, opdoc.write.STAMP)]
    assert leftovers == []


def test_temporary_files_left_by_an_older_opdoc_are_reported_then_removed(tmp_path, capsys):
    """opdoc 0.1 wrote each file through `.opdoc-*.tmp` beside it; a kill leaked them for good."""
    root = tiny_copy(tmp_path / "repo")
    site = root / "site"
    assert main(["build", "--root", str(root), "--site", str(site)]) == 0
    leaked = [site / ".opdoc-k2j4.tmp", site / "plots" / ".opdoc-9x1.tmp", site / ".opdoc-staging-abc" / "00001"]
    for path in leaked:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half a page", encoding="utf-8")
    capsys.readouterr()
    assert main(["build", "--check", "--root", str(root), "--site", str(site)]) == 1
    out = capsys.readouterr().out
    assert all(f"leftover  {path if path.parent.name != '.opdoc-staging-abc' else path.parent}" in out for path in leaked)
    assert main(["build", "--root", str(root), "--site", str(site)]) == 0
    assert not any(path.exists() for path in leaked) and not (site / ".opdoc-staging-abc").exists()
    assert main(["build", "--check", "--root", str(root), "--site", str(site)]) == 0


def test_staged_files_are_written_by_several_threads_and_the_first_failure_is_raised(tmp_path):
    from opdoc.write import _create_all

    files = [(tmp_path / f"{i:05d}", f"page {i}\n".encode()) for i in range(20)]
    _create_all(files, threads=8)
    assert [path.read_bytes() for path, _ in files] == [content for _, content in files]
    # _create refuses to overwrite (O_EXCL): writing the same files again fails, and says so here
    with pytest.raises(FileExistsError):
        _create_all(files[:3], threads=2)
