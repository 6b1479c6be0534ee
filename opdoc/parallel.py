"""The build's work split over the machine's cores: worker processes, each reading some spec files or
making some ops' pages.

Building is CPU-bound Python (sympy, pydantic, jinja2), so threads would not help. Page workers are
forked once the specs are loaded, so they start with the catalog and the evaluator in memory (nothing
is loaded again or sent to them), and send back only what they made; file readers send back what
they read. Work whose cost is hard to guess (files, the ops composed of nothing) is taken item by
item by whichever process is free. Where fork is missing (Windows) or one core is all there is, the
same work runs in this process, group after group. No output depends on the split: each op's page is
computed from the specs alone, and the caller merges the groups in a fixed order.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def cores() -> int:
    """The cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def partition(items: Iterable[str], tree: Callable[[str], frozenset[str]], groups: int) -> list[list[str]]:
    """Items split into at most `groups` lists of about equal work, largest first (Graham's rule).

    An op's size is the sum over its tree (the ops it is composed of, itself included) of their own
    trees' sizes, a stand-in for how large its composed formulas are. Its page costs its size, and
    composing the part of its tree not composed in its group yet costs that part's sizes. An op that
    makes up more than half of a larger op's size (a base under its head, one model under another)
    goes with it, and such a cluster is placed whole, so no large subtree is composed in two workers. On
    DeepSeek-OCR's 53 ops the two groups this makes took the same CPU time within 15%.
    """
    items = list(items)
    size = {item: sum(len(tree(part)) for part in tree(item)) for item in items}
    cluster = {item: item for item in items}
    for item in sorted(items, key=lambda item: (-size[item], item)):  # the largest container first
        container = min((other for other in items if other != item and item in tree(other)
                         and size[item] * 2 > size[other]), key=lambda other: (size[other], other), default=None)
        if container is not None:
            cluster[item] = cluster[container]
    members: dict[str, list[str]] = {}
    for item in items:
        members.setdefault(cluster[item], []).append(item)
    loads, composed, split = [0] * groups, [set() for _ in range(groups)], [[] for _ in range(groups)]

    def cost(names: list[str], group: int) -> int:
        union = frozenset().union(*(tree(name) for name in names))
        return sum(size[name] for name in names) + sum(len(tree(part)) for part in union - composed[group])

    for root in sorted(members, key=lambda root: (-sum(size[name] for name in members[root]), root)):
        names = members[root]
        group = min(range(groups), key=lambda g: (loads[g] + cost(names, g), g))
        loads[group] += cost(names, group)
        composed[group] |= frozenset().union(*(tree(name) for name in names))
        split[group] += names
    return [sorted(names) for names in split if names]


# A shared item is taken by reading its index (4 bytes) from a pipe that every process inherits: a
# pipe's reads are atomic, so each index is read by exactly one process. The indices are written before
# any process reads, so they must fit the pipe's buffer (16 KiB on macOS, 64 KiB on Linux).
_TOKEN = 4
_MOST_SHARED = 4096 // _TOKEN


def map_forked(function: Callable[[Iterator[Item]], Result], groups: Sequence[Sequence[Item]],
               shared: Sequence[Item] = ()) -> list[Result]:
    """[function(items of group) for group in groups], the first group in this process and each other in
    a forked worker. Once through its own group, each process takes `shared` items, one at a time,
    until none is left: whoever is free first takes the next, so the processes end together however
    the groups' costs were guessed. A worker's exception is raised here with the worker's traceback."""
    shared = list(shared)
    if len(shared) > _MOST_SHARED:  # more than the pipe holds: the rest dealt out in turn
        groups = [[*group, *shared[_MOST_SHARED + index::len(groups)]] for index, group in enumerate(groups)]
        shared = shared[:_MOST_SHARED]
    if len(groups) <= 1 or not hasattr(os, "fork"):
        pool = iter(shared)
        return [function(itertools.chain(group, pool)) for group in groups]
    tokens, write = os.pipe()
    try:
        os.write(write, b"".join(index.to_bytes(_TOKEN, "big") for index in range(len(shared))))
    finally:
        os.close(write)  # so that a read finds the end once every index is taken

    def items(group: Sequence[Item]) -> Iterator[Item]:
        yield from group
        while token := os.read(tokens, _TOKEN):
            if len(token) != _TOKEN:  # never seen: a pipe gives whole tokens; wrong work must not follow
                raise RuntimeError(f"read {len(token)} bytes of a {_TOKEN}-byte work item from the pipe")
            yield shared[int.from_bytes(token, "big")]

    try:
        return _forked(lambda group: function(items(group)), groups)
    finally:
        os.close(tokens)


def start_forked(function: Callable[[], Result]) -> Callable[[], Result]:
    """function() begun in a forked worker now; the returned callable waits for the worker and returns
    its result (a worker's exception is raised there, with the worker's traceback). Without fork,
    function() runs when the result is asked for."""
    if not hasattr(os, "fork"):
        return function
    worker = _spawn(function)
    return lambda: _collect([worker])[0]


def _forked(function: Callable[[Sequence[Item]], Result], groups: Sequence[Sequence[Item]]) -> list[Result]:
    workers = [_spawn(lambda group=group: function(group)) for group in groups[1:]]
    try:
        results = [function(groups[0])]
    except BaseException:  # the workers are collected even when this process's own group failed
        with contextlib.suppress(RuntimeError):  # and that failure is the one raised
            _collect(workers)
        raise
    return results + _collect(workers)


def _spawn(function: Callable[[], Result]) -> tuple[int, int]:
    """(pid, the pipe its result comes back on) of a worker forked to run function()."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: run, send the result, and leave without running the parent's exit hooks
        os.close(read)
        code = 0
        try:
            try:
                payload = (True, function())
            except BaseException:  # noqa: BLE001 - every failure goes back to the parent, whole
                payload, code = (False, traceback.format_exc()), 1
            with os.fdopen(write, "wb") as out:
                pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _collect(workers: Sequence[tuple[int, int]]) -> list:
    """Every worker's result, in order; one error naming every worker that failed."""
    failures, results = [], []
    for pid, read in workers:  # read before waiting: a worker blocks until its pipe is drained
        with os.fdopen(read, "rb") as source:
            try:
                ok, payload = pickle.load(source)
            except EOFError:
                ok, payload = False, "the worker ended without sending a result"
        _, status = os.waitpid(pid, 0)
        if ok:
            results.append(payload)
        else:
            failures.append(f"build worker {pid} (exit status {os.waitstatus_to_exitcode(status)}):\n{payload}")
    if failures:
        raise RuntimeError("\n".join(failures))
    return results
