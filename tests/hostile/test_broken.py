"""Item 4 and 5 of issue 9: a broken or hostile spec is a located error (`path:line: field: message`),
exit 1, never a traceback and never a hang; the knowledge base is left as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broken_specs import CASES, WHOLE_FILE
from hostile_specs import tiny_copy
from opdoc_testing import hang_guard as _hang_guard
from opdoc.cli import main

LOCATED = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+): \S")
HANG = 30  # seconds: a guard against hanging, far above the milliseconds a refusal takes


def hang_guard(seconds: int = HANG):
    return _hang_guard(seconds, "still running")


def run_case(name: str, root: Path, capsys) -> tuple[int, list[str]]:
    """Build the tiny fixture broken as CASES[name] says; (exit code, problem lines)."""
    tiny_copy(root)
    CASES[name][0](root)
    with hang_guard():
        code = main(["build", "--root", str(root), "--site", str(root / "site")])
    captured = capsys.readouterr()
    problems = [line for line in captured.err.splitlines() if not re.match(r"\d+ problem\(s\)", line)]
    return code, problems


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_broken_spec_is_a_located_error(name, tmp_path, capsys):
    code, problems = run_case(name, tmp_path / "repo", capsys)
    assert code == 1, f"{name}: exit {code}"
    assert problems, f"{name}: no problem printed"
    for problem in problems:
        located = LOCATED.match(problem)
        if name in WHOLE_FILE:
            assert located or re.match(r"^[^:\n]+: \S", problem), problem
        else:
            assert located and int(located.group("line")) >= 1, f"{name}: not located: {problem}"
    assert any(re.search(CASES[name][1], problem) for problem in problems), f"{name}: {problems}"


YAML_CASES = ["10,000 nested [", "alias bomb", "alias that contains itself", "unhashable key", "duplicate key",
              "lone surrogate in a formula", "lone surrogate in a title", "YAML float that rounds to zero",
              "YAML integer past the digit limit", "NUL character in prose", "bidi override typed into prose"]


@pytest.mark.parametrize("name", YAML_CASES)
def test_the_same_yaml_errors_without_libyaml(name, tmp_path, capsys, monkeypatch):
    """PyYAML's pure-Python reader (no libyaml) recurses and lets surrogate escapes through: same result."""
    import yaml

    import opdoc.yamlfile

    monkeypatch.setattr(opdoc.yamlfile, "_LOADER", yaml.SafeLoader)
    code, problems = run_case(name, tmp_path / "repo", capsys)
    assert code == 1 and problems
    assert all(LOCATED.match(problem) or "nested more than" in problem for problem in problems), problems
