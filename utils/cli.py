"""The one way every entry point turns a bad input into a message: one line
`error: FILE[: line N]: problem` on stderr and exit status 1 (argparse's usage errors, flag
values included (utils/flag_types.py), keep their exit status 2), never a traceback."""
import sys

from utils.errors import DataError

CLI_ERRORS = (DataError, ValueError, OSError)


def message(err):
    """The one-line message of an error: a file error names the file."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split("\n")[:1]) if not isinstance(err, DataError) else str(err)


def run_cli(fn, *args, **kwargs):
    """fn(*args, **kwargs); a data or file error, or Ctrl-C, ends the program with one line."""
    try:
        return fn(*args, **kwargs)
    except CLI_ERRORS as err:  # bad data; a file, model directory or hub id that cannot be read
        sys.exit(f"error: {message(err)}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
