"""Fit a checkpoint's dev calibration and error predictor, and store them in its directory.

    python -m inference.local.calibrate CHECKPOINT --data_dir ../shared/data/conll03

Training calls `calibrate_checkpoint` when it ends; this command adds (or redoes) the same
for an existing checkpoint. On the dev split only, per uncertainty type:

- candidate threshold: scanning the thresholds above which a given share of the dev spans
  tagged O lie (CANDIDATE_SHARES, strictest first; each type's own scale, so it holds for any
  encoder), the loosest one whose every step still makes the extra candidates at least as
  often a gold entity no span listed as the predicted entities are wrong: candidates then
  never dilute the errors among the listed spans, which are what a budget sends;
- budget table: the quantiles of the listed spans' uncertainties, from which online --budget
  takes its threshold;
- temperature: the T (a grid, TEMPERATURES) minimising the log-loss of the predicted entities'
  tempered confidence against their being right;

and, for the checkpoint's default type, the learned error predictor (error_predictor.py),
whose own budget table comes from out-of-fold dev probabilities. With `--second_model OTHER`
the predictor also reads a second checkpoint's outputs for each span (learned/second_model.py), and local
inference with `--uncertainty_type learned` then runs that checkpoint too. Each type's `dev` entry
scores its ranking of the dev errors (for the learned one, out of fold): what to choose on.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import torch

from dataloaders.dataset import SpanDataset
from dataloaders.readers import read_dataset, split_path
from inference.budget import uncertainty_table
from inference.local.learned.second_model import SecondModel, describe, second_model_outputs
from inference.local.decode import decode_sentence
from inference.local.dev_calibration import DevCalibration
from inference.local.learned.error_predictor import ErrorPredictor, predictor_path, predictor_rows
from inference.local.predict import default_uncertainty, outputs_by_type
from inference.local.learned.span_features import WordFlags, encoder_lookup, train_lexicon
from inference.local.tagging import TagSettings
from inference.local.uncertainty import LEARNED, tempered
from inference.reports.budget_curve import caught
from inference.reports.calibration import auroc
from models.checkpoint import load_checkpoint
from models.training import MAX_BATCH
from utils import flag_types as ft
from utils.cli import run_cli
from utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from dataloaders.readers import Sentence
    from inference.local.predict import Device, Outputs
    from models.checkpoint import Featurizer
    from models.config import ModelConfig
    from models.span_ner import SpanNER

log = logging.getLogger("calibrate")
CANDIDATE_SHARES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
TEMPERATURES = np.exp(np.linspace(np.log(0.1), np.log(10.0), 93))


def softmax_types(config: ModelConfig) -> tuple[str, ...]:
    return ("evidential", "confidence", "entropy") if config.is_ener else ("confidence", "entropy")


def gold_spans(sent: Sentence) -> list:
    """A dev sentence's gold [(start, end, label)]: calibration reads labelled splits only."""
    if sent.entities is None:
        raise DataError("calibration needs a labelled dev split; a sentence has no gold labels")
    return sent.entities


def decode_all(outputs: Outputs, sentences: list[Sentence], labels: Sequence[str],
               threshold: Optional[float]) -> list[list[dict]]:
    return [decode_sentence(spans, probs, unc, labels, threshold, sent.entities, words=sent.words)
            for (spans, probs, unc), sent in zip(outputs, sentences)]


def listed_gold(decoded: list[list[dict]], sentences: list[Sentence]) -> tuple[int, int, int]:
    """(gold entities some listed span matches exactly, candidates listed, wrong entities)."""
    found = candidates = wrong = 0
    for records, sent in zip(decoded, sentences):
        gold = {(s, e) for s, e, _ in gold_spans(sent)}
        found += len(gold & {tuple(r["span"]) for r in records})
        candidates += sum(bool(r["candidate"]) for r in records)
        wrong += sum(not r["candidate"] and r["pred"] != r["answer"] for r in records)
    return found, candidates, wrong


def scan_candidates(outputs: Outputs, sentences: list[Sentence], labels: Sequence[str]) -> tuple[float, list[dict]]:
    """(chosen threshold, the scan's rows): see the module's docstring."""
    o_unc = np.concatenate([unc[probs.argmax(1) == 0] for _, probs, unc in outputs])
    n_gold = sum(len(gold_spans(s)) for s in sentences)
    decoded = decode_all(outputs, sentences, labels, None)
    found, cands, wrong = listed_gold(decoded, sentences)
    min_gain = wrong / max(1, sum(map(len, decoded)))  # the predicted entities' dev error rate
    rows = [{"threshold": None, "candidates": cands, "never_listed": n_gold - found, "min_gain": round(min_gain, 4)}]
    chosen, accepting = -1.0, True
    for share in CANDIDATE_SHARES:
        threshold = float(np.quantile(o_unc, 1.0 - share))
        found_t, cands_t, _ = listed_gold(decode_all(outputs, sentences, labels, threshold), sentences)
        gain = (found_t - found) / max(1, cands_t - cands)
        rows.append({"threshold": threshold, "o_share": share, "candidates": cands_t,
                     "never_listed": n_gold - found_t, "gain": round(gain, 4)})
        accepting = accepting and gain >= min_gain
        if accepting:
            chosen, found, cands = threshold, found_t, cands_t
    return chosen, rows


