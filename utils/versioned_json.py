"""Plain-JSON files that name their own format (a checkpoint's calibration and error predictor):
read back checked, written atomically so a killed run never leaves half a file."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from utils.errors import DataError


def read_versioned(path: str, fmt: str, what: str) -> dict[str, Any]:
    """The JSON object in `path` whose "format" is `fmt`, or a DataError naming the file."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as err:
            raise DataError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise DataError(f"{path}: not a {what} ({fmt})")
    return data


def write_atomic(path: str, data: Any, indent: Optional[int] = None) -> str:
    """Write `data` as JSON to `path` through a temporary file beside it; returns `path`."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)
    os.replace(path + ".tmp", path)
    return path
