"""How far can error ranking go with this local model? Per CoNLL-03 set, the errors caught at
5 / 10 / 20 % of the listed spans sent and the entity AUROC of:

  default     the checkpoint's own uncertainty (evidential for E-NER, confidence for SpanNER);
  learned     the error predictor as `inference.local.calibrate` ships it (logistic regression
              on `span_features`, fitted on dev);
  + MC        the same, with MC-dropout agreement added: over T passes with dropout on, the mean
              and spread of the predicted label's probability and the share of passes that agree;
  + file      the same, with consistency across the input file added: how often the span's text
              is listed elsewhere in the file, and the share of those with the same label;
  + second    the same, with a second, independently trained checkpoint's outputs for each span added
              (`--second_model`; inference/local/learned/second_model.py, as `calibrate --second_model` fits it);
  trees       gradient-boosted trees (scikit-learn) on the learned predictor's features (and
              with the second model's outputs: + second).

Every candidate is fitted on the dev split; its dev row is out of fold (5-fold), which is what
to choose on. The test rows only report.

  ORACLE      the learned features fitted on each test set's OWN gold labels (logistic
              regression and trees, 5-fold, out of fold). Not a method, since it reads test
              labels: an upper bound for how well these features can rank that set's errors.

    python bench/error_headroom.py --model bench/runs/conll03_ener --data_dir ../shared/data/conll03 \\
        --out bench/error_headroom.json
"""
import argparse
import math
import os
import sys
import time
import warnings
from collections import Counter, defaultdict

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]

from dataloaders.dataset import SpanDataset, make_loader  # noqa: E402
from dataloaders.readers import read_dataset, split_path  # noqa: E402
from inference.local.calibrate import decode_all, rank_scores  # noqa: E402
from inference.local.learned.second_model import SecondModel, second_model_features, second_model_outputs  # noqa: E402
from inference.local.dev_calibration import DevCalibration  # noqa: E402
from inference.local.learned.error_predictor import fit_logistic  # noqa: E402
from inference.local.predict import default_uncertainty, outputs_by_type, span_scores  # noqa: E402
from inference.local.learned.span_features import BASE, WordFlags, encoder_lookup, sentence_features, train_lexicon  # noqa: E402
from inference.local.tagging import TagSettings  # noqa: E402
from inference.local.uncertainty import span_probabilities  # noqa: E402
from inference.budget import threshold_for_budget  # noqa: E402
from inference.reports.budget_curve import ceiling  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from run import machine, save_results  # noqa: E402
from utils import flag_types as ft  # noqa: E402
from utils.cli import run_cli  # noqa: E402

SETS = ("dev", "ori", "typos", "oov", "ood")


@torch.no_grad()
def mc_passes(model, config, dataset, base, passes, seed=0):
    """Per sentence, [passes, n_spans, K] probabilities from `passes` forward passes with dropout on."""
    torch.manual_seed(seed)
    out = [None] * len(dataset)
    for batch in make_loader(dataset, 64, shuffle=False):
        # each pass scored under `base` on its own (span_probabilities averages mc_dropout's passes)
        probs = span_probabilities(span_scores(model, batch, "mc_dropout", passes), base, config.etrans_func)[0]
        for row, index in enumerate(batch["index"].tolist()):
            out[index] = probs[:, row, :len(dataset.spans[index]), :].numpy().astype(np.float64)
    return out