def entity_rows(decoded: list[list[dict]], outputs: Outputs,
                labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities [n, K], label index [n], right [n]) of the predicted entities."""
    index = {label: k for k, label in enumerate(labels)}
    probs, pred, right = [], [], []
    for records, (spans, p, _) in zip(decoded, outputs):
        where = {tuple(s): i for i, s in enumerate(spans)}
        for r in records:
            if not r["candidate"]:
                probs.append(p[where[tuple(r["span"])]])
                pred.append(index[r["pred"]])
                right.append(r["pred"] == r["answer"])
    return np.array(probs), np.array(pred, dtype=int), np.array(right, dtype=bool)


def fit_temperature(probs: np.ndarray, pred: np.ndarray, right: np.ndarray) -> float:
    """The grid temperature with the lowest log-loss of tempered confidence vs being right."""
    if not len(right) or right.all() or not right.any():
        return 1.0
    losses = []
    for t in TEMPERATURES:
        conf = np.clip(tempered(probs, t)[np.arange(len(pred)), pred], 1e-9, 1 - 1e-9)
        losses.append(-np.mean(np.where(right, np.log(conf), np.log1p(-conf))))
    return float(TEMPERATURES[int(np.argmin(losses))])


def listed_uncertainties(decoded: list[list[dict]]) -> list[float]:
    return [r["uncertainty"] for records in decoded for r in records]


def calibrate_type(outputs: Outputs, sentences: list[Sentence],
                   labels: Sequence[str]) -> tuple[dict[str, Any], list[list[dict]]]:
    """One uncertainty type's entry of calibration.json, and its decoded dev records."""
    threshold, scan = scan_candidates(outputs, sentences, labels)
    decoded = decode_all(outputs, sentences, labels, threshold if threshold >= 0 else None)
    listed = listed_uncertainties(decoded)
    entry = {"candidate_threshold": threshold, "candidate_scan": scan,
             "temperature": fit_temperature(*entity_rows(decoded, outputs, labels)),
             "listed": len(listed), "dev": dev_scores(decoded, listed), "budget_table": uncertainty_table(listed)}
    return entry, decoded


def rank_scores(uncertainties: ArrayLike, errors: ArrayLike, entity: ArrayLike) -> dict[str, Optional[float]]:
    """How well `uncertainties` rank the `errors` (flags, one per listed span): entity AUROC over
    the listed spans that are predicted entities (`entity`), and errors caught at 5 / 10 / 20 %."""
    unc, errors, entity = (np.asarray(uncertainties, dtype=np.float64), np.asarray(errors, dtype=bool),
                           np.asarray(entity, dtype=bool))
    scores = {"auroc": auroc(unc[entity], errors[entity]) if entity.any() else None}
    scores.update({f"caught_{round(100 * b)}": caught(unc, errors, b) for b in (0.05, 0.1, 0.2)})
    return scores


def dev_scores(decoded: list[list[dict]], uncertainties: ArrayLike) -> dict[str, Optional[float]]:
    """How well `uncertainties` (one per listed span of `decoded`) rank the dev errors: entity
    AUROC (wrong vs right predicted entities) and the errors caught at 5, 10 and 20 % budgets."""
    spans = [r for records in decoded for r in records]
    return rank_scores(uncertainties, [r["pred"] != r["answer"] for r in spans], [not r["candidate"] for r in spans])


def fit_predictor(outputs: Outputs, decoded: list[list[dict]], sentences: list[Sentence], labels: Sequence[str],
                  word_flags: WordFlags, base_type: str, second: Optional[SecondModel] = None, *,
                  batch_size: int) -> tuple[ErrorPredictor, dict[str, Any]]:
    """The error predictor fitted on the dev spans that `decoded` lists, and its table entry;
    with a `second` (second_model.SecondModel), reading its outputs for each span too."""
    feats, wrong = [], []
    for records, (spans, probs, unc), sent, second_out in zip(decoded, outputs, sentences,
                                                         second_model_outputs(second, sentences, "dev", batch_size=batch_size)):
        if records:
            feats.append(predictor_rows(records, spans, probs, unc, labels, sent.words, word_flags, second_out,
                                        second is not None))
            wrong += [r["pred"] != r["answer"] for r in records]
    described = describe(second.path) if second else None
    predictor, out_of_fold = ErrorPredictor.fit(np.concatenate(feats), wrong, labels, word_flags, base_type,
                                                second=described)
    entry = {"base": base_type, "listed": len(wrong), "dev": dev_scores(decoded, out_of_fold),
             "budget_table": uncertainty_table(out_of_fold)}
    if described:
        entry["second_model"] = described["path"]
    return predictor, entry


