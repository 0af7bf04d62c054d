"""Plain-JSON files that name their own format (a checkpoint's calibration and error predictor,
the link calibration): read back checked, written atomically so a killed run never leaves half a file."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from utils.errors import DataError


def read_versioned(path: str, fmt: str, what: str, remedy: str = "") -> dict[str, Any]:
    """The JSON object in `path` whose "format" is `fmt`, or a DataError naming the file; an
    older version of `fmt` is named as such, with `remedy`."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as err:
            raise DataError(f"{path}: not JSON ({err})") from None
    found = data.get("format") if isinstance(data, dict) else None
    if is_older(found, fmt):
        raise DataError(f"{path}: a {what} of an older format ({found}){'; ' + remedy if remedy else ''}")
    if found != fmt:
        raise DataError(f"{path}: not a {what} ({fmt})")
    return data


def is_older(found: Any, fmt: str) -> bool:
    """Whether the format `found` is another version of `fmt` ("name/version")."""
    return isinstance(found, str) and found != fmt and found.startswith(fmt.rsplit("/", 1)[0] + "/")


def format_of(path: str) -> Optional[str]:
    """The "format" a JSON file names, or None (no such file, not JSON, no format)."""
    try:
        with open(path, encoding="utf-8") as f:
            found = json.load(f).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def write_atomic(path: str, data: Any, indent: Optional[int] = None) -> str:
    """Write `data` as JSON to `path` through a temporary file beside it; returns `path`."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)
    os.replace(path + ".tmp", path)
    return path
