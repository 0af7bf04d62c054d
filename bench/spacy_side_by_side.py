"""Side by side on one machine: this project's local inference (E-NER profiles, float and int8)
against two peers, spaCy's CPU NER pipeline and Flair's BiLSTM-CRF, on speed, F1 and entity AUROC.

spaCy's pipeline (`spacy init config -l en -p ner -o efficiency`) and Flair's tagger
(bench/flair_peer.py: GloVe 50-d + character embeddings, hidden 256, CRF, BIOES) are trained here
on the same CoNLL-2003 train split (dev for their checkpoint choice) with a fixed budget. Then every
tagger tags the same test sentences, ALTERNATELY, `--rounds` times each, every run a fresh process
that times its tagging only (model loading left out everywhere):

- spaCy: `nlp.pipe` over pre-tokenized Docs, batch_size 256;
- Flair: `predict` over pre-tokenized `Sentence`s, at its default batch size (32) and at its best
  (the fastest of a sweep made once per core count before the rounds);
- E-NER: `local_inference.py` (evidential uncertainty, candidates, records written), its own
  sentences/s; `--quantize int8` rows load the model through `models.quantize.patched_loading`
  (the hook local_inference.py would have).

On one core every tagger runs one thread; on two, spaCy and Flair run two threads and E-NER two
processes of one thread (`--workers 2`, its fastest use of two cores). F1 from one scorer
(`inference.reports.metrics.entity_scores`, exact span and type); entity AUROC of each tagger's
uncertainty for wrong against right predicted entities (`inference.reports.calibration.auroc`;
Flair: 1 - the span's score; spaCy's NER gives no score, so none). A peer that is not installed is
skipped with a one-line reason (`pip install -r requirement-bench.txt`).

    python bench/spacy_side_by_side.py --model bench/runs/conll03_ener --fast_model bench/runs/conll03_ener_fast \\
        --data_dir ../shared/data/conll03 [--cores 1,2] [--rounds 3] [--quantize none,int8]

Writes bench/spacy_side_by_side.json, the Pareto plot bench/speed_pareto.png (F1 against
sentences/s) and the `speed-vs-peers` block of docs/speed.md.
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

BLOCK = "speed-vs-peers"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS")
FLAIR_SWEEP = "16,32,64,128,256,512"
E_NER = ("ener", "fast", "accurate", "bert")  # the project's sides, in table order


def spacy_missing() -> str | None:
    """Why spaCy cannot run (one line), or None when it is importable."""
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


def tag_spacy(model: str, test_file: str) -> dict:
    """One timed spaCy run (in this process): sentences/s and F1 on `test_file`."""
    import spacy
    from spacy.tokens import Doc

    sentences = read_dataset(test_file)
    nlp = spacy.load(model)
    words = [s.words for s in sentences]
    start = time.perf_counter()
    docs = list(nlp.pipe((Doc(nlp.vocab, words=w) for w in words), batch_size=256))
    seconds = time.perf_counter() - start
    preds = [[(e.start, e.end - 1, e.label_) for e in doc.ents] for doc in docs]
    return {"sentences": len(docs), "seconds": seconds, "sentences_per_second": len(docs) / seconds,
            "f1": entity_scores(preds, [s.entities for s in sentences])["f1"], "auroc": None}


def tag_ener(model: str, data_dir: str, save_file: str, workers: int, quantize: str) -> dict:
    """One timed local_inference.py run (in this process, the model quantized on load where asked):
    its own sentences_per_second (tagging and writing, model loading left out), F1 and AUROC."""
    import local_inference
    from models.quantize import patched_loading

    argv = ["--inference_model", model, "--data_dir", data_dir, "--save_file", save_file, "--overwrite"]
    with patched_loading(local_inference, quantize):
        metrics = local_inference.main(argv + (["--workers", str(workers)] if workers > 1 else []))
    return {"sentences": metrics["n_sentences"], "seconds": metrics["seconds"],
            "sentences_per_second": metrics["sentences_per_second"], "f1": metrics["f1"], "auroc": metrics["auroc"]}


def run_self(flags: list, threads: int) -> dict:
    """This script run with `flags` in a fresh process of `threads` threads: its last line's JSON."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *flags], cwd=ROOT, env=env(threads),
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(flags[:2])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def trained(model: str) -> str:
    """How a checkpoint was trained, from its config.json: profile and steps; a training cut short
    by --max_steps is there for its speed only."""
    config = json.load(open(os.path.join(model, "config.json")))
    cut = (config.get("train_args") or {}).get("max_steps", -1) > 0
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


