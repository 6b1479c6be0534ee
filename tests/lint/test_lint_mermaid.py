"""Mermaid diagrams: parsed by mermaid itself in one headless Chromium session
per lint run; a missing browser or bundle is a finding with install advice."""

from __future__ import annotations

import sys
import time
from unittest import mock

import pytest
from lint_helpers import SEED_004, SYMBOLS, VALID_TEXT, copy_seed, edit, line_of, requires_browser

from opdoc.lint import lint_paths
from opdoc.lint import engine
from opdoc.lint.mermaid import parse_diagrams

BROKEN = (
    edit("# TinyNorm\n", "# TinyBroken\n")
    .replace("    Input->>Norm: forward(x)\n", "    Input->>Norm forward(x)\n")
    .replace(
        "## References\n",
        "## References\n- the flow once more:\n\n```mermaid\nnot a diagram type\n    A --> B\n```\n",
    )
)
FLOWCHART = edit("# TinyNorm\n", "# TinyFlow\n").replace(
    "```mermaid\nsequenceDiagram\n", "```mermaid\nflowchart LR\n    A[x] --> B[y]\n```\n\n```mermaid\nsequenceDiagram\n"
)


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory):
    """Lint every diagram fixture in a single run and record the browser calls."""
    directory = tmp_path_factory.mktemp("mermaid")
    (directory / "op-TinyNorm.md").write_text(VALID_TEXT, encoding="utf-8")
    (directory / "op-TinyBroken.md").write_text(BROKEN, encoding="utf-8")
    (directory / "op-TinyFlow.md").write_text(FLOWCHART, encoding="utf-8")
    if SEED_004.is_file():
        copy_seed(directory)
    with mock.patch.object(engine, "parse_diagrams", wraps=parse_diagrams) as spy:
        started = time.perf_counter()
        report = lint_paths([directory], symbols=SYMBOLS)
        elapsed = time.perf_counter() - started
    return directory, report, spy, elapsed


def findings_for(report, name, rule):
    return [f for f in report.findings if f.path.endswith(name) and f.rule == rule]


@pytest.mark.browser
@requires_browser
def test_all_diagrams_go_through_one_browser_call(browser_run):
    directory, report, spy, elapsed = browser_run
    assert spy.call_count == 1
    (sources,), _ = spy.call_args
    expected = 1 + 2 + 2 + (1 if SEED_004.is_file() else 0)
    assert len(sources) == expected == report.diagrams
    assert report.mermaid_problem is None
    assert elapsed < 30, elapsed  # one browser start, a few diagrams


@pytest.mark.browser
@requires_browser
def test_valid_diagrams_pass(browser_run):
    _, report, _, _ = browser_run
    assert not [f for f in report.findings if f.path.endswith("op-TinyNorm.md")]
    # two diagrams, both valid; the flowchart is fine since a sequenceDiagram is also present
    assert not [f for f in report.findings if f.path.endswith("op-TinyFlow.md")]
    if SEED_004.is_file():
        assert not findings_for(report, "op-DeepseekV2DecoderLayer.md", "OD503")


@pytest.mark.browser
@requires_browser
def test_parse_errors_point_at_the_line(browser_run):
    _, report, _, _ = browser_run
    found = findings_for(report, "op-TinyBroken.md", "OD503")
    assert [f.line for f in found] == [line_of(BROKEN, "Input->>Norm forward(x)"), line_of(BROKEN, "not a diagram type")]
    assert found[0].message.startswith("mermaid parse error: expected")
    assert "does not recognise the diagram type" in found[1].message
    assert {f.rule for f in report.findings if f.path.endswith("op-TinyBroken.md")} == {"OD503"}


def _two_docs(tmp_path):
    (tmp_path / "op-TinyNorm.md").write_text(VALID_TEXT, encoding="utf-8")
    (tmp_path / "op-TinyFlow.md").write_text(FLOWCHART.replace("# TinyFlow", "# TinyFlow"), encoding="utf-8")
    return [tmp_path / "op-TinyFlow.md", tmp_path / "op-TinyNorm.md"]


def test_missing_chromium_is_one_finding_with_advice(tmp_path, monkeypatch):
    monkeypatch.setenv("OPDOC_CHROMIUM", str(tmp_path / "no-chromium"))
    report = lint_paths(_two_docs(tmp_path), symbols=SYMBOLS)
    found = [f for f in report.findings if f.rule == "OD504"]
    assert len(found) == 1 and found[0].severity == "error"
    assert found[0].line == line_of(FLOWCHART, "```mermaid")
    assert "apt-get install chromium" in found[0].message and "--no-mermaid" in found[0].message
    assert "3 diagram(s) in 2 file(s) not checked" in found[0].message
    assert report.exit_code == 1


def test_missing_mermaid_bundle_says_npm_install(tmp_path, monkeypatch):
    monkeypatch.setenv("OPDOC_CHROMIUM", sys.executable)  # any existing file gets past the first check
    monkeypatch.setenv("OPDOC_MERMAID_JS", str(tmp_path / "mermaid.min.js"))
    report = lint_paths(_two_docs(tmp_path)[1:], symbols=SYMBOLS)
    assert [f.rule for f in report.findings] == ["OD504"]
    assert "npm install" in report.findings[0].message


def test_missing_playwright_says_pip_install(tmp_path, monkeypatch):
    bundle = tmp_path / "mermaid.min.js"
    bundle.write_text("// stand-in")
    monkeypatch.setenv("OPDOC_CHROMIUM", sys.executable)
    monkeypatch.setenv("OPDOC_MERMAID_JS", str(bundle))
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    report = lint_paths(_two_docs(tmp_path)[1:], symbols=SYMBOLS)
    assert [f.rule for f in report.findings] == ["OD504"]
    assert "pip install" in report.findings[0].message


def test_no_mermaid_skips_the_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("OPDOC_CHROMIUM", str(tmp_path / "no-chromium"))
    report = lint_paths(_two_docs(tmp_path), symbols=SYMBOLS, mermaid=False)
    assert report.findings == [] and report.diagrams == 0


@pytest.mark.browser
@requires_browser
def test_a_browser_that_will_not_start_is_a_finding(tmp_path, monkeypatch):
    monkeypatch.setenv("OPDOC_CHROMIUM", "/bin/false")
    report = lint_paths(_two_docs(tmp_path)[1:], symbols=SYMBOLS)
    assert [f.rule for f in report.findings] == ["OD504"]
    assert "could not parse the diagrams" in report.findings[0].message
