"""Share work out to forked processes, results in input order (`local_inference.py --workers`).

The processes are forked from the caller, so they start at once with the model already in
memory (copy-on-write), and each runs torch on one thread: on a CPU, N processes of one thread
each keep N cores busy for the whole run, where N threads in one process wait for each other
at every small operation. The work itself (a function and its items) never leaves the caller's
memory: only the items and the results are pickled.
"""
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_TASK = None  # the function the forked workers run (inherited, never pickled)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run(item: Any) -> Any:
    return _TASK(item)


def in_processes(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """fn(item) for each item, in order, computed in `workers` forked processes."""
    global _TASK
    if _TASK is not None:
        raise RuntimeError("in_processes is already running in this process")
    _TASK = fn
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_one_thread) as pool:
            yield from pool.imap(_run, items)
    finally:
        _TASK = None
