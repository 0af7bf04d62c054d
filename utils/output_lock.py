"""One run per output: an exclusive `fcntl.flock` on OUT.lock, held for the whole run.

    with OutputLock(save_file):
        ...  # write save_file and everything beside it

The output's real path (symlinks resolved) names the lock, so a second run that reaches the
same file through a link shares it. A second run on the same output is refused at once with a `DataError` naming the PID of the
run that holds it. The lock dies with its process (a killed run never leaves a stale lock);
the lock file is removed on release, and a run that locked a file removed under it tries again.
"""

from __future__ import annotations

import fcntl
import os

from utils.errors import DataError


class OutputLock:
    def __init__(self, path):
        self.given = path
        self.path = os.path.realpath(path) + ".lock"  # a symlink to the output shares its lock
        self.fd = None

    def acquire(self) -> OutputLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                given, real = os.path.abspath(self.given), self.path[:-5]
                shown = given if given == real else f"{given} (that is {real})"
                raise DataError(f"{shown}: another run (PID {holder}) is writing it; wait for it to "
                                "finish or choose another --save_file") from None
            try:  # the file we locked may have been removed by the run that released it
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still held, so no other run holds a removed file
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
