"""Plain-JSON files that name their own format (a checkpoint's calibration and error predictor):
read back checked, written atomically so a killed run never leaves half a file."""
import json
import os


def read_versioned(path, fmt, what):
    """The JSON object in `path` whose "format" is `fmt`, or a ValueError naming the file."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as err:
            raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ValueError(f"{path}: not a {what} ({fmt})")
    return data


def write_atomic(path, data, indent=None):
    """Write `data` as JSON to `path` through a temporary file beside it; returns `path`."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)
    os.replace(path + ".tmp", path)
    return path
