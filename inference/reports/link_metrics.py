"""Scores before and after linking, what the LLM's answers changed, and a threshold sweep.

Entity-level scores (exact span and type) against each record's `gold`, as local_inference.py
scores them: a gold entity that no span lists counts as missed, an LLM "O" removes an entity,
a candidate (local "O") the LLM types becomes one. A linked output is scored as written: each
span's `llm_pred`, its final label, whichever rule decided it. A sweep scores the paper's rule
instead: at threshold t a span takes its `llm_answer` if its uncertainty is above t
(`inference.records.decide`), so one pass of LLM calls at the lowest threshold scores every
higher one. Change counts, per span whose label changed:

    fixed      the local label was wrong and the linked one is right
    broken     the local label was right and the linked one is wrong
    removed    an entity the LLM turned into "O" (right or not)
    added      a candidate the LLM typed (right or not)
    recovered  a candidate the LLM typed right: a gold entity the local model had missed
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable

from inference.records import decide
from inference.reports.metrics import EntityCounts

SCORE_KEYS = ("precision", "recall", "f1", "tp", "n_pred", "n_gold")
LLM_STATUSES = ("linked", "cached", "unparseable", "failed")  # the llm_status values counted as such


def status_counts(records: Iterable[dict]) -> dict[str, int]:
    """What the LLM did for the spans of `records`: the whole output, whichever runs wrote it."""
    counts: Counter = Counter()
    for rec in records:
        for span in rec["entity"]:
            counts.update({span.get("llm_status"): 1, "spans": 1,
                           "changed": span.get("llm_pred", span["pred"]) != span["pred"]})
    return {"spans": counts["spans"], "asked": counts["spans"] - counts["below_threshold"],
            **{key: counts[key] for key in LLM_STATUSES}, "changed": counts["changed"]}


def _scores(counts: EntityCounts, per_label: bool) -> dict[str, Any]:
    scores = counts.scores()
    kept = {key: scores[key] for key in SCORE_KEYS}
    if per_label:
        kept["per_label"] = scores["per_label"]
    return kept


def final_label(span: dict, threshold: float, as_written: bool = True) -> str:
    """A span's label after linking: its `llm_pred` where it has one and `as_written`, else the
    paper's rule at `threshold`."""
    written = span.get("llm_pred") if as_written else None
    return written if written is not None else decide(span, threshold)


def link_report(records: Iterable[dict], threshold: float, per_label: bool = False,
                as_written: bool = True) -> dict[str, Any]:
    """Scores and change counts of `records` linked at `threshold` (`final_label`), read once,
    one record at a time."""
    with_gold, local, linked = True, EntityCounts(), EntityCounts()
    counts: Counter[str] = Counter()
    for rec in records:
        with_gold &= "gold" in rec
        gold = {(s, e): label for s, e, label in rec.get("gold") or [] if label != "O"}  # "O": no entity
        after_all = [final_label(span, threshold, as_written) for span in rec["entity"]]
        golds = [(s, e, label) for (s, e), label in gold.items()]
        local.add([(*span["span"], span["pred"]) for span in rec["entity"]], golds)
        linked.add([(*span["span"], after) for span, after in zip(rec["entity"], after_all)], golds)
        counts["never_listed"] += len(gold.keys() - {tuple(span["span"]) for span in rec["entity"]})
        for span, after in zip(rec["entity"], after_all):
            counts["sent"] += span["uncertainty"] > threshold
            before, truth = span["pred"], gold.get(tuple(span["span"]), "O")
            if before == after:
                continue
            counts.update({"changed": 1, "removed": after == "O", "added": before == "O",
                           "fixed": before != truth and after == truth, "broken": before == truth != after,
                           "recovered": before == "O" and after == truth})
    report: dict[str, Any] = {"threshold": threshold, "sent": counts["sent"], "changed": counts["changed"],
              "removed": counts["removed"], "added": counts["added"]}
    if with_gold:
        report.update(local=_scores(local, per_label), linked=_scores(linked, per_label),
                      fixed=counts["fixed"], broken=counts["broken"], recovered=counts["recovered"],
                      never_listed=counts["never_listed"])
    return report


def sweep(records: Callable[[], Iterable[dict]], thresholds: Iterable[float]) -> list[dict[str, Any]]:
    """The paper's rule scored at each threshold (a pass of `records()` each), from one pass of answers."""
    return [link_report(records(), t, as_written=False) for t in sorted(set(thresholds))]


def plot_sweep(rows: list[dict[str, Any]], path: str) -> str:
    """Linked F1 (local F1 for reference) and LLM calls against the threshold, as a PNG.

    Drawn on an Agg canvas directly, so the global matplotlib backend is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs = [row["threshold"] for row in rows]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    calls_ax = fig.add_subplot()
    width = 0.6 * min([b - a for a, b in zip(xs, xs[1:])] or [0.1])
    calls_ax.bar(xs, [row["sent"] for row in rows], width=width, color="lightgray", label="LLM calls")
    calls_ax.set(xlabel="uncertainty threshold", ylabel="spans sent to the LLM")
    handles = calls_ax.get_legend_handles_labels()[0]
    if "linked" in rows[0]:
        f1_ax = calls_ax.twinx()
        f1_ax.plot(xs, [row["linked"]["f1"] for row in rows], "o-", color="tab:blue", label="linked F1")
        f1_ax.axhline(rows[0]["local"]["f1"], linestyle="--", color="tab:gray", label="local F1")
        f1_ax.set_ylabel("entity F1")
        handles += f1_ax.get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
