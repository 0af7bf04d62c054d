"""Write only into this program's own output for the same job.

Every output of a run goes through here:

- `refuse_overlaps(outputs, inputs)`: before anything is opened for writing, every file a run
  writes is checked against every file it reads and every other file it writes;
- `refuse_inputs(path, inputs)`: an output is never one of the run's inputs;
- `refuse_foreign(path, what, looks_ours)`: an existing file whose first line is not one of
  our records (a reply cache, a prompts file) is never appended to or truncated;
- `claim_output(path, settings, ...)`: for the JSONL output of a stage, the lock of
  `utils.output_lock` held for the run, and the settings that shape its records kept beside
  it in OUT.settings.json. A rerun with other settings is refused, naming them, unless they
  are `recompute`-able (then the output starts afresh and the caller rewrites every record,
  cheaply, e.g. from the reply cache); a non-empty file without that sidecar is not known to
  be ours and is refused. `overwrite` starts the output afresh, but replaces only a JSONL file
  (a file whose first line is not a JSON object, weights or a data split, is never emptied)
  that is not a reply cache. Every path is compared, and locked, by its real path (symlinks
  resolved), so a link to a file another run holds is refused;
- `refuse_unlike(path, what, heads)`: an existing file that does not start like our `what`
  (an HTML page, a PNG plot) is never overwritten.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Callable, Collection, Iterator, Optional

from utils.errors import DataError
from utils.output_lock import OutputLock
from utils.versioned_json import write_atomic

SIDECAR = ".settings.json"
PROGRAM = "LinkNER"
CACHE_ENTRY_KEYS = frozenset({"key", "attempt", "reply"})  # a line of a reply cache (inference/llm/cache.py)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): the same path, links resolved
        return os.path.realpath(a) == os.path.realpath(b)


Paths = dict[str, Optional[str]] | list[tuple[str, Optional[str]]]  # {flag: path} or (flag, path) pairs


def _pairs(paths: Paths) -> list[tuple[str, str]]:
    """(flag, path) pairs of a {flag: path} dict or a list of pairs; None and '-' skipped."""
    return [(flag, path) for flag, path in (paths.items() if isinstance(paths, dict) else paths)
            if path and path != "-"]


def refuse_inputs(path: str, inputs: Paths) -> None:
    """A DataError if `path` is one of `inputs` ({flag: path} or (flag, path) pairs; None and
    '-' skipped)."""
    for flag, source in _pairs(inputs):
        if _same_file(path, source):
            raise DataError(f"{path}: is also the input ({flag}); writing it would destroy that input; "
                            "choose another output file")


def refuse_overlaps(outputs: Paths, inputs: Paths) -> None:
    """A DataError, before anything is written, if a file of `outputs` is one of `inputs` or
    another of `outputs` (each {flag: path} or (flag, path) pairs; None and '-' skipped)."""
    outs = _pairs(outputs)
    for i, (flag, path) in enumerate(outs):
        refuse_inputs(path, inputs)
        for other_flag, other in outs[i + 1:]:
            if _same_file(path, other):
                raise DataError(f"{path}: is both {flag} and {other_flag}; one would overwrite the other: "
                                "choose another file for one of them")


def refuse_unlike(path: str, what: str, heads: tuple[bytes, ...]) -> None:
    """A DataError if `path` exists, is not empty, and its first bytes (case and leading
    white space aside) start with none of `heads`: it is then not `what` ("an HTML page"), ours to replace."""
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not {what}")
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb") as f:
        head = f.read(256).lstrip().lower()
    if not any(head.startswith(h.lower()) for h in heads):
        raise DataError(f"{path}: exists and is not {what}; it is left alone: choose another file")


HTML_PAGE = ("an HTML page", (b"<!doctype html", b"<html"))  # refuse_unlike(path, *HTML_PAGE)


def _first_record(path):
    """The first line of `path` as JSON, or None when it is not JSON text."""
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    try:
        return json.loads(first.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None


def refuse_foreign(path: str, what: str, looks_ours: Callable[[dict], bool]) -> None:
    """A DataError if `path` exists, is not empty, and its first line is not a JSON object that
    `looks_ours(record)` accepts: it is then not our `what`, and appending would damage it."""
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not a {what}")
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    record = _first_record(path)
    if not (isinstance(record, dict) and looks_ours(record)):
        raise DataError(f"{path}: exists and is not a {what} of this program; it is left alone: "
                        "choose another file")


def _describe(key, old, new):
    return f"{key} {json.dumps(old)} (now {json.dumps(new)})"


def _differences(old, new):
    return [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def _read_sidecar(path):
    try:
        with open(path + SIDECAR, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict) and data.get("program") == PROGRAM and isinstance(data.get("settings"), dict):
            return data["settings"]
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    return None


def recorded_settings(path: str) -> Optional[dict[str, Any]]:
    """The settings OUT.settings.json says `path` was written with, or None."""
    return _read_sidecar(path)


def _write_sidecar(path, settings):
    write_atomic(path + SIDECAR, {"program": PROGRAM, "output": os.path.basename(path), "settings": settings},
                 indent=2)


def discard_output(path: str, inputs: Optional[dict[str, Optional[str]]] = None) -> None:
    """`--overwrite` in a run that writes nothing there (a dry run): our earlier output, its
    metrics and settings are removed, under the lock; a file not known to be ours is refused."""
    refuse_inputs(path, inputs or {})
    with OutputLock(path):
        if os.path.isfile(path) and os.path.getsize(path) and _read_sidecar(path) is None:
            check_settings(path, {})  # raises: not ours
        for name in (path, path + ".metrics.json", path + SIDECAR):
            if os.path.isfile(name):
                os.remove(name)


def _start_afresh(path):
    """Empty our output and drop its metrics (both ours: checked by the caller)."""
    open(path, "w").close()
    if os.path.isfile(path + ".metrics.json"):
        os.remove(path + ".metrics.json")


def check_settings(path: str, settings: dict[str, Any], overwrite: bool = False,
                   recompute: Collection[str] = ()) -> dict[str, tuple[Any, Any]]:
    """The recomputable settings that changed since `path` was written ({} when none, or when
    it starts afresh); a DataError when others did, or when `path` is not known to be ours (with
    `overwrite`: when it is not ours and not JSONL either, so that emptying it would destroy data)."""
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory; choose an output file")
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return {}
    if overwrite:
        first = _first_record(path)  # a versioned JSON file (calibration, error predictor) names its "format"
        if isinstance(first, dict) and CACHE_ENTRY_KEYS <= first.keys():
            raise DataError(f"{path}: is a reply cache (paid LLM replies), not an output; --overwrite never empties "
                            "it: choose another --save_file")
        if _read_sidecar(path) is None and not (isinstance(first, dict) and "format" not in first):
            raise DataError(f"{path}: exists and is not a JSONL output (its first line is not a JSON object); "
                            "--overwrite replaces only JSONL files, so it is left alone: choose another --save_file")
        return {}
    old = _read_sidecar(path)
    if old is None:
        raise DataError(f"{path}: exists and is not known to be this program's output for this job (no "
                        f"{os.path.basename(path)}{SIDECAR} beside it); it is left alone: use --overwrite to "
                        "replace it, or choose another --save_file")
    changed = _differences(old, settings)
    fixed = [key for key in changed if key not in recompute]
    if fixed:
        raise DataError(f"{path} was written with other settings: "
                        f"{'; '.join(_describe(k, old.get(k), settings.get(k)) for k in fixed)}. "
                        "Rerun with --overwrite to start it afresh, or choose another --save_file")
    return {key: (old.get(key), settings.get(key)) for key in changed}


def start_output(path: str, settings: dict[str, Any], inputs: Optional[dict[str, Optional[str]]] = None,
                 overwrite: bool = False, recompute: Collection[str] = ()) -> dict[str, tuple[Any, Any]]:
    """For a run holding the `OutputLock` of `path` that writes it with `settings` (a JSON-able
    dict): the recomputable settings that changed ({old, new} by name), after which `path`
    holds only records made with `settings` (it is emptied when `overwrite` or a recomputable
    setting changed) and OUT.settings.json says so."""
    refuse_inputs(path, inputs or {})
    settings = json.loads(json.dumps(settings))  # as they will read back
    changed = check_settings(path, settings, overwrite, recompute)
    if overwrite or changed:
        _start_afresh(path)
    _write_sidecar(path, settings)
    return changed


@contextmanager
def claim_output(path: str, settings: dict[str, Any], inputs: Optional[dict[str, Optional[str]]] = None,
                 overwrite: bool = False, recompute: Collection[str] = ()) -> Iterator[dict[str, tuple[Any, Any]]]:
    """`start_output` under the output's lock, held for the block; yields what it returns."""
    refuse_inputs(path, inputs or {})
    with OutputLock(path):
        yield start_output(path, settings, None, overwrite, recompute)  # inputs checked above
