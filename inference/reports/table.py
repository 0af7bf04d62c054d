"""A compact console table of a run's metrics (the dict of `calibration.local_metrics`)."""

from __future__ import annotations

from typing import Any


def _num(x, fmt):
    return "n/a" if x is None else format(x, fmt)


def _row(name, s, width):
    return (f"{name:<{width}} {100 * s['precision']:6.2f} {100 * s['recall']:6.2f} {100 * s['f1']:6.2f}"
            f" {s['n_pred']:6d} {s['n_gold']:6d}")


def format_table(metrics: dict[str, Any]) -> str:
    """P/R/F1 in % per label and overall, then ECE, AUROC and the counts on one line.

    Unlabelled runs (no "f1" in `metrics`) get the counts line only.
    """
    counts = (f"{metrics['n_sentences']} sentences, {metrics['n_entities']} entities, "
              f"{metrics['n_candidates']} candidates")
    if metrics.get("n_gold_informed"):
        counts += f", {metrics['n_gold_informed']} gold-informed spans"
    if "f1" not in metrics:
        return counts
    width = max([7, *map(len, metrics["per_label"])])
    lines = [f"{'label':<{width}} {'P':>6} {'R':>6} {'F1':>6} {'pred':>6} {'gold':>6}"]
    lines += [_row(label, s, width) for label, s in metrics["per_label"].items()]
    lines.append(_row("overall", metrics, width))
    lines.append(f"ECE {_num(metrics['ece'], '.4f')}  AUROC {_num(metrics['auroc'], '.4f')}  {counts}")
    return "\n".join(lines)
