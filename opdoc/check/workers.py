"""Check stage, workers: run the checker's units of work in forked processes, one per core.

The parent has loaded the specs and imported torch and the model package before it forks, so a
worker starts with everything in memory and receives only a unit's index; it sends back the
unit's result (plain rows). The parent hands units out longest first and collects the results in
the order they finish; the runner puts them back in plan order, so the report does not depend on
which worker ran what.

A worker runs torch on one thread: two cores are two workers, and OpenMP's thread pool does not
survive a fork (a child entering a parallel region that its parent had started hangs), so a worker
must not start one. Python's ``fork`` start method is used on purpose (``spawn`` would import
everything again); where it does not exist the runner stays serial.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

_work: Callable[[int], Any] | None = None  # set in the parent before forking, inherited by the workers


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _start_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _call(index: int) -> Any:
    assert _work is not None
    return _work(index)


def run_forked(work: Callable[[int], Any], order: Sequence[int], jobs: int,
               done: Callable[[int, Any], None]) -> None:
    """``work(i)`` for each ``i`` of ``order`` in ``jobs`` forked processes, started in that order;
    ``done(i, result)`` in this process as each one finishes. An exception raised by ``work``
    is raised here with the worker's traceback attached (as its ``__cause__``)."""
    global _work
    _work = work
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_start_worker) as pool:
            pending = {pool.submit(_call, index): index for index in order}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=pending.__getitem__):
                    index = pending.pop(future)
                    try:
                        result = future.result()
                    except BaseException:
                        for other in pending:
                            other.cancel()
                        raise
                    done(index, result)
    finally:
        _work = None
