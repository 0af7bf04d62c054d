"""The one way every entry point turns a bad input into a message: `error: <message>` on
stderr and exit status 1 (argparse's usage errors keep their exit status 2)."""
import argparse
import sys

from utils.errors import DataError

CLI_ERRORS = (DataError, FileNotFoundError, ValueError, OSError)


def run_cli(fn, *args, **kwargs):
    """fn(*args, **kwargs); a data or file error ends the program with its message."""
    try:
        return fn(*args, **kwargs)
    except CLI_ERRORS as err:  # bad data; a file, model directory or hub id that cannot be read
        sys.exit(f"error: {err}")


def str2bool(v):
    """An argparse type for yes/no flags (`--with_kl false`)."""
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def float_list(text):
    """An argparse type for a comma list of numbers (`--threshold_sweep 0.2,0.4`)."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
