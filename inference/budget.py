"""A budget instead of a threshold: the uncertainty threshold that sends the most uncertain
FRACTION of the listed spans (entities and candidates) to the LLM.

A span is sent when its uncertainty is strictly above the threshold, so equally uncertain
spans are sent or kept together and the share sent is at most the budget. Offline, the
threshold comes from the spans of the file being linked (`threshold_for_budget`); online,
where one sentence is seen at a time, from a table of dev-set uncertainties stored with the
checkpoint (`uncertainty_table`, `table_threshold`, see inference/local/dev_calibration.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

TABLE_POINTS = 1001  # quantiles stored per uncertainty type: budgets resolved to 0.1 %


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
