"""Files that are not op-docs give one clear finding, never a traceback."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lint_helpers import SYMBOLS, VALID_TEXT, lint_file

from opdoc.lint import lint_paths


def only(report):
    assert len(report.findings) == 1, [str(f) for f in report.findings]
    return report.findings[0]


def test_wrong_extension(tmp_path):
    path = tmp_path / "op-TinyNorm.txt"
    path.write_text(VALID_TEXT)
    found = only(lint_file(path))
    assert (found.rule, found.line, found.severity) == ("OD001", 1, "error")
    assert "not a markdown file (.txt)" in found.message


def test_empty_and_blank_files(tmp_path):
    (tmp_path / "op-Empty.md").write_bytes(b"")
    (tmp_path / "op-Blank.md").write_text("  \n\n\t\n")
    report = lint_paths([tmp_path / "op-Empty.md", tmp_path / "op-Blank.md"], mermaid=False, symbols=SYMBOLS)
    assert [(f.rule, f.line) for f in report.findings] == [("OD002", 1), ("OD002", 1)]
    assert report.exit_code == 1


def test_binary_files(tmp_path):
    nul = tmp_path / "op-Nul.md"
    nul.write_bytes(b"# Nul\n\x00\x01\x02")
    latin = tmp_path / "op-Latin.md"
    latin.write_bytes("# Latin\ncaf\xe9\n".encode("latin-1"))
    report = lint_paths([nul, latin], mermaid=False, symbols=SYMBOLS)
    assert [f.rule for f in report.findings] == ["OD003", "OD003"]
    assert "NUL bytes (first at byte 6)" in report.findings[0].message
    assert "not valid UTF-8 (byte 11" in report.findings[1].message


def test_huge_file_is_not_read(tmp_path):
    path = tmp_path / "op-Huge.md"
    with path.open("wb") as handle:
        handle.write(b"# Huge\n")
        handle.truncate(2 * 1024 * 1024 + 1)
    found = only(lint_file(path))
    assert found.rule == "OD004" and "over the 2.0 MiB limit" in found.message


def test_missing_path_and_directory_without_docs(tmp_path):
    (tmp_path / "notes.md").write_text("# notes\n")
    report = lint_paths([tmp_path / "op-Nope.md", tmp_path], mermaid=False, symbols=SYMBOLS)
    assert [(f.rule, f.severity) for f in report.findings] == [("OD005", "error"), ("OD006", "warning")]
    assert "no such file" in report.findings[0].message
    warnings_only = lint_paths([tmp_path], mermaid=False, symbols=SYMBOLS)
    assert warnings_only.exit_code == 0


def test_directory_means_its_op_docs(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "op-TinyNorm.md").write_text(VALID_TEXT)
    (tmp_path / "readme.md").write_text("not an op-doc")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "op-Vendored.md").write_text("")
    report = lint_paths([tmp_path], mermaid=False, symbols=SYMBOLS)
    assert report.files == [os.path.join(str(tmp_path), "sub", "op-TinyNorm.md")]
    assert report.findings == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8")))
def test_no_input_crashes_a_rule(tmp_path, data):
    path = tmp_path / "op-Fuzz.md"
    path.write_bytes(data)
    lint_file(path)  # a rule that raised would fail the test with its traceback


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=len(VALID_TEXT)), st.integers(min_value=0, max_value=400), st.text(max_size=30))
def test_mangled_valid_docs_never_crash_a_rule(tmp_path, start, length, insert):
    path = tmp_path / "op-TinyNorm.md"
    path.write_text(VALID_TEXT[:start] + insert + VALID_TEXT[start + length :], encoding="utf-8")
    lint_file(path)
