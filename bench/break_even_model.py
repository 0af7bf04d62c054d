"""When linking pays: linked F1 under a SIMULATED LLM of accuracy `a`, and the accuracy at which
linking starts to help. No LLM is called; these are not measured LLM results.

Each span above the threshold is sent. The simulated LLM answers a sent span's gold label
(`answer`, "O" when the span is no gold entity) with probability `a`, otherwise a wrong option
drawn from an error model over the other options (every entity label and "O"):

    uniform     each wrong option equally likely;
    nonentity   "O" (Non-entity) with probability `NONENTITY_SHARE` when it is wrong, the rest
                uniform over the other wrong labels: an LLM that refuses too often.

A right answer adds a true positive where the gold is an entity; a wrong one never does, and
adds a predicted entity unless it is "O". So the expected true positives and predicted entities
are linear in `a`, and `linked_f1(a) = 2 E[tp] / (E[n_pred] + n_gold)` (the F1 of the expected
counts; the F1 of a sampled run differs from it by the sampling noise only, see `sampled_f1`).
The accuracy `a` for which it reaches a target F1 has a closed form (`accuracy_for`).
`a` is the share of *sent spans* the LLM gets right, Non-entity answers included.
"""
import random
from dataclasses import dataclass

ERROR_MODELS = ("uniform", "nonentity")
NONENTITY_SHARE = 0.5


def wrong_entity_share(gold, labels, error_model):
    """P(a wrong answer is an entity label) for a span whose gold label is `gold`."""
    if gold == "O":
        return 1.0  # every wrong option is an entity label
    if error_model == "uniform":
        return (len(labels) - 1) / len(labels)  # the other labels, out of them and "O"
    if error_model == "nonentity":
        return 1.0 - NONENTITY_SHARE
    raise ValueError(f"unknown error model {error_model!r} ({', '.join(ERROR_MODELS)})")


@dataclass(frozen=True)
class Counts:
    """Expected counts at one threshold: tp(a) = kept_tp + a * sent_entities,
    n_pred(a) = kept_pred + a * sent_entities + (1 - a) * wrong_pred."""

    threshold: float
    n_gold: int
    local_tp: int
    local_pred: int
    kept_tp: int  # true positives among the spans not sent
    kept_pred: int  # predicted entities among the spans not sent
    sent: int
    sent_entities: int  # sent spans whose gold is an entity
    wrong_pred: float  # expected entity answers among the sent spans' wrong answers
    local_right: int  # sent spans the local model already labelled right

    def f1(self, tp, n_pred):
        return 2 * tp / (n_pred + self.n_gold) if n_pred + self.n_gold else 0.0

    @property
    def local_f1(self):
        return self.f1(self.local_tp, self.local_pred)

    def linked_f1(self, a):
        return self.f1(self.kept_tp + a * self.sent_entities,
                       self.kept_pred + a * self.sent_entities + (1 - a) * self.wrong_pred)

    def accuracy_for(self, target_f1):
        """The accuracy at which linked F1 equals `target_f1`; None when nothing is sent or no
        accuracy reaches it. Below 0 means any LLM reaches it; above 1, none does."""
        # 2 (A + aB) = F (C + a B + (1 - a) D + G)  =>  a = (F (C + D + G) - 2A) / (2B - F (B - D))
        A, B, C, D, G, F = (self.kept_tp, self.sent_entities, self.kept_pred, self.wrong_pred,
                            self.n_gold, target_f1)
        denominator = 2 * B - F * (B - D)
        if self.sent == 0 or denominator <= 0:
            return None
        return (F * (C + D + G) - 2 * A) / denominator


def spans_of(records):
    """(pred, gold, uncertainty) of every listed span, and the number of gold entities."""
    spans = [(s["pred"], s.get("answer", "O"), s["uncertainty"]) for rec in records for s in rec["entity"]]
    return spans, sum(len(rec.get("gold") or []) for rec in records)


def counts(records, threshold, labels, error_model="uniform"):
    spans, n_gold = spans_of(records)
    kept = [(p, g) for p, g, u in spans if u <= threshold]
    sent = [(p, g) for p, g, u in spans if u > threshold]
    return Counts(
        threshold=threshold, n_gold=n_gold,
        local_tp=sum(p != "O" and p == g for p, g, _ in spans), local_pred=sum(p != "O" for p, _, _ in spans),
        kept_tp=sum(p != "O" and p == g for p, g in kept), kept_pred=sum(p != "O" for p, _ in kept),
        sent=len(sent), sent_entities=sum(g != "O" for _, g in sent),
        wrong_pred=sum(wrong_entity_share(g, labels, error_model) for _, g in sent),
        local_right=sum(p == g for p, g in sent))


def wrong_answer(gold, labels, error_model, rng):
    options = [label for label in [*labels, "O"] if label != gold]
    if error_model == "nonentity" and gold != "O":
        if rng.random() < NONENTITY_SHARE:
            return "O"
        options.remove("O")
    return rng.choice(options)


def sampled_f1(records, threshold, labels, a, error_model="uniform", seed=0):
    """The F1 of one sampled run of the simulated LLM (fixed seed), to check `linked_f1` against."""
    rng = random.Random(seed)
    spans, n_gold = spans_of(records)
    tp = n_pred = 0
    for pred, gold, uncertainty in spans:
        if uncertainty > threshold:
            pred = gold if rng.random() < a else wrong_answer(gold, labels, error_model, rng)
        n_pred += pred != "O"
        tp += pred != "O" and pred == gold
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0


def plot_curves(panels, accuracies, path, title):
    """One panel per (name, {threshold: Counts}): linked F1 against `a`, one line per threshold
    that sends anything, the local F1 dashed. Drawn on an Agg canvas, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.0 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, (name, by_threshold) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for t, c in sorted(by_threshold.items()):
            if c.sent:
                ax.plot(accuracies, [100 * c.linked_f1(a) for a in accuracies], label=f"t={t:g}")
        local = next(iter(by_threshold.values())).local_f1
        ax.axhline(100 * local, color="black", linestyle="--", linewidth=1, label="local")
        ax.set(title=name, xlabel="simulated LLM accuracy a", ylabel="linked F1 (%)")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=6, ncols=2)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90)
    return path
