"""How well an uncertainty ranks the local model's errors, for the benchmark: per budget (share
of the listed spans sent to the LLM, most uncertain first), the share of the errors sent
("caught"), the same for a perfect ranking (the ceiling), and the F1 if an always-right
oracle answered every sent span (an upper bound computed from gold labels, not an LLM
result). An error is a listed span, entity or candidate, whose local label is not its gold label.
"""
import os

from inference.budget import threshold_for_budget
from inference.reports.budget_curve import caught, ceiling
from inference.reports.link_metrics import link_report
from utils.jsonl import read_jsonl

BUDGETS = (0.05, 0.1, 0.2)
CURVE = [i / 100 for i in range(1, 51)]


def budget_report(save_file):
    """The caught / ceiling / oracle-F1 figures of one local-inference output, its curve too."""
    records = read_jsonl(save_file)
    spans = [s for r in records for s in r["entity"]]
    unc, errors = [s["uncertainty"] for s in spans], [s["pred"] != s["answer"] for s in spans]
    n_errors = sum(errors)
    oracle = [{**r, "entity": [{**s, "llm_answer": s["answer"]} for s in r["entity"]]} for r in records]
    rows = []
    for b in BUDGETS:
        threshold = threshold_for_budget([s["uncertainty"] for s in spans], b)
        rows.append({"budget": b, "threshold": threshold, "caught": caught(unc, errors, b),
                     "ceiling": ceiling(len(spans), n_errors, b),
                     "oracle_f1": link_report(oracle, threshold)["linked"]["f1"]})
    return {"listed": len(spans), "errors": n_errors, "error_share": n_errors / max(1, len(spans)),
            "never_listed": link_report(records, 1.0)["never_listed"], "budgets": rows,
            "curve": [round(caught(unc, errors, b), 4) for b in CURVE]}


def plot_caught(curves, path, title):
    """Caught-versus-budget lines (`curves`: {label: report}), with each report's ceiling dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [100 * b for b in CURVE]
    for label, report in curves.items():
        ax.plot(xs, [100 * c for c in report["curve"]], label=label)
    first, report = next(iter(curves.items()))
    ax.plot(xs, [min(100.0, 100 * b / report["error_share"]) for b in CURVE], "k--", label=f"perfect ranking, {first}")
    ax.set(xlabel="listed spans sent to the LLM (%)", ylabel="errors sent (%)", title=title, ylim=(0, 101))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
