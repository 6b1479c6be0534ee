"""Item 2 of issue 9: the manifest can delete nothing outside site/, nor anything opdoc did not write.

Each case builds the tiny fixture, edits site/.opdoc-manifest.json or site/ the way an attacker or a
careless user would, and runs the next build.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hostile_specs import SPECS, tiny_copy
from opdoc.cli import main
from opdoc.write import MANIFEST, digest


def build(root: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["build", "--root", str(root), "--site", str(root / "site"), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def built(tmp_path, capsys) -> Path:
    root = tiny_copy(tmp_path / "repo")
    assert build(root, capsys)[0] == 0
    return root


def manifest(root: Path) -> dict:
    return json.loads((root / "site" / MANIFEST).read_text(encoding="utf-8"))


def set_generated(root: Path, generated) -> None:
    data = manifest(root)
    data["generated"] = generated
    (root / "site" / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")


@pytest.mark.parametrize("entry", ["../victim.txt", "ABSOLUTE", "plots/../../victim.txt", "a/./b",
                                   ".opdoc-journal.json", "", "x\\..\\victim.txt"])
def test_a_manifest_entry_outside_site_is_an_error_and_deletes_nothing(built, tmp_path, capsys, entry):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    absolute = tmp_path / "opdoc-victim"  # an absolute path outside site/
    if entry == "ABSOLUTE":
        entry = str(absolute)
        absolute.write_text("keep me\n", encoding="utf-8")
    before = manifest(built)
    set_generated(built, [*before["generated"], entry])
    text = (built / "site" / MANIFEST).read_text(encoding="utf-8")
    code, output = build(built, capsys)
    assert code == 1 and "Traceback" not in output
    assert f"{built / 'site' / MANIFEST}:" in output and "is not a file name inside site/" in output
    assert victim.read_text(encoding="utf-8") == "keep me\n"
    if entry == str(absolute):
        assert absolute.read_text(encoding="utf-8") == "keep me\n"
        absolute.unlink()
    assert (built / "site" / MANIFEST).read_text(encoding="utf-8") == text  # not rewritten either
    code, output = build(built, capsys, "--check")
    assert code == 1 and "is not a file name inside site/" in output


@pytest.mark.parametrize("generated", ["nx", 5, [1, 2], {"index.md": 3}, {"index.md": "md5:abc"}, None])
def test_a_manifest_of_the_wrong_shape_is_an_error_and_changes_nothing(built, capsys, generated):
    (built / "site" / "n").write_text("n\n", encoding="utf-8")
    (built / "site" / "x").write_text("x\n", encoding="utf-8")
    set_generated(built, generated)
    text = (built / "site" / MANIFEST).read_text(encoding="utf-8")
    code, output = build(built, capsys)
    assert code == 1 and "Traceback" not in output and MANIFEST in output
    assert (built / "site" / "n").exists() and (built / "site" / "x").exists()
    assert (built / "site" / MANIFEST).read_text(encoding="utf-8") == text


def test_a_manifest_that_is_not_json_is_an_error_with_its_line(built, capsys):
    (built / "site" / MANIFEST).write_text('{\n  "generated": [\n    "index.md",\n  ]\n}\n', encoding="utf-8")
    code, output = build(built, capsys)
    assert code == 1 and "Traceback" not in output
    assert f"{MANIFEST}:4: not valid JSON" in output  # the trailing comma, where JSON notices it (the `]`)


def test_a_stale_page_is_removed_only_while_it_holds_what_opdoc_wrote(built, capsys):
    site = built / "site"
    (built / SPECS / "DeepseekV2MLP.yaml").unlink()
    edited = site / "plots" / "op-DeepseekV2MLP.svg"
    edited.write_text(edited.read_text(encoding="utf-8") + "<!-- my note -->\n", encoding="utf-8")
    code, output = build(built, capsys)
    assert code == 0
    assert not (site / "op-DeepseekV2MLP.md").exists()  # unchanged since opdoc wrote it: removed
    assert edited.exists() and "my note" in edited.read_text(encoding="utf-8")  # edited: kept, and said so
    assert f"kept {edited} (changed since opdoc wrote it" in output
    assert "plots/op-DeepseekV2MLP.svg" not in manifest(built)["generated"]  # no longer opdoc's


def test_a_link_listed_in_the_manifest_is_never_followed_or_removed(built, tmp_path, capsys):
    outside = tmp_path / "outside.md"
    page = built / "site" / "op-DeepseekV2MLP.md"
    outside.write_bytes(page.read_bytes())
    page.unlink()
    page.symlink_to(outside)  # the link's target holds exactly what opdoc wrote
    (built / SPECS / "DeepseekV2MLP.yaml").unlink()
    code, output = build(built, capsys)
    assert code == 0 and outside.exists() and page.is_symlink()
    assert "not a plain file" in output


def test_a_linked_plots_folder_is_not_written_through(built, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plots = built / "site" / "plots"
    for svg in plots.iterdir():
        (elsewhere / svg.name).write_bytes(svg.read_bytes())
        svg.unlink()
    plots.rmdir()
    plots.symlink_to(elsewhere, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    model = built / SPECS / "model.yaml"  # another sweep: every plot changes
    model.write_text(model.read_text(encoding="utf-8").replace("values: [4, 16, 64]", "values: [4, 32, 64]"),
                     encoding="utf-8")
    code, output = build(built, capsys)
    assert code == 1 and "a link is in the way" in output
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before


def test_a_hand_written_page_is_never_overwritten_when_its_spec_appears(tmp_path, capsys):
    root = tiny_copy(tmp_path / "repo")
    spec = root / SPECS / "DeepseekV2MLP.yaml"
    held = spec.read_text(encoding="utf-8")
    spec.unlink()
    assert build(root, capsys)[0] == 0
    mine = root / "site" / "op-DeepseekV2MLP.md"
    mine.write_text("# DeepseekV2MLP\n\nMy own notes.\n", encoding="utf-8")
    spec.write_text(held, encoding="utf-8")
    code, output = build(root, capsys)
    assert code == 1 and "Traceback" not in output
    assert f"{mine}: exists and opdoc did not write it" in output and "move it out of" in output
    assert mine.read_text(encoding="utf-8") == "# DeepseekV2MLP\n\nMy own notes.\n"
    code, output = build(root, capsys, "--check")
    assert code == 1 and "not written by opdoc" in output
    mine.unlink()  # what the message says to do
    assert build(root, capsys)[0] == 0


def test_a_page_identical_to_what_opdoc_writes_is_taken_over_without_a_manifest(built, capsys):
    (built / "site" / MANIFEST).unlink()
    code, _ = build(built, capsys)
    assert code == 0
    assert set(manifest(built)["generated"]) >= {"index.md", "op-DeepseekV2MLP.md"}


def test_the_manifest_records_a_digest_of_every_file(built):
    for name, recorded in manifest(built)["generated"].items():
        assert recorded == digest((built / "site" / name).read_bytes()), name


def test_a_manifest_from_before_digests_is_read_and_its_stale_files_kept(built, capsys):
    names = sorted(manifest(built)["generated"])
    set_generated(built, names)  # the list opdoc 0.1 wrote
    (built / SPECS / "DeepseekV2MLP.yaml").unlink()
    code, output = build(built, capsys)
    assert code == 0 and "listed by an older opdoc without a digest" in output
    assert (built / "site" / "op-DeepseekV2MLP.md").exists()


def test_files_are_written_with_the_users_umask(tmp_path, capsys):
    root = tiny_copy(tmp_path / "repo")
    old = os.umask(0o027)
    try:
        assert build(root, capsys)[0] == 0
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (root / "site").rglob("*") if p.is_file()}
    assert modes == {0o640}  # 0666 less 0027; opdoc 0.1 wrote 0600 whatever the umask
