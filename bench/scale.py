"""Does tagging scale? Time, throughput and peak memory of both stages at 1x, 10x and 30x the
CoNLL-03 test sentences.

    python bench/scale.py --data_dir ../shared/data --model bench/runs/conll03_ener

The inputs are the test split repeated 1, 10 and 30 times (about 3.5k, 35k and 100k sentences),
written at run time to bench/runs/scale/ (never committed) as JSON Lines of spanner records.
local_inference.py tags each in one process (one torch thread) and with --workers 2; then
llm_inference.py --dry_run --budget 0.1 reads the local output and writes the prompts of the
spans a 10 % budget sends (the budget's exact threshold costs extra passes over the file). Peak
memory is the child's maximum resident set (`os.wait4`), throughput is sentences over the wall
time of the tagging (the metrics' own `seconds`) and of the whole dry run.

Writes bench/scale.json, bench/scale.png (memory and time against sentences) and the scale
block of docs/results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.run import machine, run_step, save_results  # noqa: E402
from dataloaders.readers import split_path  # noqa: E402
from utils.cli import run_cli  # noqa: E402
from utils.errors import DataError  # noqa: E402

RUNS = os.path.join(ROOT, "bench", "runs", "scale")
FACTORS = (1, 10, 30)


def build_input(data_dir: str, factor: int) -> tuple[str, int]:
    """The CoNLL-03 test split repeated `factor` times as JSON Lines; (its path, sentences)."""
    source = split_path(os.path.join(data_dir, "conll03"), "test", "ori")
    if not os.path.isfile(source):
        raise DataError(f"{source}: no CoNLL-03 test split (give --data_dir, the folder holding conll03/)")
    with open(source, encoding="utf-8") as f:
        records = [r for r in json.load(f) if r.get("context") != "-DOCSTART-"]
    path = os.path.join(RUNS, f"test_x{factor}.jsonl")
    if not os.path.isfile(path):
        os.makedirs(RUNS, exist_ok=True)
        with open(path + ".part", "w", encoding="utf-8") as f:
            for _ in range(factor):
                f.writelines(json.dumps(r) + "\n" for r in records)
        os.replace(path + ".part", path)
    return path, factor * len(records)


def local_row(model: str, source: str, n: int, workers: int, tag: str) -> dict:
    save = os.path.join(RUNS, f"{tag}.jsonl")
    seconds, peak = run_step(["local_inference.py", "--inference_model", model, "--input_file", source,
                              "--input_format", "jsonl", "--save_file", save, "--workers", str(workers),
                              "--overwrite"], os.path.join(RUNS, "logs", f"{tag}.log"), threads=1)
    tagging = json.load(open(save + ".metrics.json"))["seconds"]
    return {"sentences": n, "workers": workers, "wall_s": seconds, "tagging_s": tagging,
            "sentences_per_s": round(n / tagging, 1), "peak_rss_mb": peak, "output": save}


def llm_row(local: str, n: int, tag: str) -> dict:
    save = os.path.join(RUNS, f"{tag}.linked.jsonl")
    seconds, peak = run_step(["llm_inference.py", "--input_file", local, "--save_file", save, "--dataname",
                              "conll03", "--dry_run", "--budget", "0.1", "--overwrite"],
                             os.path.join(RUNS, "logs", f"{tag}.log"), threads=1)
    return {"sentences": n, "wall_s": seconds, "sentences_per_s": round(n / seconds, 1), "peak_rss_mb": peak}


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured on {m['cpu']} ({m['cores']} cores, torch {m['torch']}) by `python bench/scale.py "
             f"{' '.join(results['argv'])}`; the CoNLL-03 test split repeated, GloVe E-NER.", "",
             "| stage | sentences | seconds | sentences/s | peak RSS (MB) |", "| --- | --- | --- | --- | --- |"]
    for row in results["local"]:
        lines.append(f"| local, {row['workers']} worker{'s' * (row['workers'] > 1)} | {row['sentences']:,} | "
                     f"{row['tagging_s']:.1f} | {row['sentences_per_s']:.0f} | {row['peak_rss_mb']} |")
    for row in results["llm"]:
        lines.append(f"| LLM stage, dry run, 10 % budget | {row['sentences']:,} | {row['wall_s']:.1f} | "
                     f"{row['sentences_per_s']:.0f} | {row['peak_rss_mb']} |")
    for name, rows in (("local, 1 worker", [r for r in results["local"] if r["workers"] == 1]),
                       ("local, 2 workers", [r for r in results["local"] if r["workers"] == 2]),
                       ("LLM stage", results["llm"])):
        lo, hi = rows[0], rows[-1]
        lines.append(f"\n{name}: at {hi['sentences'] // lo['sentences']}x, peak memory {hi['peak_rss_mb'] / lo['peak_rss_mb']:.2f}x "
                     f"and throughput {hi['sentences_per_s'] / lo['sentences_per_s']:.2f}x those at 1x.")
    lines.append(f"\n![memory and time against sentences](../{results['plot']})")
    return "\n".join(lines)


def plot(results: dict, path: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.5))
    FigureCanvasAgg(fig)
    memory, time = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    series = [(f"local, {w} worker(s)", [r for r in results["local"] if r["workers"] == w], "tagging_s") for w in (1, 2)]
    series.append(("LLM stage (dry run)", results["llm"], "wall_s"))
    for name, rows, seconds in series:
        xs = [r["sentences"] for r in rows]
        memory.plot(xs, [r["peak_rss_mb"] for r in rows], "o-", label=name)
        time.plot(xs, [r[seconds] for r in rows], "o-", label=name)
    memory.set(xlabel="sentences", ylabel="peak resident memory (MB)", ylim=(0, None))
    time.set(xlabel="sentences", ylabel="seconds")
    memory.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return os.path.relpath(path, ROOT)


def bench(args: argparse.Namespace) -> dict:
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        raise DataError(f"{args.model}: no checkpoint (train one with python bench/run.py)")
    results = {"machine": machine(), "argv": ["--data_dir", args.data_dir, "--model", args.model], "local": [], "llm": []}
    for factor in FACTORS:
        source, n = build_input(args.data_dir, factor)
        for workers in (1, 2):
            results["local"].append(local_row(args.model, source, n, workers, f"x{factor}_w{workers}"))
            print(f"[scale] local x{factor} workers {workers}: {results['local'][-1]}", flush=True)
        results["llm"].append(llm_row(results["local"][-2]["output"], n, f"x{factor}"))
        print(f"[scale] llm x{factor}: {results['llm'][-1]}", flush=True)
    results["plot"] = plot(results, os.path.splitext(args.out)[0] + ".png")
    results["markdown"] = markdown(results)
    save_results(results, args.out, args.results_doc or None, "scale")
    return results


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", default="../shared/data", help="holds conll03/")
    p.add_argument("--model", default=os.path.join(ROOT, "bench", "runs", "conll03_ener"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "scale.json"))
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"))
    return run_cli(bench, p.parse_args(argv))


if __name__ == "__main__":
    main()
