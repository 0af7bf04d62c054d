"""Errors every layer raises: the bottom of the import graph. `utils.cli.run_cli` turns these
(and file errors, OSError) into one line `error: ...`; any other exception is a bug and keeps
its traceback."""


class DataError(ValueError):
    """Bad input data; the message names the file and the record."""


class ConfigError(ValueError):
    """A bad setting: a flag combination, a model or calibration file that does not fit the run;
    the message names the file or the flag."""
