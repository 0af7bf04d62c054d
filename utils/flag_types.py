"""argparse `type=` validators: a bad flag value is a usage error (exit 2) when the flags are
parsed, before any model is loaded or any file written."""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Callable, NoReturn


def _fail(message: str) -> NoReturn:
    raise argparse.ArgumentTypeError(message)


def _int(text):
    try:
        return int(text)
    except ValueError:
        _fail(f"expected a whole number, got {text!r}")


def positive_int(text: str) -> int:
    value = _int(text)
    return value if value >= 1 else _fail(f"expected a whole number of at least 1, got {text!r}")


def nonnegative_int(text: str) -> int:
    value = _int(text)
    return value if value >= 0 else _fail(f"expected a whole number of at least 0, got {text!r}")


def whole_number(high: int, low: int = 1) -> Callable[[str], int]:
    """A `type=` for a size flag: a whole number from `low` to `high`, checked when the flags are
    parsed, so that an absurd size (--max_spanLen 100000) never reaches an allocation."""
    def parse(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            _fail(f"expected a whole number from {low} to {high}, got {text!r}")
        return value
    parse.__name__ = f"whole number from {low} to {high}"  # argparse's name for the type
    return parse


def finite_float(text: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                 what: str = "a number") -> float:
    try:
        value = float(text)
    except ValueError:
        _fail(f"expected a number, got {text!r}")
    if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
        _fail(f"expected {what}, got {text!r}")
    return value


def number(text: str) -> float:
    return finite_float(text)


def positive_float(text: str) -> float:
    return finite_float(text, 0.0, low_open=True, what="a number above 0")


def nonnegative_float(text: str) -> float:
    return finite_float(text, 0.0, what="a number of at least 0")


def fraction(text: str) -> float:
    """A dropout rate and the like: 0 <= value < 1."""
    value = finite_float(text, 0.0, 1.0, what="a number from 0 to below 1")
    return value if value < 1 else _fail(f"expected a number from 0 to below 1, got {text!r}")


def number_list(text: str) -> list[float]:
    """A comma list of finite numbers (`--threshold_sweep 0.2,0.4`)."""
    return [finite_float(x) for x in text.split(",")]


def existing_file(text: str) -> str:
    return text if os.path.isfile(text) else _fail(f"{text}: no such file")


def existing_dir(text: str) -> str:
    return text if os.path.isdir(text) else _fail(f"{text}: no such directory")


def existing_path(text: str) -> str:
    """An existing file or directory."""
    return text if os.path.exists(text) else _fail(f"{text}: no such file or directory")


def input_file(text: str) -> str:
    """An existing file, or - for standard input."""
    return text if text == "-" else existing_file(text)


def output_file(text: str) -> str:
    """A file to write: not an existing directory."""
    return _fail(f"{text}: is a directory") if os.path.isdir(text) else text


def output_dir(text: str) -> str:
    """A directory to write into: not an existing file."""
    return _fail(f"{text}: is a file, not a directory") if os.path.exists(text) and not os.path.isdir(text) else text


def device(text: str) -> str:
    """auto, cpu, or cuda[:N] on a machine that has that GPU."""
    if text in ("auto", "cpu"):
        return text
    kind, colon, index = text.partition(":")
    if kind != "cuda" or (colon and not (index.isascii() and index.isdigit())):  # "cuda:" and "cuda:²" too
        _fail(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    import torch

    if not torch.cuda.is_available():
        _fail(f"{text}: no CUDA GPU is available here (use cpu or auto)")
    if index and int(index) >= torch.cuda.device_count():
        _fail(f"{text}: this machine has {torch.cuda.device_count()} CUDA GPUs")
    return text


def json_labels(text: str) -> str:
    """A JSON file of {"LABEL": "description"}: the path, once checked."""
    existing_file(text)
    try:
        with open(text, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (UnicodeDecodeError, ValueError) as err:
        _fail(f"{text}: not a JSON file ({err})")
    if not (isinstance(data, dict) and data and all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())):
        _fail(f'{text}: expected a JSON object {{"LABEL": "description", ...}}')
    return text


def str2bool(v: str) -> bool:
    """A yes/no flag (`--with_kl false`)."""
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    _fail(f"expected a boolean, got {v!r}")
