"""The one way every entry point turns a bad input into a message: one line
`error: FILE[: line N]: problem` on stderr and exit status 1 (argparse's usage errors, flag
values included (utils/flag_types.py), keep their exit status 2), never a traceback."""

from __future__ import annotations

import sys
from typing import Any, Callable

from utils.errors import ConfigError, DataError

# the project's own errors and file errors; anything else (a plain ValueError, KeyError ...) is a
# bug and keeps its traceback
CLI_ERRORS = (DataError, ConfigError, OSError)
INTERRUPTED = 130  # the exit status of every entry point stopped by Ctrl-C (128 + SIGINT)


class Interrupted(SystemExit):
    """Exit status 130 after Ctrl-C, its message (what was kept, how to continue) already printed."""

    def __init__(self, message: str):
        super().__init__(INTERRUPTED)
        self.message = message

    def __str__(self) -> str:
        return self.message


def exit_interrupted(message: str) -> None:
    """Print `message` on stderr and end the program with status 130."""
    print(message, file=sys.stderr)
    raise Interrupted(message)


def message(err: BaseException) -> str:
    """The one-line message of an error: a file error names the file."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split("\n")[:1]) if not isinstance(err, DataError) else str(err)


def run_cli(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs); a data, setting or file error, or Ctrl-C, ends the program with one
    line; any other exception is a bug, and keeps its traceback."""
    try:
        return fn(*args, **kwargs)
    except CLI_ERRORS as err:  # bad data or settings; a file, model directory or hub id that cannot be read
        sys.exit(f"error: {message(err)}")
    except KeyboardInterrupt:
        exit_interrupted("interrupted")