def read_set(model, featurizer, config, path, name, threshold, flags, passes, second=None):
    """The listed spans of one file: learned features, MC, file-consistency and second-model
    features, wrong flags and candidate flags."""
    labels, base = config.labels, default_uncertainty(config)
    sentences = read_dataset(path, labels=labels)
    with warnings.catch_warnings():  # entities longer than max_span_len: counted as missed, as always
        warnings.simplefilter("ignore", UserWarning)
        dataset = SpanDataset(sentences, featurizer, labels, config.max_span_len, name)
    outputs = outputs_by_type(model, config, dataset, [base], TagSettings.batch_size)[base]
    decoded = decode_all(outputs, sentences, labels, threshold if threshold >= 0 else None)
    sampled = mc_passes(model, config, dataset, base, passes) if passes else [None] * len(dataset)
    second_outputs = second_model_outputs(second, sentences, name, batch_size=TagSettings.batch_size)
    second_rows = []
    feats, mc, texts, preds, answers, wrong, cand = [], [], [], [], [], [], []
    for records, (spans, probs, unc), sent, passes_p, second_out in zip(decoded, outputs, sentences, sampled, second_outputs):
        if not records:
            continue
        feats.append(sentence_features(records, spans, probs, unc, labels, sent.words, flags))
        if second:
            second_rows.append(second_model_features(records, second_out, labels))
        where = {(int(s), int(e)): i for i, (s, e) in enumerate(spans)}
        for r in records:
            if passes:
                k = labels.index(r["pred"])
                p = passes_p[:, where[tuple(r["span"])], :]
                mc.append([p[:, k].mean(), p[:, k].std(), (p.argmax(1) == k).mean()])
            texts.append(r["entity"])
            preds.append(r["pred"])
            answers.append(r["answer"])
            wrong.append(r["pred"] != r["answer"])
            cand.append(bool(r["candidate"]))
    X, cand = np.concatenate(feats), np.array(cand, dtype=bool)
    seen, label_share = X[:, BASE.index("seen_entity")], X[:, BASE.index("seen_label")]
    return {"X": X, "mc": np.array(mc), "file": file_consistency(texts, preds), "wrong": np.array(wrong, dtype=bool),
            "second": np.concatenate(second_rows) if second else None, "candidate": cand,
            "pairs": [f"{p}->{a}" for p, a in zip(preds, answers)],
            "as_in_training": (seen == 1) & (label_share >= 0.5) & ~cand}


def file_consistency(texts, preds):
    """Per listed span: log(1 + other listed spans with its text in the file), the share of those
    with its label, and whether there are none."""
    where = defaultdict(list)
    for i, t in enumerate(texts):
        where[t].append(i)
    rows = []
    for i, t in enumerate(texts):
        others = [j for j in where[t] if j != i]
        same = sum(preds[j] == preds[i] for j in others)
        rows.append([math.log1p(len(others)), same / len(others) if others else 0.0, float(not others)])
    return np.array(rows)


def scores(u, data):
    return rank_scores(u, data["wrong"], ~data["candidate"])


def trees():
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
                                          random_state=0)


