"""A budget instead of a threshold: the uncertainty threshold that sends the most uncertain
FRACTION of the listed spans (entities and candidates) to the LLM.

A span is sent when its uncertainty is strictly above the threshold, so equally uncertain
spans are sent or kept together and the share sent is at most the budget. Offline, the
threshold comes from the spans of the file being linked (`threshold_for_budget`); online,
where one sentence is seen at a time, from a table of dev-set uncertainties stored with the
checkpoint (`uncertainty_table`, `table_threshold`, see inference/local/dev_calibration.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

TABLE_POINTS = 1001  # quantiles stored per uncertainty type: budgets resolved to 0.1 %
BUCKET_BITS = 20  # a streamed threshold narrows its bucket of sortable keys by this many bits a pass
HELD = 1 << 22  # values a streamed threshold sorts in memory once its bucket holds no more (32 MB)


def check_budget(fraction: float) -> float:
    """The budget as a float in (0, 1], or a ConfigError naming the problem."""
    fraction = float(fraction)
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"--budget is the share of listed spans to send, in (0, 1]; got {fraction}")
    return fraction


def sent_count(n: int, fraction: float) -> int:
    """How many of n listed spans a budget of `fraction` sends: floor(fraction * n)."""
    return int(np.floor(fraction * n + 1e-9))


def threshold_for_budget(uncertainties: ArrayLike, fraction: float) -> Optional[float]:
    """The threshold above which at most `fraction` of `uncertainties` lie, as many as possible.

    With n values and k = floor(fraction * n), the threshold is the (k + 1)-th largest value
    (spans equal to it stay below); k = n gives one less than the smallest. None when empty.
    """
    fraction = check_budget(fraction)
    values = np.sort(np.asarray(uncertainties, dtype=np.float64))[::-1]
    if not len(values):
        return None
    k = sent_count(len(values), fraction)
    return float(values[k]) if k < len(values) else float(np.nextafter(values[-1], -np.inf))


def _keys(values: np.ndarray) -> np.ndarray:
    """Unsigned 64-bit keys in the order of the float64 `values` (their bits, negatives flipped)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))


def _chunks(groups: Iterable[Sequence[float]], size: int = 1 << 16) -> Iterator[np.ndarray]:
    """The values of `groups` (one short sequence per record) as float64 arrays of about `size`."""
    buffer: list[float] = []
    for group in groups:
        buffer.extend(group)
        if len(buffer) >= size:
            yield np.asarray(buffer, dtype=np.float64)
            buffer = []
    if buffer:
        yield np.asarray(buffer, dtype=np.float64)


def streamed_threshold(passes: Callable[[], Iterable[Sequence[float]]], fraction: float) -> Optional[float]:
    """`threshold_for_budget` of every value `passes()` yields (one sequence per record), read
    again for each pass instead of held: exact. A pass counts the values per bucket of sortable
    keys (`BUCKET_BITS` more bits each time) inside the bucket that holds the threshold; once that
    bucket holds at most `HELD` values, they are sorted. Memory does not grow with the input."""
    fraction = check_budget(fraction)
    n, smallest, rank, prefix, shift = 0, math.inf, 0, 0, 64  # the bucket: keys >> shift == prefix
    while True:
        width = min(BUCKET_BITS, shift)
        counts = np.zeros(1 << width, dtype=np.int64)
        held = []
        for values in _chunks(passes()):
            if shift == 64:
                n, smallest = n + len(values), min(smallest, float(values.min()))
            keys = _keys(values)
            inside = keys if shift == 64 else keys[keys >> np.uint64(shift) == np.uint64(prefix)]
            counts += np.bincount(((inside >> np.uint64(shift - width)) & np.uint64((1 << width) - 1)).astype(np.int64),
                                  minlength=1 << width)
            if shift < 64 and counts.sum() <= HELD:
                held.append(values[keys >> np.uint64(shift) == np.uint64(prefix)])
        if shift == 64:
            if not n:
                return None
            rank = sent_count(n, fraction)  # the wanted value is the (rank + 1)-th largest
            if rank == n:
                return float(np.nextafter(smallest, -np.inf))
        elif counts.sum() <= HELD:
            return float(np.sort(np.concatenate(held))[::-1][rank])
        above = np.cumsum(counts[::-1])  # values in this bucket and every one above it
        top = int(np.searchsorted(above, rank, side="right"))  # buckets, counted from the top
        rank -= int(above[top] - counts[-1 - top])
        prefix, shift = (prefix << width) | (len(counts) - 1 - top), shift - width
        if shift == 0:
            return float(_values_of(np.array([prefix], dtype=np.uint64))[0])


def _values_of(keys: np.ndarray) -> np.ndarray:
    """The float64 values of sortable `keys` (`_keys` undone)."""
    bits = np.where(keys >> np.uint64(63), keys & ~np.uint64(1 << 63), ~keys)
    return bits.view(np.float64)


def uncertainty_table(uncertainties: ArrayLike, points: int = TABLE_POINTS) -> list[float]:
    """The quantiles of the dev uncertainties at `points` evenly spaced levels, for `table_threshold`."""
    values = np.asarray(uncertainties, dtype=np.float64)
    if not len(values):
        raise DataError("no listed spans to build a budget table from")
    return [float(v) for v in np.quantile(values, np.linspace(0.0, 1.0, points))]


def table_threshold(table: Sequence[float], fraction: float) -> float:
    """The threshold that sends `fraction` of the spans whose quantiles `table` holds."""
    fraction = check_budget(fraction)
    if fraction >= 1.0:
        return float(np.nextafter(table[0], -np.inf))
    levels = np.linspace(0.0, 1.0, len(table))
    return float(np.interp(1.0 - fraction, levels, table))


def sent_share(uncertainties: ArrayLike, threshold: float) -> float:
    values = np.asarray(uncertainties, dtype=np.float64)
    return float((values > threshold).mean()) if len(values) else 0.0
