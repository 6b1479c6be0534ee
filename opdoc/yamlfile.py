"""Stage 1a, YAML with line numbers: a spec, model, hardware or report file read into plain data, with
the line of every key, and refused whole when it could only fail later (hidden characters, bombs,
numbers YAML rounds away). Imports nothing heavy (no sympy, no pydantic), so that a build's helper
process can read the files while the main process imports sympy (opdoc/prefetch.py)."""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opdoc.charset import hidden_character, name_problem
from opdoc.problems import SpecError, SpecProblem

@dataclass
class Located:
    """A YAML document as plain data plus the line of every key path in it."""

    path: Path
    data: Any
    lines: dict[tuple, int]

    def line_of(self, loc: tuple) -> int:
        """Line of the deepest known prefix of `loc` (pydantic locations may go past what YAML had)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return 1


# libyaml's parser when PyYAML was built with it (same safe constructors, same line marks), else Python's.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"

# Bounds on the work one file can cause. The largest DeepSeek-OCR spec is 18 kB, holds 627 values
# and nests 6 deep; a YAML alias bomb (nine aliases of nine aliases ...) expands to 387 million.
MAX_SPEC_BYTES = 1_000_000
MAX_YAML_VALUES = 100_000  # mappings, sequences and scalars, counting each alias as often as it is used
MAX_YAML_DEPTH = 64


# Files read ahead by the build's helper process (opdoc/prefetch.py): path -> (size, mtime, document).
_AHEAD: dict[str, tuple[int, int, Located]] = {}


def read_ahead(paths: list[Path]) -> dict[str, tuple[int, int, Located]]:
    """The files that read cleanly, each with the size and time of change it had when read (one that
    does not read is left for read_yaml to report, with the caller's display path; anything but a
    plain file, such as a pipe that would block, is not opened)."""
    documents = {}
    for path in paths:
        try:
            before = path.stat()
            if stat.S_ISREG(before.st_mode):
                documents[os.fspath(path)] = (before.st_size, before.st_mtime_ns, read_yaml(path, os.fspath(path)))
        except (OSError, SpecError):
            continue
    return documents


def use_read_ahead(documents: dict[str, tuple[int, int, Located]]) -> None:
    """What this build's helper read, in place of what an earlier build's left unread."""
    _AHEAD.clear()
    _AHEAD.update(documents)


def read_yaml(path: Path, display: str) -> Located:
    """Parse YAML keeping the line of every mapping key and sequence item; raise SpecError on bad YAML.

    Besides YAML syntax, this refuses what would otherwise surface later as a traceback or a hang:
    a file too large, hidden characters (charset.py), nesting or alias expansion past the bounds
    above, a list or mapping used as a key, numbers that are not finite or that YAML rounds to zero.
    A file read ahead (use_read_ahead) is taken as read once, if its size and time of change are
    still what they were.
    """
    ahead = _AHEAD.pop(os.fspath(path), None)
    if ahead is not None:
        with contextlib.suppress(OSError):  # gone since: read it, and say so
            now = path.stat()
            if (now.st_size, now.st_mtime_ns) == ahead[:2]:
                return Located(path, ahead[2].data, ahead[2].lines)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError([SpecProblem(display, 0, "", f"the file is larger than {MAX_SPEC_BYTES:,} bytes; "
                                                         "a spec is a few kilobytes: split it or check what it holds")])
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise SpecError([SpecProblem(display, 0, "", f"cannot read the file: {exc}")]) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    hidden = hidden_character(text)
    if hidden is not None:
        line = text.count("\n", 0, hidden[0]) + 1
        raise SpecError([SpecProblem(display, line, "", hidden[1])])
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecProblem(display, 1, "", "the file is empty; see specs/README.md for the fields a spec needs")])
        reader = _Reader(loader, display)
        data = reader.value(node, (), 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise SpecError([SpecProblem(display, line, "", f"YAML syntax: {exc.problem or exc.context}")]) from None
    except yaml.YAMLError as exc:  # an error without a position (e.g. from the reader)
        raise SpecError([SpecProblem(display, 0, "", f"YAML: {exc}")]) from None
    except RecursionError:  # Python's YAML composer (without libyaml) recurses into nested collections
        raise SpecError([SpecProblem(display, 0, "", f"nested more than {MAX_YAML_DEPTH} levels deep")]) from None
    finally:
        loader.dispose()
    return Located(path, data, {(): node.start_mark.line + 1, **reader.lines})


class _Reader:
    """Builds plain data from a composed YAML node graph, bounded and with the line of every key."""

    def __init__(self, loader, display: str):
        self.loader = loader
        self.display = display
        self.lines: dict[tuple, int] = {}
        self.count = 0

    def problem(self, node: yaml.Node, at: tuple, message: str) -> SpecError:
        field = ".".join(map(str, at[:8])) + (".(...)" if len(at) > 8 else "")
        return SpecError([SpecProblem(self.display, node.start_mark.line + 1, field, message)])

    def value(self, node: yaml.Node, at: tuple, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_YAML_VALUES:
            raise self.problem(node, at, f"the file expands to more than {MAX_YAML_VALUES:,} values "
                                         "(YAML aliases reused many times?); write the values out")
        if depth > MAX_YAML_DEPTH:
            raise self.problem(node, at, f"nested more than {MAX_YAML_DEPTH} levels deep "
                                         "(or an alias that contains itself)")
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.problem(key_node, at, "a key must be a plain name, not a list or a mapping")
                key = self.scalar(key_node, at)
                where = (*at, key)
                if isinstance(key, str) and (problem := name_problem(key)):
                    raise self.problem(key_node, where, problem)
                if key in result:
                    raise self.problem(key_node, where, "duplicate key; keep one of them")
                self.lines[where] = key_node.start_mark.line + 1
                result[key] = self.value(value_node, where, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*at, index)] = item.start_mark.line + 1
                items.append(self.value(item, (*at, index), depth + 1))
            return items
        return self.scalar(node, at)

    def scalar(self, node: yaml.Node, at: tuple) -> Any:
        if node.tag == _STR_TAG:  # 95% of a spec's values: the safe constructor returns the text as it is
            value = node.value
            # The file's text was checked whole (read_yaml); only a double-quoted escape such as
            # "\\u202e" makes a character it did not hold.
            unchecked = node.style == '"'
        else:
            value = self._construct(node, at)
            unchecked = isinstance(value, str)
        if unchecked:
            hidden = hidden_character(value)
            if hidden is not None:
                raise self.problem(node, at, hidden[1])
        if isinstance(value, float) and not _exact_enough(value, node.value):
            raise self.problem(node, at, f"the number {node.value} is not finite, or too large or too small "
                                         "to hold; write a number within 1e-300 and 1e300")
        return value

    def _construct(self, node: yaml.Node, at: tuple) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # e.g. an integer past Python's 4,300-digit limit
            raise self.problem(node, at, f"cannot read this value: {exc}") from None


def _exact_enough(value: float, written: str) -> bool:
    """False for .nan and .inf, and for a written number that a float holds as 0, infinity or a subnormal."""
    if not math.isfinite(value):
        return False
    if value == 0:
        return not re.search(r"[1-9]", written.split("e")[0].split("E")[0])
    return abs(value) >= sys.float_info.min