def pareto(points: dict) -> set:
    """The names of `points` {name: (speed, f1)} that no other point beats on both (>= on both, > on one)."""
    return {name for name, (s, f) in points.items()
            if not any(s2 >= s and f2 >= f and (s2 > s or f2 > f) for other, (s2, f2) in points.items() if other != name)}


def dominated_by_peer(cfg: dict) -> list:
    """The peers that are both faster and more accurate than every E-NER variant of `cfg`."""
    ours = [side for name, side in cfg["sides"].items() if side["ours"]]
    return [side["name"] for side in cfg["sides"].values() if not side["ours"] and ours and all(
        side["median"] > o["median"] and side["f1"] > o["f1"] for o in ours)]


def fmt_auroc(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(r: dict) -> str:
    out = [f"Measured by `python bench/spacy_side_by_side.py {r['argv']}` on {r['machine']}; load average "
           f"{r['load_range']} during the runs (the machine is shared: the runs alternate, so every side sees the same "
           f"load). CoNLL-03 test, {r['sentences']} sentences. {r['peers_note']} Model loading left out everywhere. "
           f"F1 from one scorer (exact span and type); AUROC: the tagger's uncertainty, wrong against right predicted "
           f"entities (– where the tagger gives no score). Each row: {r['rounds']} alternating rounds, median; "
           "× spaCy: median over spaCy's median in the same configuration.", ""]
    for cfg in r["configs"]:
        spacy = cfg["sides"].get("spacy")
        out += [f"**{cfg['label']}**", "", "| tagger | sentences/s (each round) | median | × spaCy | F1 | entity AUROC |",
                "| --- | --- | --- | --- | --- | --- |"]
        for side in cfg["sides"].values():
            runs = " / ".join(f"{x['sentences_per_second']:.0f}" for x in side["runs"])
            ratio = f"{side['median'] / spacy['median']:.2f}" if spacy else "–"
            out.append(f"| {side['name']} | {runs} | {side['median']:.0f} | {ratio} | {100 * side['f1']:.2f} | "
                       f"{fmt_auroc(side['auroc'])} |")
        front = [cfg["sides"][n]["name"] for n in cfg["pareto"]]
        beaten = dominated_by_peer(cfg)
        out += ["", f"Pareto front (F1 against sentences/s): {'; '.join(front)}. "
                + (f"Faster and more accurate than every E-NER variant: {', '.join(beaten)}." if beaten
                   else "No peer is both faster and more accurate than every E-NER variant."), ""]
    for line in r["skipped"]:
        out.append(f"- {line}")
    out.append(f"\n![F1 against sentences/s, one core and two](../{r['plot']})")
    return "\n".join(out)


SHORT = {"spacy": "spaCy", "ener": "E-NER default", "ener_int8": "default int8", "fast": "E-NER fast",
         "fast_int8": "fast int8", "accurate": "E-NER accurate", "accurate_int8": "accurate int8", "bert": "MiniLM E-NER"}


def plot(r: dict, path: str) -> None:
    """F1 against sentences/s: one core filled and labelled, two cores hollow; the one-core Pareto front dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, cfg in enumerate(r["configs"]):
        sides = cfg["sides"]
        for name, side in sides.items():
            color = "tab:blue" if side["ours"] else "tab:orange"
            x, y = side["median"], 100 * side["f1"]
            ax.scatter(x, y, marker="o" if i == 0 else "s", s=55, zorder=3,
                       color=color if i == 0 else "none", edgecolor=color)
            if i == 0:
                label = SHORT.get(name) or "Flair b" + name.split("_")[-1]
                ax.annotate(label, (x, y), fontsize=8, rotation=30, xytext=(3, 4 + 9 * (name.endswith("int8"))),
                            textcoords="offset points")
        if i == 0:
            front = sorted((sides[n]["median"], 100 * sides[n]["f1"]) for n in cfg["pareto"])
            ax.plot(*zip(*front), linestyle="--", color="grey", zorder=2, label="one-core Pareto front")
    ax.scatter([], [], color="tab:blue", label="E-NER (this project), one core")
    ax.scatter([], [], color="tab:orange", label="peers (spaCy, Flair), one core")
    if len(r["configs"]) > 1:
        ax.scatter([], [], marker="s", color="none", edgecolor="grey", label=r["configs"][1]["label"])
    ax.set_xscale("log")
    ax.set_xlabel("sentences/s (CoNLL-03 test, median of alternating rounds; log scale)")
    ax.set_ylabel("test F1 (%)")
    ax.set_title("CoNLL-03: F1 against tagging speed on one 2-core machine")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def update_block(path: str, table: str) -> None:
    from bench.run import update_doc

    update_doc(path, table, BLOCK)


def internal(args) -> bool:
    """The one-run modes (a fresh process each): print one JSON line."""
    if args.tag_spacy:
        print(json.dumps(tag_spacy(args.tag_spacy, args.test_file)))
    elif args.tag_flair:
        from bench.flair_peer import tag_flair

        print(json.dumps(tag_flair(args.tag_flair, args.test_file, [int(b) for b in args.batch_sizes.split(",")])))
    elif args.tag_ener:
        print(json.dumps(tag_ener(args.tag_ener, args.data_dir, args.save_file, args.run_workers, args.run_quantize)))
    else:
        return False
    return True


def main(argv: list | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bench/runs/conll03_ener", help="the default-profile GloVe E-NER checkpoint")
    p.add_argument("--fast_model", default="bench/runs/conll03_ener_fast", help="a --profile fast checkpoint (row when present)")
    p.add_argument("--accurate_model", default="bench/runs/conll03_ener_accurate",
                   help="an accurate-profile checkpoint (--context_encoder), row when present")
    p.add_argument("--bert_model", default="", help="a MiniLM E-NER checkpoint, row when given")
    p.add_argument("--data_dir", default="../shared/data/conll03")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cores", default="1,2", help="core counts, one configuration each (see above)")
    p.add_argument("--quantize", default="none,int8", help="E-NER variants: none, int8 (dynamic, models/quantize.py)")
    p.add_argument("--spacy_steps", type=int, default=2000, help="spaCy's training budget (max_steps)")
    p.add_argument("--spacy_dir", default="bench/runs/spacy_conll03")
    p.add_argument("--flair_epochs", type=int, default=2, help="Flair's training budget (epochs)")
    p.add_argument("--flair_dir", default="bench/runs/flair_conll03")
    p.add_argument("--flair_sweep", default=FLAIR_SWEEP, help="batch sizes tried once to find Flair's best")
    p.add_argument("--peers", default="spacy,flair", help="which peers to run")
    p.add_argument("--train_only", action="store_true", help="train the peers (under one lock) and stop")
    p.add_argument("--out", default="bench/spacy_side_by_side.json")
    p.add_argument("--plot", default="bench/speed_pareto.png")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "speed.md"), help="'' writes none")
    for hidden in ("--tag_spacy", "--tag_flair", "--tag_ener", "--test_file", "--save_file", "--batch_sizes",
                   "--run_quantize"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    p.add_argument("--run_workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--replot", action="store_true", help="redraw the plot and the doc block from --out, no runs")
    args = p.parse_args(argv)
    if internal(args):
        return
    if args.replot:
        publish(json.load(open(args.out)), args)
        return
    try:
        test_file = split_path(args.data_dir, "test", "ori")
    except DataError as err:
        sys.exit(f"error: {err}")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        sys.exit(f"error: {args.model}: not a checkpoint directory (no config.json)")
    skipped, peers = [], set(args.peers.split(",")) - {""}
    from bench.flair_peer import flair_missing

    for peer, missing in (("spacy", spacy_missing), ("flair", flair_missing)):
        why = missing() if peer in peers else f"skip: {peer} (not in --peers)"
        if why:
            print(f"[bench] {why}")
            skipped.append(f"{peer}: {why}")
            peers.discard(peer)
    spacy_model = flair_model = None
    if "spacy" in peers:
        spacy_model = train_spacy(args.data_dir, os.path.join(ROOT, args.spacy_dir), args.spacy_steps, threads=1)
    if "flair" in peers:
        from bench.flair_peer import train_flair

        flair_model = train_flair(args.data_dir, os.path.join(ROOT, args.flair_dir), args.flair_epochs)
    if args.train_only:
        return
    out_dir = os.path.join(ROOT, "bench", "runs", "side_by_side")
    os.makedirs(out_dir, exist_ok=True)
    models = {"ener": ("GloVe E-NER, default", args.model), "fast": ("GloVe E-NER, fast", args.fast_model),
              "accurate": ("E-NER, accurate (MiniLM context)", args.accurate_model), "bert": ("MiniLM E-NER", args.bert_model)}
    quantize = [q for q in args.quantize.split(",") if q]
    configs = []
    for cores in (int(c) for c in args.cores.split(",")):
        sides = {}  # name -> (label, ours, fn)
        if spacy_model:
            sides["spacy"] = (f"spaCy {args.spacy_steps} steps, efficiency NER", False,
                              lambda: run_self(["--tag_spacy", spacy_model, "--test_file", test_file], cores))
        if flair_model:
            sweep = run_self(["--tag_flair", flair_model, "--test_file", test_file, "--batch_sizes", args.flair_sweep],
                             cores)
            best = max(sweep, key=lambda x: x["sentences_per_second"])["batch_size"]
            print(f"[bench] {cores} core(s): Flair's batch sweep " + ", ".join(
                f"{x['batch_size']}: {x['sentences_per_second']:.0f}" for x in sweep) + f"; best {best}", flush=True)
            for batch in sorted({32, best}):
                sides[f"flair_{batch}"] = (
                    f"Flair BiLSTM-CRF ({args.flair_epochs} epochs), predict batch {batch}"
                    + (" (default)" if batch == 32 else " (its best)"), False,
                    lambda b=batch: run_self(["--tag_flair", flair_model, "--test_file", test_file,
                                              "--batch_sizes", str(b)], cores)[0])
        for key in E_NER:
            label, path = models[key]
            if not path or not os.path.isfile(os.path.join(path, "config.json")):
                why = f"{label}: no checkpoint at {path}"
                if key in ("fast", "accurate") and why not in skipped:
                    skipped.append(why)
                continue
            for q in quantize:
                name = key if q == "none" else f"{key}_{q}"
                save = os.path.join(out_dir, f"{name}.jsonl")
                flags = ["--tag_ener", path, "--data_dir", args.data_dir, "--save_file", save, "--run_quantize", q,
                         "--run_workers", str(cores)]
                sides[name] = (f"{label}{', int8' if q == 'int8' else ''} ({trained(path)})", True,
                               lambda f=flags: run_self(f, 1))
        runs = {name: [] for name in sides}
        for i in range(args.rounds):  # alternate: every side sees the same stretch of machine load
            for name, (label, _, fn) in sides.items():
                runs[name].append(timed(fn))
                x = runs[name][-1]
                print(f"[bench] {cores} core(s), round {i + 1}, {label}: {x['sentences_per_second']:.0f} sentences/s, "
                      f"F1 {x['f1']:.4f}, AUROC {fmt_auroc(x['auroc'])}", flush=True)
        label = ("one core: one thread each" if cores == 1 else
                 f"{cores} cores: spaCy and Flair {cores} threads, E-NER --workers {cores} (one thread each)")
        cfg = {"cores": cores, "label": label, "sides": {}}
        for name, (side_label, ours, _) in sides.items():
            cfg["sides"][name] = {"name": side_label, "ours": ours, "runs": runs[name], "median": median(runs[name]),
                                  "f1": runs[name][0]["f1"], "auroc": runs[name][0]["auroc"],
                                  "f1_all_rounds": sorted({x["f1"] for x in runs[name]})}
        cfg["pareto"] = [n for n in cfg["sides"] if n in pareto({n: (s["median"], s["f1"])
                                                                  for n, s in cfg["sides"].items()})]
        configs.append(cfg)
    loads = [x[k] for c in configs for s in c["sides"].values() for x in s["runs"] for k in ("load_before", "load_after")]
    notes = []
    if spacy_model:
        import spacy

        training = json.load(open(os.path.join(ROOT, args.spacy_dir, "trained.json")))
        notes.append(f"spaCy {spacy.__version__} `init config -l en -p ner -o efficiency`, trained here for "
                     f"{args.spacy_steps} steps ({training['minutes']} min) on the same train split, `nlp.pipe` over "
                     "pre-tokenized Docs, batch_size 256.")
    if flair_model:
        import flair

        from bench.flair_peer import import_flair  # noqa: F401

        training = json.load(open(os.path.join(ROOT, args.flair_dir, "trained.json")))
        notes.append(f"Flair {flair.__version__} SequenceTagger (GloVe 6B 50-d + character embeddings, hidden 256, CRF, "
                     f"BIOES), trained here for {args.flair_epochs} epochs ({training['minutes']} min), `predict` over "
                     "pre-tokenized Sentences (built before the clock).")
    notes.append("E-NER: `local_inference.py` (evidential uncertainty, candidates, records written), its own "
                 "sentences/s; int8: dynamic quantization on load (models/quantize.py).")
    results = {"machine": machine(), "sentences": len(read_dataset(test_file)), "rounds": args.rounds,
               "configs": configs, "skipped": skipped, "peers_note": " ".join(notes), "plot": args.plot,
               "load_range": f"{min(loads):.1f}–{max(loads):.1f}" if loads else "?",
               "argv": " ".join(argv if argv is not None else sys.argv[1:])}
    publish(results, args)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(results["markdown"])


def publish(results: dict, args: argparse.Namespace) -> None:
    """`results`' doc block (kept in them as "markdown"), its plot, and the block in --doc."""
    results["markdown"] = markdown(results)
    plot(results, os.path.join(ROOT, args.plot))
    if args.doc:
        update_block(args.doc, results["markdown"])


if __name__ == "__main__":
    main()
