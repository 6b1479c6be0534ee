"""opdoc.parallel: how a build's ops are split over processes, and that the split changes no byte."""

from __future__ import annotations

import os

import pytest

from opdoc.parallel import map_forked, partition

# A model (head over base over a block), a vision tower, and three small leaves:
TREES = {
    "Head": frozenset({"Head", "Base", "Block", "Norm"}),
    "Base": frozenset({"Base", "Block", "Norm"}),
    "Block": frozenset({"Block", "Norm"}),
    "Norm": frozenset({"Norm"}),
    "Vision": frozenset({"Vision", "Patch", "Norm"}),
    "Patch": frozenset({"Patch"}),
    "Act": frozenset({"Act"}),
}


def test_a_head_stays_with_its_base_and_the_rest_balances_the_other_group():
    groups = partition(TREES, TREES.__getitem__, 2)
    # sizes (sum of the tree sizes in each tree): Norm 1, Patch 1, Act 1, Block 2 + 1 = 3,
    # Base 3 + 2 + 1 = 6, Head 4 + 3 + 2 + 1 = 10, Vision 3 + 1 + 1 = 5.
    # Base (6) is more than half of Head (10): one cluster. Block (3) is half of Base, not more: alone.
    # The cluster costs pages 10 + 6 and composing Head, Base, Block, Norm (4 + 3 + 2 + 1): 26, group 0.
    # Vision: 5 + composing Vision, Patch, Norm (3 + 1 + 1) = 10 in group 1 (26 + 5 + 4 = 35 in group 0).
    # Block: 3 + 2 + 0 = 5 in group 0 would make 31 (Norm composed there); 3 + 3 = 6 in group 1 makes 16.
    # Act, Norm, Patch (1 each, plus their compositions where new) go to the lighter group 1.
    assert groups == [["Base", "Head"], ["Act", "Block", "Norm", "Patch", "Vision"]]


def test_one_group_holds_everything_and_no_empty_group_is_made():
    assert partition(TREES, TREES.__getitem__, 1) == [sorted(TREES)]
    assert partition({"Act": TREES["Act"]}, TREES.__getitem__, 4) == [["Act"]]


def square_all(numbers):
    return [n * n for n in numbers]


def test_forked_groups_give_what_one_process_gives():
    groups = [[1, 2], [3], [4, 5, 6]]
    assert map_forked(square_all, groups) == [[1, 4], [9], [16, 25, 36]]


def test_shared_items_are_each_taken_once_after_a_process_own_group():
    taken = map_forked(list, [[-1], [-2]], shared=range(50))
    assert [items[0] for items in taken] == [-1, -2]  # each process starts with its own group
    assert sorted(item for items in taken for item in items) == [-2, -1, *range(50)]
    assert map_forked(list, [[1]], shared=[2, 3]) == [[1, 2, 3]]  # one process takes them all
    # more than the pipe of shared indices holds: the rest are dealt out, and still each is done once
    taken = map_forked(list, [[], [], []], shared=range(5000))
    assert sorted(item for items in taken for item in items) == list(range(5000))


def fail_on_three(numbers):
    numbers = list(numbers)
    if 3 in numbers:
        raise ValueError("three is not wanted")
    return numbers


def test_a_workers_failure_is_raised_here_with_its_traceback_and_no_worker_is_left():
    with pytest.raises(RuntimeError, match="ValueError: three is not wanted"):
        map_forked(fail_on_three, [[1], [3]])
    with pytest.raises(ValueError, match="three"):  # this process's own group fails: workers still collected
        map_forked(fail_on_three, [[3], [1], [2]])
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left to wait for


def test_the_knowledge_base_is_the_same_byte_for_byte_whatever_the_number_of_processes():
    from opdoc.pipeline import TEMPLATES, Paths, load
    from opdoc.render import render_all
    from opdoc_testing import ROOT

    outputs = []
    for jobs in (1, 3):
        catalog, evaluator = load(Paths(root=ROOT), checks=False)
        outputs.append(render_all(catalog, evaluator, TEMPLATES, jobs=jobs).files)
    assert outputs[0].keys() == outputs[1].keys()
    assert [name for name in outputs[0] if outputs[0][name] != outputs[1][name]] == []


@pytest.mark.parametrize("given", ["0", "-2", "two"])
def test_a_number_of_processes_that_is_not_a_whole_number_from_1_is_refused(given, capsys):
    from opdoc.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["build", "--jobs", given])
    assert exit_.value.code == 2
    assert f"expected a whole number >= 1, got '{given}'" in capsys.readouterr().err


def _problems_of(model_dir, jobs: int) -> list:
    from opdoc.catalog import load_catalog
    from opdoc.spec import SpecError

    with pytest.raises(SpecError) as error:
        load_catalog(model_dir, model_dir, jobs)
    return error.value.problems


def test_a_catalog_read_by_several_processes_is_the_one_read_by_one(tmp_path):
    import shutil

    from opdoc.catalog import load_catalog
    from opdoc_testing import ROOT

    model_dir = tmp_path / "deepseek_ocr"
    shutil.copytree(ROOT / "specs" / "deepseek_ocr", model_dir)
    one, three = (load_catalog(model_dir, tmp_path, jobs) for jobs in (1, 3))
    assert list(one.specs) == list(three.specs) and one.model == three.model
    assert all(one.specs[op].spec == three.specs[op].spec and one.specs[op].exprs == three.specs[op].exprs
               and one.specs[op].located.lines == three.specs[op].located.lines for op in one.specs)
    # Problems in the model and in three specs, read in different processes: every one is reported
    # (sorted by file and line, as every report is; the missing title is reported on line 1).
    model = model_dir / "model.yaml"
    model.write_text(model.read_text(encoding="utf-8").replace("\ntitle:", "\ntitel:", 1), encoding="utf-8")
    for name in ("DeepseekV2MLP", "LayerNorm2d", "MLPBlock"):
        spec = model_dir / f"{name}.yaml"
        spec.write_text(spec.read_text(encoding="utf-8") + "unknown_key: 1\n", encoding="utf-8")
    serial = _problems_of(model_dir, 1)
    assert _problems_of(model_dir, 3) == serial
    assert [(problem.path.rsplit("/", 1)[-1], problem.field) for problem in serial] == [
        ("DeepseekV2MLP.yaml", "unknown_key"), ("LayerNorm2d.yaml", "unknown_key"),
        ("MLPBlock.yaml", "unknown_key"), ("model.yaml", "title"), ("model.yaml", "titel")]
