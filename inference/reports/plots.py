"""Reliability diagram and risk-coverage curve as PNG files.

Figures are drawn on matplotlib's Agg canvas directly, so importing this module never
switches the global backend or needs a display.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from inference.reports.calibration import ReliabilityBins, risk_coverage

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _new_axes():
    fig = Figure(figsize=(4.5, 4.5))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_reliability(confidences: ArrayLike, correct: ArrayLike, path: str, n_bins: int = 10) -> None:
    """Accuracy per equal-width confidence bin against the diagonal of perfect calibration."""
    bins = ReliabilityBins(n_bins)
    bins.add(confidences, correct)
    plot_reliability_bins(bins, path)


def plot_reliability_bins(reliability: ReliabilityBins, path: str) -> None:
    """`plot_reliability` of bins already accumulated."""
    bins, n_bins = reliability.table(), reliability.n_bins
    fig, ax = _new_axes()
    lo, width = bins["edges"][:-1], 1.0 / n_bins
    ax.bar(lo, np.nan_to_num(bins["accuracy"]), width=width, align="edge", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    for x, n in zip(lo, bins["count"]):
        if n:
            ax.text(x + width / 2, 0.02, str(n), ha="center", fontsize=6, rotation=90)
    score = reliability.ece()
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
           title=f"Reliability (ECE {'n/a' if score is None else f'{score:.3f}'})")
    ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


def plot_risk_coverage(uncertainty: ArrayLike, wrong: ArrayLike, path: str) -> None:
    """Error rate of the kept entities against the fraction kept, most certain kept first."""
    coverage, risk = risk_coverage(uncertainty, wrong)
    fig, ax = _new_axes()
    ax.plot(coverage, risk, marker="." if len(risk) < 30 else None)
    ax.set(xlim=(0, 1), ylim=(0, max(1e-3, float(risk.max(initial=0))) * 1.05),
           xlabel="coverage (kept by the local model)", ylabel="error rate of kept entities",
           title="Risk-coverage")
    ax.grid(alpha=0.3)
    _save(fig, path)