def fit_trees(X, y):
    """(fitted trees, out-of-fold probabilities)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    oof = cross_val_predict(trees(), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                            method="predict_proba")[:, 1]
    return trees().fit(X, y), oof


def missed(u, d, fraction=0.1):
    """Flags of the errors a budget of `fraction` does not send, ranked by `u`."""
    u = np.asarray(u, dtype=np.float64)
    return d["wrong"] & (u <= threshold_for_budget(u, fraction))


def set_summary(d, unsent):
    """One set's counts: listed spans, errors, the errors a 10 % budget leaves `unsent` (flags),
    those the training split labels as the model did, and the most frequent unsent confusions."""
    return {"listed": int(len(d["wrong"])), "errors": int(d["wrong"].sum()), "missed_10": int(unsent.sum()),
            "as_in_training": int((d["wrong"] & d["as_in_training"]).sum()),
            "as_in_training_missed": int((unsent & d["as_in_training"]).sum()),
            "missed_pairs": Counter(np.array(d["pairs"])[unsent].tolist()).most_common(6)}


def evaluate(data):
    """({row name: {set: scores}} for every candidate on dev (out of fold) and test, and the
    oracles; {set: the learned predictor's P(wrong)}, dev out of fold)."""
    rows = {"default": {s: scores(d["X"][:, 0], d) for s, d in data.items()}}
    learned = {}
    dev = data["dev"]
    variants = {"learned": lambda d: d["X"], "learned + MC": lambda d: np.hstack([d["X"], d["mc"]]),
                "learned + file": lambda d: np.hstack([d["X"], d["file"]])}
    if not len(dev["mc"]):  # --passes 0
        del variants["learned + MC"]
    if dev["second"] is not None:
        variants["learned + second"] = lambda d: np.hstack([d["X"], d["second"]])
    for name, view in variants.items():
        scaler, model, oof = fit_logistic(view(dev), dev["wrong"])
        rows[name], probs = {"dev": scores(oof, dev)}, {"dev": oof}
        for s, d in data.items():
            if s != "dev":
                probs[s] = model.predict_proba(scaler.transform(view(d)))[:, 1]
                rows[name][s] = scores(probs[s], d)
        learned = learned or probs
    trees_on = {"trees": lambda d: d["X"]}
    if dev["second"] is not None:
        trees_on["trees + second"] = lambda d: np.hstack([d["X"], d["second"]])
    for name, view in trees_on.items():
        model, oof = fit_trees(view(dev), dev["wrong"])
        rows[name] = {"dev": scores(oof, dev), **{s: scores(model.predict_proba(view(d))[:, 1], d)
                                                  for s, d in data.items() if s != "dev"}}
    rows["ORACLE learned"], rows["ORACLE trees"] = {}, {}
    for s, d in data.items():
        if s != "dev":
            rows["ORACLE learned"][s] = scores(fit_logistic(d["X"], d["wrong"])[2], d)
            rows["ORACLE trees"][s] = scores(fit_trees(d["X"], d["wrong"])[1], d)
    return rows, learned


def markdown(result):
    sets = [s for s in SETS if s in result["sets"]]
    head = (f"Error-ranking headroom of `{result['model']}` ({result['base']} uncertainty), "
            f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
            f"{result['seconds']:.0f} s; " + (f"MC: {result['passes']} passes" if result["passes"] else "no MC row")
            + (f"; second model `{result['second_model']}`" if result.get("second_model") else "")
            + ". Each cell: errors caught at 10 % of the "
            "listed spans sent / entity AUROC. dev cells are out of fold (5-fold); **ORACLE rows are fitted on "
            "that test set's own gold labels** (out of fold), an upper bound for these features, not a method.")
    lines = [head, "", "| uncertainty | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
    for name, row in result["rows"].items():
        cells = [f"{100 * row[s]['caught_10']:.0f} % / {row[s]['auroc']:.3f}" if s in row else "" for s in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| set | listed spans | errors | perfect ranking at 10 % | errors missed at 10 % (learned) "
                 "| errors labelled as in training | of them missed |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for s in sets:
        c = result["sets"][s]
        n, e = c["listed"], c["errors"]
        lines.append(f"| {s} | {n} | {e} | {100 * ceiling(n, e, 0.1):.0f} % | {c['missed_10']} "
                     f"| {c['as_in_training']} | {c['as_in_training_missed']} |")
    lines.append("")
    lines.append("Most frequent (predicted -> gold) among the errors the learned predictor misses at 10 %: "
                 + "; ".join(f"{s}: " + ", ".join(f"{p} {n}" for p, n in result["sets"][s]["missed_pairs"][:4])
                             for s in sets) + ".")
    lines.append("")
    lines.append("*Errors labelled as in training*: predicted entities whose exact text is a training entity, "
                 "at least half the time with the predicted label, whose gold label here differs.")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bench/runs/conll03_ener", help="a calibrated checkpoint directory")
    p.add_argument("--data_dir", default="../shared/data/conll03", help="CoNLL-03 with typos/, oov/, ood/")
    p.add_argument("--passes", type=ft.whole_number(1000, low=0), default=10, help="MC-dropout passes (0: no + MC row)")
    p.add_argument("--second_model", help="a second checkpoint with the same labels, for the + second row")
    p.add_argument("--out", default="bench/error_headroom.json")
    p.add_argument("--results_doc", default=os.path.join(ROOT, "docs", "results.md"),
                   help="write the table into this file's error-headroom block (default docs/results.md; '': none)")
    args = p.parse_args()
    if not os.path.isdir(args.data_dir):
        raise SystemExit(f"error: {args.data_dir}: no such directory (see ../shared/README.md)")
    run_cli(headroom, args)


def headroom(args):
    start = time.time()
    model, featurizer, config = load_checkpoint(args.model, "cpu")
    base = default_uncertainty(config)
    second = SecondModel(args.second_model, config.labels) if args.second_model else None
    threshold = DevCalibration.load(args.model).candidate_default(base)
    flags = WordFlags(encoder_lookup(featurizer), *train_lexicon(read_dataset(split_path(args.data_dir, "train", None),
                                                                              labels=config.labels)))
    paths = {"dev": split_path(args.data_dir, "dev", None),
             **{m: split_path(args.data_dir, "test", m) for m in SETS if m != "dev"}}
    data = {s: read_set(model, featurizer, config, path, s, threshold, flags, args.passes, second)
            for s, path in paths.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        rows, learned = evaluate(data)
    result = {"model": os.path.relpath(os.path.abspath(args.model), ROOT), "base": base, "passes": args.passes,
              "command": " ".join(["python bench/error_headroom.py"] + [a for a in sys.argv[1:]]),
              "second_model": args.second_model and os.path.relpath(os.path.abspath(args.second_model), ROOT),
              "candidate_threshold": threshold, "machine": machine(),
              "seconds": round(time.time() - start, 1),
              "sets": {s: set_summary(d, missed(learned[s], d)) for s, d in data.items()}, "rows": rows}
    result["markdown"] = markdown(result)
    save_results(result, args.out, args.results_doc, "error-headroom")


if __name__ == "__main__":
    main()
