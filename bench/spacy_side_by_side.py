"""Side by side on one machine: spaCy's CPU NER pipeline against this project's local inference.

spaCy's pipeline (`spacy init config -l en -p ner -o efficiency`) is trained here on the same
CoNLL-2003 train split (dev split for its checkpoint choice) with a fixed step budget; then spaCy
(`nlp.pipe` over pre-tokenized Docs, batch_size 256) and `local_inference.py` tag the same test
sentences with the same thread count, ALTERNATELY, `--rounds` times each, every run a fresh process
that times its tagging only (model loading left out on both sides). Both F1s come from one scorer
(`inference.reports.metrics.entity_scores`, exact span and type, as seqeval). Needs spaCy
(`pip install -r requirement-bench.txt`); without it the script says so in one line and exits 0.

    python bench/spacy_side_by_side.py --model bench/runs/conll03_ener --data_dir ../shared/data/conll03 \\
        [--bert_model bench/runs/conll03_bert_ener] [--workers 1,2] [--rounds 3] [--spacy_steps 2000]

Writes bench/spacy_side_by_side.json and the `speed-vs-spacy` block of docs/results.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dataloaders.readers import read_dataset, split_path  # noqa: E402
from inference.reports.metrics import entity_scores  # noqa: E402
from utils.errors import DataError  # noqa: E402

BLOCK = "speed-vs-spacy"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS")


def spacy_missing() -> str | None:
    """Why the bench cannot run (one line), or None when spaCy is importable."""
    try:
        import spacy  # noqa: F401
    except ImportError:
        return "skip: spaCy is not installed (pip install -r requirement-bench.txt)"
    return None


def to_docbin(sentences: list, path: str) -> None:
    """Write `Sentence`s as a spaCy DocBin: the words as tokens, the gold spans as entities."""
    import spacy
    from spacy.tokens import Doc, DocBin, Span

    vocab = spacy.blank("en").vocab
    bin_ = DocBin()
    for sent in sentences:
        doc = Doc(vocab, words=sent.words)
        doc.ents = [Span(doc, s, e + 1, label) for s, e, label in sent.entities or []]
        bin_.add(doc)
    bin_.to_disk(path)


def env(threads: int) -> dict:
    return dict(os.environ, **{var: str(threads) for var in THREAD_VARS})


def train_spacy(data_dir: str, out: str, steps: int, threads: int) -> str:
    """spaCy's efficiency NER pipeline trained on `data_dir`'s train split for `steps` steps
    (kept in `out`; a finished training of the same budget is reused). Its best-on-dev model."""
    stamp = os.path.join(out, "trained.json")
    if os.path.isfile(stamp) and json.load(open(stamp)).get("steps") == steps:
        return os.path.join(out, "model-best")
    os.makedirs(out, exist_ok=True)
    paths = {}
    for split in ("train", "dev"):
        paths[split] = os.path.join(out, f"{split}.spacy")
        to_docbin(read_dataset(split_path(data_dir, split, None)), paths[split])
    cfg = os.path.join(out, "config.cfg")
    spacy_cli = [sys.executable, "-m", "spacy"]
    subprocess.run([*spacy_cli, "init", "config", "-l", "en", "-p", "ner", "-o", "efficiency", "--force", cfg],
                   check=True, cwd=ROOT)
    start = time.time()
    subprocess.run([*spacy_cli, "train", cfg, "--output", out, "--paths.train", paths["train"],
                    "--paths.dev", paths["dev"], f"--training.max_steps={steps}",
                    f"--training.eval_frequency={max(steps // 10, 100)}", "--training.max_epochs=0"],
                   check=True, cwd=ROOT, env=env(threads))
    with open(stamp, "w") as f:
        json.dump({"steps": steps, "minutes": round((time.time() - start) / 60, 1)}, f)
    return os.path.join(out, "model-best")


def tag_spacy(model: str, test_file: str, workers: int) -> dict:
    """One timed spaCy run (in this process): sentences/s and F1 on `test_file`."""
    import spacy
    from spacy.tokens import Doc

    sentences = read_dataset(test_file)
    nlp = spacy.load(model)
    words = [s.words for s in sentences]
    start = time.perf_counter()
    docs = list(nlp.pipe((Doc(nlp.vocab, words=w) for w in words), batch_size=256, n_process=workers))
    seconds = time.perf_counter() - start
    preds = [[(e.start, e.end - 1, e.label_) for e in doc.ents] for doc in docs]
    return {"sentences": len(docs), "seconds": seconds, "sentences_per_second": len(docs) / seconds,
            "f1": entity_scores(preds, [s.entities for s in sentences])["f1"]}


def run_spacy(model: str, test_file: str, threads: int, workers: int) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--tag_spacy", model, "--test_file", test_file,
                          "--workers", str(workers)], check=True, cwd=ROOT, env=env(threads),
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_local(model: str, data_dir: str, save_file: str, threads: int, workers: int) -> dict:
    """One timed local_inference.py run: its own sentences_per_second (tagging and writing, model
    loading left out) and F1."""
    argv = [sys.executable, "local_inference.py", "--inference_model", model, "--data_dir", data_dir,
            "--save_file", save_file, "--overwrite"] + (["--workers", str(workers)] if workers > 1 else [])
    proc = subprocess.run(argv, cwd=ROOT, env=env(threads), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"local_inference.py failed:\n{proc.stderr[-2000:]}")
    metrics = json.load(open(save_file + ".metrics.json"))
    return {"sentences": metrics["n_sentences"], "seconds": metrics["seconds"], "sentences_per_second": metrics["sentences_per_second"],
            "f1": metrics["f1"]}


def trained(model: str) -> str:
    """How long a checkpoint trained, from its config.json; a training cut short by --max_steps is
    there for its speed only."""
    config = json.load(open(os.path.join(model, "config.json")))
    cut = config.get("train_args", {}).get("max_steps", -1) > 0
    return f"{config.get('step', '?')} training steps" + (", cut short: speed only" if cut else "")


def timed(fn, *args) -> dict:
    load = os.getloadavg()[0]
    row = fn(*args)
    return {**row, "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def median(rows: list, key: str = "sentences_per_second") -> float:
    return statistics.median(r[key] for r in rows)


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"{cpu}, {os.cpu_count()} cores, no GPU, torch {torch.__version__}"


def markdown(r: dict) -> str:
    out = [f"Measured by `python bench/spacy_side_by_side.py {r['argv']}` on {r['machine']}; "
           f"load average {r['load_range']} during the runs (the machine is shared: the runs alternate, so both "
           f"sides see the same load). CoNLL-03 test, {r['sentences']} sentences; spaCy {r['spacy_version']} "
           f"`init config -l en -p ner -o efficiency`, trained here for {r['spacy_steps']} steps on the same train "
           "split (`nlp.pipe` over pre-tokenized Docs, batch_size 256); E-NER: `local_inference.py` (evidential "
           "uncertainty, candidates, records written), its own sentences/s. Model loading left out on both sides. "
           "F1 from one scorer (exact span and type). Each row: " + f"{r['rounds']} alternating rounds, median.",
           "", "| threads × processes | model | sentences/s (each round) | median | × spaCy | F1 |",
           "| --- | --- | --- | --- | --- | --- |"]
    for cfg in r["configs"]:
        base = cfg["spacy"]["median"]
        for name, side in cfg.items():
            if name in ("threads", "workers"):
                continue
            runs = " / ".join(f"{x['sentences_per_second']:.0f}" for x in side["runs"])
            out.append(f"| {cfg['threads']} × {cfg['workers']} | {side['name']} | {runs} | {side['median']:.0f} | "
                       f"{side['median'] / base:.2f} | {100 * side['f1']:.2f} |")
    best = {name: max(r["configs"], key=lambda c: c[name]["median"]) for name in r["configs"][0]
            if name not in ("threads", "workers")}
    spacy = best.pop("spacy")
    out += ["", "Each at its fastest: spaCy " + f"{spacy['spacy']['median']:.0f} sentences/s ({spacy['workers']} "
            "process(es)); " + "; ".join(f"{c[name]['name']} {c[name]['median']:.0f} ({c['workers']} process(es), "
                                        f"{c[name]['median'] / spacy['spacy']['median']:.2f} × spaCy)"
                                        for name, c in best.items()) + "."]
    return "\n".join(out)


def update_block(path: str, table: str) -> None:
    from bench.run import update_doc

    update_doc(path, table, BLOCK)


def main(argv: list | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bench/runs/conll03_ener", help="the GloVe E-NER checkpoint")
    p.add_argument("--bert_model", default="bench/runs/conll03_bert_ener",
                   help="a MiniLM E-NER checkpoint, timed beside it when present")
    p.add_argument("--data_dir", default="../shared/data/conll03")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", default="1,2", help="processes per side, one configuration each (1 thread each)")
    p.add_argument("--spacy_steps", type=int, default=2000, help="spaCy's training budget (max_steps)")
    p.add_argument("--spacy_dir", default="bench/runs/spacy_conll03")
    p.add_argument("--out", default="bench/spacy_side_by_side.json")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"), help="'' writes none")
    p.add_argument("--tag_spacy", help=argparse.SUPPRESS)  # one timed spaCy run in this process
    p.add_argument("--test_file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    skip = spacy_missing()
    if skip:
        print(skip)
        return
    if args.tag_spacy:
        print(json.dumps(tag_spacy(args.tag_spacy, args.test_file, int(args.workers))))
        return
    try:
        test_file = split_path(args.data_dir, "test", "ori")
    except DataError as err:
        sys.exit(f"error: {err}")
    for path in (args.model,):
        if not os.path.isfile(os.path.join(path, "config.json")):
            sys.exit(f"error: {path}: not a checkpoint directory (no config.json)")
    spacy_model = train_spacy(args.data_dir, os.path.join(ROOT, args.spacy_dir), args.spacy_steps, threads=1)
    out_dir = os.path.join(ROOT, "bench", "runs", "side_by_side")
    sides = {"spacy": (f"spaCy, efficiency NER ({args.spacy_steps} steps)",
                       lambda w: run_spacy(spacy_model, test_file, 1, w)),
             "ener": (f"GloVe E-NER ({trained(args.model)})",
                      lambda w: run_local(args.model, args.data_dir, os.path.join(out_dir, "ener.jsonl"), 1, w))}
    if os.path.isfile(os.path.join(args.bert_model, "config.json")):
        sides["bert"] = (f"MiniLM E-NER ({trained(args.bert_model)})",
                         lambda w: run_local(args.bert_model, args.data_dir, os.path.join(out_dir, "bert.jsonl"), 1, w))
    else:
        print(f"[bench] no MiniLM E-NER at {args.bert_model}: its row is left out")
    configs = []
    for workers in (int(w) for w in args.workers.split(",")):
        runs = {name: [] for name in sides}
        for i in range(args.rounds):  # alternate: every side sees the same stretch of machine load
            for name, (label, fn) in sides.items():
                runs[name].append(timed(fn, workers))
                print(f"[bench] {workers} process(es), round {i + 1}, {label}: "
                      f"{runs[name][-1]['sentences_per_second']:.0f} sentences/s, F1 {runs[name][-1]['f1']:.4f}",
                      flush=True)
        cfg = {"threads": 1, "workers": workers}
        for name, (label, _) in sides.items():
            cfg[name] = {"name": label, "runs": runs[name], "median": median(runs[name]),
                         "f1": runs[name][0]["f1"], "f1_all_rounds": sorted({x["f1"] for x in runs[name]})}
        configs.append(cfg)
    import spacy

    loads = [x[k] for c in configs for n in sides for x in c[n]["runs"] for k in ("load_before", "load_after")]
    results = {"machine": machine(), "spacy_version": spacy.__version__, "spacy_steps": args.spacy_steps,
               "spacy_training": json.load(open(os.path.join(ROOT, args.spacy_dir, "trained.json"))),
               "sentences": len(read_dataset(test_file)), "rounds": args.rounds, "configs": configs,
               "load_range": f"{min(loads):.1f}–{max(loads):.1f}",
               "argv": " ".join(a for a in (argv if argv is not None else sys.argv[1:]))}
    results["markdown"] = markdown(results)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(results["markdown"])
    if args.results_doc:
        update_block(args.results_doc, results["markdown"])


if __name__ == "__main__":
    main()
