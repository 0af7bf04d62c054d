"""Share work out to forked processes, results in input order (`local_inference.py --workers`).

The processes are forked from the caller, so they start at once with the model already in
memory (copy-on-write), and each runs torch on one thread: on a CPU, N processes of one thread
each keep N cores busy for the whole run, where N threads in one process wait for each other
at every small operation. The work itself (a function and its items) never leaves the caller's
memory: only the items and the results are pickled, through one pipe per worker.

The items are taken from their iterable as the workers need them, at most `ahead` per worker
ahead of the result the caller waits for, so a stream of any length goes through in bounded
memory. A worker that dies (the OOM killer, `kill -9`) or raises stops the run at once with
`WorkerFailed`, naming the worker and its fate: the parent waits on every worker's pipe and on
its process at the same time, so no death goes unseen (multiprocessing.Pool would wait forever).
"""
import multiprocessing
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any

from utils.cli import CLI_ERRORS

_TASK: Callable[[Any], Any] | None = None  # the function the forked workers run (inherited, never pickled)


class WorkerFailed(ChildProcessError):
    """A worker died or raised; the message names its process id and what happened."""


def _serve(conn: Any) -> None:
    """A worker: run _TASK on each (key, item) received, send back (key, ok, result)."""
    import torch

    task = _TASK
    assert task is not None  # in_processes sets it before it forks the workers
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops us
    while True:
        try:
            key, item = conn.recv()
        except EOFError:  # the parent closed our pipe
            return
        try:
            reply = (key, True, task(item))
        except CLI_ERRORS as err:  # the project's own errors (bad data, a file): passed on as they are
            reply = (key, False, err)
        except Exception as err:  # a bug: its traceback here, one line in the parent
            traceback.print_exc(file=sys.stderr)
            reply = (key, False, f"{type(err).__name__}: {err}")
        try:
            conn.send(reply)
        except Exception as err:  # a result that does not pickle
            conn.send((key, False, f"its result could not be sent back ({type(err).__name__}: {err})"))


def fate(process: multiprocessing.Process) -> str:
    """How a worker process ended, in words."""
    process.join(timeout=1)
    code = process.exitcode
    if code is None:
        return f"worker PID {process.pid} closed its pipe"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else "?"
        why = " (the out-of-memory killer, or kill -9)" if -code == signal.SIGKILL else ""
        return f"worker PID {process.pid} was killed by signal {-code} ({name}){why}"
    return f"worker PID {process.pid} exited with status {code}"


def in_processes(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, ahead: int = 2) -> Iterator[Any]:
    """fn(item) for each item, in order, computed in `workers` forked processes, at most
    `ahead` * `workers` items taken and not yet yielded. A worker's error of the kinds the
    command line prints in one line (`utils.cli.CLI_ERRORS`) is raised as it is; any other failure, or a worker's death, as `WorkerFailed`. The
    workers are stopped when the generator ends, fails or is closed."""
    global _TASK
    if _TASK is not None:
        raise RuntimeError("in_processes is already running in this process")
    _TASK = fn
    context = multiprocessing.get_context("fork")
    procs, pipes = [], []
    try:
        for _ in range(workers):
            parent, child = context.Pipe()
            proc = context.Process(target=_serve, args=(child,), daemon=True)
            proc.start()
            child.close()
            procs.append(proc)
            pipes.append(parent)
        yield from _ordered(items, procs, pipes, ahead * workers)
    finally:
        _TASK = None
        for proc, pipe in zip(procs, pipes):
            pipe.close()
            if proc.is_alive():
                proc.kill()
            proc.join()


def _ordered(items, procs, pipes, window):
    """The results of `items` in input order, each item sent to an idle worker."""
    items, idle, busy, done = iter(items), list(range(len(procs))), {}, {}
    sent = given = 0
    exhausted = False
    while True:
        while idle and not exhausted and sent - given < window:
            try:
                item = next(items)
            except StopIteration:
                exhausted = True
                break
            worker = idle.pop()
            try:
                pipes[worker].send((sent, item))
            except OSError:  # the worker is gone
                raise WorkerFailed(fate(procs[worker])) from None
            busy[worker] = sent
            sent += 1
        if given in done:
            yield done.pop(given)
            given += 1
            continue
        if exhausted and given == sent:
            return
        ready = set(wait([pipes[w] for w in busy] + [p.sentinel for p in procs]))
        for worker in list(busy):
            if pipes[worker] in ready:
                try:
                    key, ok, result = pipes[worker].recv()
                except EOFError:  # died while answering: its sentinel says how
                    raise WorkerFailed(fate(procs[worker])) from None
                if not ok:
                    if isinstance(result, BaseException):
                        raise result
                    raise WorkerFailed(f"worker PID {procs[worker].pid} failed: {result}")
                done[key] = result
                del busy[worker]
                idle.append(worker)
        for proc in procs:
            if proc.sentinel in ready:
                raise WorkerFailed(fate(proc))
