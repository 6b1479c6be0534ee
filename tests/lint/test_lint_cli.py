"""The command line: output formats and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lint_helpers import VALID_TEXT, edit, line_of

from opdoc.lint import run_lint

# One error (OD901) and one warning (OD204).
BROKEN = edit("output: 1 × 4096 × 1024 × 2 = 8 MiB", "output: 1 × 4096 × 1024 × 2 = 9 MiB").replace(
    "## References\n", "## Optimization Opportunities\n- fuse it\n\n## References\n"
)
WARNING_ONLY = edit("## References\n", "## Optimization Opportunities\n- fuse it\n\n## References\n")
ERROR_LINE = line_of(BROKEN, "= 9 MiB")
WARNING_LINE = line_of(BROKEN, "## Optimization Opportunities")


@pytest.fixture(autouse=True)
def kb_symbols(tmp_path, monkeypatch):
    """Run from a directory whose knowledge base declares B, S and h."""
    spec = tmp_path / "specs" / "tiny"
    spec.mkdir(parents=True)
    (spec / "model.yaml").write_text("symbols:\n  B: batch\n  S: tokens\n  h: hidden size\n")
    monkeypatch.chdir(tmp_path)


def write(name: str, text: str) -> str:
    Path("docs").mkdir(exist_ok=True)
    path = Path("docs") / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_text_format(capsys):
    path = write("op-TinyNorm.md", BROKEN)
    assert run_lint([path, "--no-mermaid"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}:{ERROR_LINE}: OD901 error: arithmetic: `1 × 4096 × 1024 × 2` evaluates to 8 MiB")
    assert out[1] == (
        f"{path}:{WARNING_LINE}: OD204 warning: extra section `## Optimization Opportunities` is not in the template; "
        "the template lists optimization opportunities under `## Key Performance Characteristics`"
    )
    assert "Summary by rule:" in out
    assert any(line.split()[:3] == ["OD901", "error", "1"] for line in out)
    assert any(line.split()[:3] == ["OD204", "warning", "1"] for line in out)
    assert out[-1] == "1 error, 1 warning in 1 file"


def test_github_format(capsys):
    path = write("op-TinyNorm.md", BROKEN)
    assert run_lint(["--format", "github", "--no-mermaid", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"::error file={path},line={ERROR_LINE}::OD901 arithmetic: `1 × 4096 × 1024 × 2` evaluates to 8 MiB, not 9 MiB",
        f"::warning file={path},line={WARNING_LINE}::OD204 extra section `## Optimization Opportunities` is not in the "
        "template; the template lists optimization opportunities under `## Key Performance Characteristics`",
    ]


def test_json_format(capsys):
    path = write("op-TinyNorm.md", BROKEN)
    assert run_lint(["--format=json", "--no-mermaid", path]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [(d["rule"], d["severity"], d["line"], d["path"]) for d in data] == [
        ("OD901", "error", ERROR_LINE, path),
        ("OD204", "warning", WARNING_LINE, path),
    ]
    assert set(data[0]) == {"path", "line", "rule", "severity", "message"}


def test_warnings_alone_exit_zero(capsys):
    write("op-TinyNorm.md", WARNING_ONLY)
    assert run_lint(["docs", "--no-mermaid"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 errors, 1 warning in 1 file"


def test_clean_run_and_default_path(capsys):
    Path("site").mkdir()
    (Path("site") / "op-TinyNorm.md").write_text(VALID_TEXT, encoding="utf-8")
    assert run_lint(["--no-mermaid"]) == 0
    assert capsys.readouterr().out == "0 errors, 0 warnings in 1 file\n"
    assert run_lint(["--no-mermaid", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run_lint(["--no-mermaid", "--format", "github"]) == 0
    assert capsys.readouterr().out == ""


def test_usage_errors_exit_two(capsys):
    assert run_lint(["--format", "xml"]) == 2
    assert run_lint(["--source", "no-such-dir", "--no-mermaid", "."]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_github_escapes_newlines_and_commas(capsys):
    path = write("op-Bad,Name.md", "# Bad\n")
    run_lint(["--format", "github", "--no-mermaid", path])
    out = capsys.readouterr().out
    assert "file=docs/op-Bad%2CName.md," in out


def test_list_rules(capsys):
    assert run_lint(["--list-rules"]) == 0
    assert "OD901  error" in capsys.readouterr().out


def test_python_dash_m():
    path = write("op-TinyNorm.md", BROKEN)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "opdoc.lint", "--no-mermaid", "--format", "json", path],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert [d["rule"] for d in json.loads(done.stdout)] == ["OD901", "OD204"]