def calibrate_checkpoint(checkpoint: str, dev_sentences: list[Sentence], train_sentences: list[Sentence],
                         dev_name: str = "dev", device: Optional[Device] = None,
                         batch_size: int = TagSettings.batch_size, model: Optional[SpanNER] = None,
                         featurizer: Optional[Featurizer] = None, config: Optional[ModelConfig] = None,
                         second_model: Optional[str] = None) -> dict[str, Any]:
    """Write CHECKPOINT/calibration.json and CHECKPOINT/error_predictor.json from the dev split
    (the predictor reading `second_model`'s outputs too, when given); returns the calibration's data."""
    start = time.time()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if model is None:
        model, featurizer, config = load_checkpoint(checkpoint, device)
    if featurizer is None or config is None:
        raise ValueError("calibrate_checkpoint: a model needs its featurizer and config")
    labels = config.labels
    if second_model is not None and os.path.abspath(second_model) == os.path.abspath(checkpoint):
        raise ConfigError(f"{second_model}: the second model must be another checkpoint")
    second = SecondModel(second_model, labels, device) if second_model else None  # fail before the work
    dataset = SpanDataset(dev_sentences, featurizer, labels, config.max_span_len, dev_name)
    base, predictor = default_uncertainty(config), None
    calib = DevCalibration()
    calib.data["dev"] = {"file": dev_name, "sentences": len(dev_sentences)}
    types = softmax_types(config)
    for unc_type, outputs in outputs_by_type(model, config, dataset, types, batch_size, device).items():
        entry, decoded = calibrate_type(outputs, dev_sentences, labels)
        calib.data["types"][unc_type] = entry
        if unc_type == base:
            flags = WordFlags(encoder_lookup(featurizer), *train_lexicon(train_sentences))
            try:
                predictor, calib.data["types"][LEARNED] = fit_predictor(outputs, decoded, dev_sentences, labels,
                                                                        flags, base, second, batch_size=batch_size)
            except ValueError as err:  # e.g. a dev split on which every listed span is right
                log.warning("no error predictor: %s", err)
    if predictor is not None:
        predictor.save(checkpoint)
    elif os.path.isfile(predictor_path(checkpoint)):
        os.remove(predictor_path(checkpoint))  # an older one would not match this calibration
    calib.data["seconds"] = round(time.time() - start, 1)
    log.info("dev calibration written to %s (%.0f s)", calib.save(checkpoint), time.time() - start)
    return calib.data


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint directory (train_spanner.py / train_ener.py output)")
    p.add_argument("--data_dir", help="the data directory the model was trained on (its dev and train splits)")
    p.add_argument("--dev_file", help="override the dev split")
    p.add_argument("--train_file", help="override the train split (its words feed the unknown-word feature)")
    p.add_argument("--second_model", help="another checkpoint with the same labels (e.g. a MiniLM E-NER beside a "
                   "GloVe one) whose outputs for each span the error predictor reads too; learned inference then runs it")
    p.add_argument("--device", help="default: cuda when there is one, else cpu")
    p.add_argument("--batch_size", type=ft.whole_number(MAX_BATCH), default=TagSettings.batch_size)
    args = p.parse_args(argv)
    if not args.data_dir and not (args.dev_file and args.train_file):
        p.error("give --data_dir, or both --dev_file and --train_file")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    run_cli(_run, args)


def _run(args):
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, featurizer, config = load_checkpoint(args.checkpoint, device)
    dev_path = args.dev_file or split_path(args.data_dir, "dev", test_mode=None)
    dev = read_dataset(dev_path, labels=config.labels)
    train = read_dataset(args.train_file or split_path(args.data_dir, "train", test_mode=None), labels=config.labels)
    if not dev or any(s.entities is None for s in dev):
        raise DataError(f"{dev_path}: calibration needs a labelled dev split")
    data = calibrate_checkpoint(args.checkpoint, dev, train, dev_path, device, args.batch_size, model,
                                featurizer, config, args.second_model)
    for unc_type, entry in data["types"].items():
        dev = ", ".join(f"{k} {v:.3f}" for k, v in entry["dev"].items() if v is not None)
        print(f"{unc_type}: {entry['listed']} listed dev spans ({dev})"
              + (f", candidate threshold {entry['candidate_threshold']:.4g}, temperature {entry['temperature']:.3g}"
                 if "temperature" in entry else f" (error predictor on {entry['base']})"))


if __name__ == "__main__":
    main()
