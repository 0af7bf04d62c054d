"""SIMULATED break-even bench: how accurate must an LLM be for linking to raise F1?

    python bench/break_even.py --data_dir ../shared/data

No LLM is called. For the E-NER and SpanNER CoNLL-2003 models (default bench/runs/conll03_ener
and bench/runs/conll03_spanner, trained by bench/run.py), it tags the test / typos / oov / ood
sets with local_inference.py (the models' default uncertainty; outputs in
bench/runs/break_even/, reused while newer than the checkpoint), then simulates an LLM that
answers each sent span's gold label with probability `a` and otherwise a wrong option, under two
error models (bench/break_even_model.py): uniform over the other options, and biased
toward Non-entity. Per threshold 0.1 .. 0.9 and test set it reports the break-even accuracy
(below it linking lowers F1), the accuracy needed for +1 and +3 F1 points, and draws linked F1
against `a` (bench/break_even_uniform.png, bench/break_even_nonentity.png). Figures are
expected values (exact, no sampling); one sampled run per point (seed 0) is kept as a check.
Results go to bench/break_even.json and between the break-even markers of docs/results.md (--results_doc).
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.run import NAMES, TEST_MODES, THRESHOLDS, machine, run_step, save_results  # noqa: E402
from bench.break_even_model import ERROR_MODELS, NONENTITY_SHARE, counts, plot_curves, sampled_f1  # noqa: E402
from utils.jsonl import read_jsonl  # noqa: E402

ACCURACIES = [round(0.5 + 0.05 * i, 2) for i in range(11)]
MODE_NAMES = {"ori": "test", "typos": "typos", "oov": "oov", "ood": "ood"}


def _fresh(metrics, model_dir, weights):
    """Whether `metrics` describes an output of this checkpoint, written after its weights."""
    if not os.path.isfile(metrics) or os.path.getmtime(metrics) <= os.path.getmtime(weights):
        return False
    with open(metrics) as f:
        checkpoint = json.load(f).get("checkpoint") or ""
    return os.path.abspath(checkpoint) == os.path.abspath(model_dir)


def local_output(name, model_dir, data_dir, mode, uncertainty=None):
    """The model's output on one CoNLL-2003 test set (its default uncertainty unless named),
    tagged again only when the checkpoint is newer."""
    tag = f"{name}_{mode}" + (f"_{uncertainty}" if uncertainty else "")
    save = os.path.join(ROOT, "bench", "runs", "break_even", f"{tag}.jsonl")
    weights = os.path.join(model_dir, "model.safetensors")
    if not _fresh(save + ".metrics.json", model_dir, weights):
        extra = ["--uncertainty_type", uncertainty] if uncertainty else []
        run_step(["local_inference.py", "--inference_model", model_dir, "--data_dir", data_dir, "--test_mode", mode,
                  "--save_file", save, "--overwrite", *extra],
                 os.path.join(ROOT, "bench", "runs", "logs", f"break_even_{tag}.log"))
    return save


def pct(x):
    return f"{100 * x:.2f}"


def accuracy_cell(a):
    if a is None:
        return "–"
    if a <= 0:
        return "any"
    return "never" if a > 1 else f"{a:.2f}"


def evaluate(save_file):
    records = read_jsonl(save_file)
    with open(save_file + ".metrics.json") as f:
        local = json.load(f)
    labels = [label for label in local["labels"] if label != "O"]
    out = {"save_file": os.path.relpath(save_file, ROOT), "uncertainty": local["uncertainty_type"],
           "local_f1": local["f1"], "error_models": {}}
    for error_model in ERROR_MODELS:
        rows = []
        for t in THRESHOLDS:
            c = counts(records, t, labels, error_model)
            rows.append({"threshold": t, "sent": c.sent, "sent_entities": c.sent_entities,
                         "local_accuracy_sent": c.local_right / c.sent if c.sent else None,
                         "break_even": c.accuracy_for(c.local_f1), "plus_1": c.accuracy_for(c.local_f1 + 0.01),
                         "plus_3": c.accuracy_for(c.local_f1 + 0.03),
                         "linked_f1": {str(a): c.linked_f1(a) for a in ACCURACIES},
                         "sampled_f1_seed0": {str(a): sampled_f1(records, t, labels, a, error_model, 0)
                                              for a in ACCURACIES}})
        out["error_models"][error_model] = rows
        out["counts_" + error_model] = {t: counts(records, t, labels, error_model) for t in THRESHOLDS}
    return out


def markdown(results):
    thresholds = " | ".join(f"t={t:g}" for t in THRESHOLDS)
    rule = "| --- " * (len(THRESHOLDS) + 3) + "|"
    m = results["machine"]
    out = [f"**SIMULATED — no LLM was called.** Measured by `python bench/break_even.py {results['command']}` "
           f"on {m['cpu']}, {m['cores']} cores ({results['seconds']:.0f} s). Models: " +
           "; ".join(f"{NAMES[n]} `{m['model_dir']}` (GloVe, best dev F1 {m['dev_f1']:.4f} after {m['epoch'] + 1} epochs, "
                     f"{m['uncertainty']} uncertainty)" for n, m in results["models"].items()) + ".",
           "",
           "A simulated LLM answers each sent span (uncertainty above t) with its gold label with probability a, "
           "else a wrong option. Each cell: the accuracy a at which linking **breaks even** (below it, linking "
           "lowers F1) / reaches **+1** F1 point / **+3** points; `any`: even a = 0 does, `never`: not even "
           "a = 1 (the oracle) does, `–`: nothing is sent. a is the share of sent spans answered right, "
           "Non-entity included; the local model's own accuracy on the sent spans is in bench/break_even.json.", ""]
    for error_model, title in (("uniform", "wrong answers uniform over the other options"),
                               ("nonentity", f"wrong answers Non-entity with probability {NONENTITY_SHARE:g}, "
                                             "else uniform over the other labels")):
        out += [f"Error model `{error_model}`: {title}.", "",
                f"| model | test set | local F1 | {thresholds} |", rule]
        for name, model in results["models"].items():
            for mode in TEST_MODES:
                r = model["sets"][mode]
                cells = [" / ".join(accuracy_cell(row[k]) for k in ("break_even", "plus_1", "plus_3"))
                         for row in r["error_models"][error_model]]
                out.append(f"| {NAMES[name]} | {MODE_NAMES[mode]} | {pct(r['local_f1'])} | " + " | ".join(cells) + " |")
        out.append("")
    sent = " | ".join(f"t={t:g}" for t in THRESHOLDS)
    out += ["Spans sent per threshold (test set): " + "; ".join(
        f"{NAMES[n]}: " + ", ".join(str(row["sent"]) for row in m["sets"]["ori"]["error_models"]["uniform"])
        for n, m in results["models"].items()) + f" (for {sent.replace(' | ', ', ')}).", "",
        "![linked F1 against simulated LLM accuracy, uniform errors](../bench/break_even_uniform.png)",
        "![linked F1 against simulated LLM accuracy, Non-entity-biased errors](../bench/break_even_nonentity.png)"]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data", help="holds conll03/")
    p.add_argument("--models", default="ener=bench/runs/conll03_ener,spanner=bench/runs/conll03_spanner",
                   help="comma list of NAME=CHECKPOINT_DIR (names: ener, spanner)")
    p.add_argument("--uncertainty", default="", help="comma list of NAME=TYPE overriding a model's default "
                   "uncertainty (e.g. ener=confidence)")
    p.add_argument("--out", default="bench/break_even.json")
    p.add_argument("--plot_dir", default="bench")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"),
                   help="write the table between this file's break-even markers (default docs/results.md; '': none)")
    args = p.parse_args()
    data_dir = os.path.join(args.data_dir, "conll03")
    if not os.path.isdir(data_dir):
        raise SystemExit(f"error: {data_dir}: no CoNLL-2003 folder (see ../shared/README.md)")
    models = dict(item.split("=", 1) for item in args.models.split(","))
    uncertainty = dict(item.split("=", 1) for item in args.uncertainty.split(",") if item)
    for name, model_dir in models.items():
        if name not in NAMES or not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise SystemExit(f"error: {model_dir}: no trained {name} checkpoint (config.json); "
                             "train it with bench/run.py first")
    start = time.time()
    results = {"simulated": True, "command": " ".join(sys.argv[1:]), "machine": machine(), "accuracies": ACCURACIES,
               "thresholds": THRESHOLDS, "nonentity_share": NONENTITY_SHARE, "models": {}}
    panels = {e: [] for e in ERROR_MODELS}
    for name, model_dir in models.items():
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
        entry = results["models"][name] = {"model_dir": os.path.relpath(os.path.abspath(model_dir), ROOT),
                                           "dev_f1": config.get("dev_f1"), "epoch": config.get("epoch"), "sets": {}}
        for mode in TEST_MODES:
            r = evaluate(local_output(name, model_dir, data_dir, mode, uncertainty.get(name)))
            entry["uncertainty"] = r["uncertainty"]
            for e in ERROR_MODELS:
                panels[e].append((f"{NAMES[name]}, {MODE_NAMES[mode]}", r.pop("counts_" + e)))
            entry["sets"][mode] = r
    os.makedirs(args.plot_dir, exist_ok=True)
    for e in ERROR_MODELS:
        results[f"plot_{e}"] = os.path.relpath(plot_curves(
            panels[e], [a / 100 for a in range(50, 101)], os.path.join(args.plot_dir, f"break_even_{e}.png"),
            f"SIMULATED LLM ({e} errors): linked F1 against its accuracy, per threshold"), ROOT)
    results["seconds"] = round(time.time() - start, 1)
    results["markdown"] = markdown(results)
    save_results(results, args.out, args.results_doc, "break-even")


if __name__ == "__main__":
    main()
