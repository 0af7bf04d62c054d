"""A second, independently trained checkpoint's outputs for the spans the first one lists: the
signal of a two-model ensemble for the learned error predictor (`python -m
inference.local.calibrate CKPT --second_model OTHER`). Trained on other features (the MiniLM
E-NER beside the GloVe E-NER, say), it errs elsewhere, so its disagreement marks errors the
first model's own signals cannot see (bench/error_headroom.py measures this).

Per listed span the predictor reads four numbers:

    second_p_pred        the second model's probability of the first model's label
    second_agree         whether its best label is that label
    second_p_o           its probability of "O"
    second_uncertainty   its own default uncertainty

A span the second model does not enumerate (longer than its max_span_len) reads as uniform.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from dataloaders.dataset import SpanDataset
from inference.local.predict import default_uncertainty, outputs_by_type
from models.checkpoint import WEIGHTS, load_checkpoint
from utils.errors import ConfigError
from utils.file_digest import file_digest

if TYPE_CHECKING:
    from dataloaders.readers import Sentence

    SecondOut = dict[tuple[int, int], tuple[np.ndarray, float]]  # per span: the second model's probs, uncertainty

FEATURES = ("second_p_pred", "second_agree", "second_p_o", "second_uncertainty")


def describe(path: str) -> dict[str, str]:
    """What the predictor stores about its second model: where it is and its weights' digest
    (a retrained model of the same shape has weights of the same size, not the same digest)."""
    return {"path": os.path.abspath(path), "weights": file_digest(os.path.join(path, WEIGHTS))}


def second_model_outputs(second: Optional[SecondModel], sentences: list[Sentence], name: str = "input", *,
                         batch_size: int) -> list[Optional[SecondOut]]:
    """`second.outputs(sentences)`, or None per sentence when there is no second model."""
    if not second:
        return [None] * len(sentences)
    return [*second.outputs(sentences, name, batch_size=batch_size)]


class SecondModel:
    """The second checkpoint, loaded once; `outputs` runs it over a list of sentences."""

    def __init__(self, path, labels, device="cpu", expected=None):
        if not os.path.isdir(path):
            raise ConfigError(f"{path}: the error predictor's second model is missing; restore it, or recalibrate "
                             "with python -m inference.local.calibrate CHECKPOINT --data_dir DATA")
        if expected is not None and describe(path)["weights"] != expected.get("weights"):
            raise ConfigError(f"{path}: not the second model the error predictor was fitted with (other weights); "
                             "recalibrate with --second_model")
        self.model, self.featurizer, self.config = load_checkpoint(path, device)
        if list(self.config.labels) != list(labels):
            raise ConfigError(f"{path}: its labels {self.config.labels} are not the first model's {list(labels)}")
        self.path, self.labels, self.device = path, list(labels), device

    def outputs(self, sentences: list[Sentence], name: str = "input", *, batch_size: int) -> list[SecondOut]:
        """Per sentence, {(start, end): (probs [K], uncertainty)} under the second model's
        default uncertainty."""
        with warnings.catch_warnings():  # entities longer than its max_span_len: read as uniform below
            warnings.simplefilter("ignore", UserWarning)
            dataset = SpanDataset(sentences, self.featurizer, self.labels, self.config.max_span_len, name)
        base = default_uncertainty(self.config)
        return [{(int(s), int(e)): (probs[j], float(unc[j])) for j, (s, e) in enumerate(spans)}
                for spans, probs, unc in outputs_by_type(self.model, self.config, dataset, [base], batch_size,
                                                         self.device)[base]]


def second_model_features(records: list[dict], second_out: SecondOut, labels: Sequence[str]) -> np.ndarray:
    """[len(records), 4]: the FEATURES of each listed record under `second_out` (from `outputs`)."""
    index = {label: k for k, label in enumerate(labels)}
    uniform = (np.full(len(labels), 1.0 / len(labels)), 1.0)
    rows = np.zeros((len(records), len(FEATURES)))
    for row, rec in zip(rows, records):
        q, u = second_out.get(tuple(rec["span"]), uniform)
        k = index[rec["pred"]]
        row[:] = (q[k], float(int(np.argmax(q)) == k), q[0], u)
    return rows
