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
  resolved), so a link to a file another run holds is refused. With `finished`, an output
  started afresh replaces the old one only once the run has finished its own
  (`kept_until_finished`: the old one is set aside as NAME.kept until then, and put back
  byte for byte if the run stops or leaves work undone);
- `refuse_unlike(path, what, heads)`: an existing file that does not start like our `what`
  (an HTML page, a PNG plot) is never overwritten.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Collection, Iterator, Optional

from utils.errors import DataError
from utils.output_lock import OutputLock
from utils.versioned_json import write_atomic

SIDECAR = ".settings.json"
METRICS = ".metrics.json"
KEPT = ".kept"  # NAME.kept: an output set aside by a run that starts it afresh, until that run finishes its own
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
        for name in (path, path + METRICS, path + SIDECAR):
            if os.path.isfile(name):
                os.remove(name)


def _start_afresh(path):
    """Empty our output and drop its metrics (both ours: checked by the caller)."""
    open(path, "w").close()
    if os.path.isfile(path + METRICS):
        os.remove(path + METRICS)


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
    settings = _as_read(settings)
    changed = check_settings(path, settings, overwrite, recompute)
    if overwrite or changed:
        _start_afresh(path)
    _write_sidecar(path, settings)
    return changed


def _as_read(settings: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(settings))  # as they will read back


@contextmanager
def claim_output(path: str, settings: dict[str, Any], inputs: Optional[dict[str, Optional[str]]] = None,
                 overwrite: bool = False, recompute: Collection[str] = (),
                 finished: Optional[Callable[[str], bool]] = None) -> Iterator[dict[str, tuple[Any, Any]]]:
    """`start_output` under the output's lock, held for the block; yields what it returns.
    With `finished`, an output that it starts afresh (`overwrite`, or a recomputable setting
    changed) replaces the one there only if the block ends with `finished(path)` true: until
    then the old one is set aside (`kept_until_finished`)."""
    refuse_inputs(path, inputs or {})
    with OutputLock(path):
        changed = check_settings(path, _as_read(settings), overwrite, recompute)
        afresh = overwrite or bool(changed)
        with kept_until_finished(path, finished) if finished is not None and afresh else nullcontext():
            start_output(path, settings, None, overwrite, recompute)  # inputs checked above
            yield changed


def _kept_names(path: str) -> list[str]:
    """The files of an output: itself, its metrics and its settings (links resolved)."""
    return [os.path.realpath(path + suffix) for suffix in ("", METRICS, SIDECAR)]


@contextmanager
def kept_until_finished(path: str, finished: Callable[[str], bool]) -> Iterator[None]:
    """For a run holding `path`'s lock that starts it afresh: the output there (with its metrics
    and settings) is set aside as NAME.kept, and put back byte for byte unless the block ends
    with `finished(path)` true (a run that stops, or leaves its own work undone, replaces
    nothing); once it is, what was set aside is removed. What a run killed before the end set
    aside is still the output to keep: the next run that starts afresh finds it there."""
    names = _kept_names(path)
    if not (os.path.isfile(names[0] + KEPT) or (os.path.isfile(names[0]) and os.path.getsize(names[0]))):
        yield  # nothing to keep
        return
    for name in names:
        if os.path.isfile(name + KEPT):  # set aside by a run that was killed: its output is the one to drop
            if os.path.isfile(name):
                os.remove(name)
        elif os.path.isfile(name):
            os.replace(name, name + KEPT)
    done = False
    try:
        yield
        done = finished(path)
    finally:
        for name in names:
            if done and os.path.isfile(name + KEPT):
                os.remove(name + KEPT)
            elif not done and os.path.isfile(name + KEPT):
                os.replace(name + KEPT, name)
            elif not done and os.path.isfile(name):
                os.remove(name)  # this run's, where the kept output had none
        if not done:
            print(f"{path}: this run did not finish its own output, so it replaced nothing: the output it was to "
                  "replace is kept as it was", file=sys.stderr)
