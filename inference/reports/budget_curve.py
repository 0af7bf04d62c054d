"""How many of the local model's errors a budget sends: the share of the wrong listed spans
among the most uncertain FRACTION of them (as --budget sends them), and the same for a perfect
ranking, the ceiling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from inference.budget import sent_count, threshold_for_budget

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def caught(uncertainties: ArrayLike, errors: ArrayLike, fraction: float) -> Optional[float]:
    """Share of the `errors` (flags, one per listed span) that a budget of `fraction` sends."""
    unc, errors = np.asarray(uncertainties, dtype=np.float64), np.asarray(errors, dtype=bool)
    if not errors.any():
        return None
    threshold = threshold_for_budget(unc, fraction)
    assert threshold is not None  # an error was flagged, so a span is listed
    return float(errors[unc > threshold].sum() / errors.sum())


def ceiling(n_listed: int, n_errors: int, fraction: float) -> Optional[float]:
    """The share a perfect ranking would send: every sent span an error while errors last."""
    return min(1.0, sent_count(n_listed, fraction) / n_errors) if n_errors else None
