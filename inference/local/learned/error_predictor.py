"""The learned error predictor: a logistic regression (scikit-learn) from `span_features` to
the probability that a listed span's local label is wrong, fitted on a checkpoint's dev split.

It is kept in CHECKPOINT/error_predictor.json as plain numbers (feature names, the scaler's
mean and scale, coefficients, intercept) plus the training vocabulary the `unknown_train`
feature reads, so loading it runs no code. `--uncertainty_type learned` puts its output in
each listed span's "uncertainty" (and 1 minus it in "confidence"): a probability in [0, 1],
so one threshold means the same for every encoder. It records the digest of the weights it was
fitted on: a predictor of other weights (the checkpoint retrained since) is refused.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
from scipy.special import expit

from inference.local.dev_calibration import fitted_elsewhere, weights_digest
from inference.local.learned.second_model import FEATURES as SECOND_FEATURES
from inference.local.learned.second_model import second_model_features
from inference.local.learned.span_features import WordFlags, encoder_lookup, feature_names, sentence_features
from utils.errors import ConfigError, DataError
from utils.versioned_json import read_versioned, write_atomic

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from inference.local.learned.second_model import SecondOut
    from models.checkpoint import Featurizer

PREDICTOR = "error_predictor.json"
FORMAT = "linkner-error-predictor/1"
C_GRID = (0.01, 0.1, 1.0, 10.0)


def predictor_features(labels: Sequence[str], second: Optional[dict] = None) -> list[str]:
    """The predictor's feature names: span_features', then the second model's when it has one."""
    return feature_names(labels) + (list(SECOND_FEATURES) if second else [])


def predictor_rows(records: list[dict], spans: Sequence[tuple[int, int]], probs: ArrayLike, uncertainty: ArrayLike,
                   labels: Sequence[str], words: Sequence[str], word_flags: WordFlags,
                   second_out: Optional[SecondOut] = None, second: bool = False) -> np.ndarray:
    """The predictor's input rows for the listed `records` of one sentence: `span_features`,
    then, for a two-model predictor (`second`), the second model's outputs for each span."""
    x = sentence_features(records, spans, probs, uncertainty, labels, words, word_flags)
    if not second:
        return x
    if second_out is None:
        raise ValueError("predictor_rows: a two-model predictor needs the second model's outputs")
    return np.hstack([x, second_model_features(records, second_out, labels)])


def predictor_path(checkpoint: str) -> str:
    return os.path.join(checkpoint, PREDICTOR)


def fit_logistic(features: np.ndarray, wrong: ArrayLike,
                 seed: int = 0) -> tuple[StandardScaler, LogisticRegression, np.ndarray]:
    """(scaler, model, out-of-fold probabilities) of an L2 logistic regression whose C is
    chosen by 5-fold (fewer when a class has fewer rows) cross-validated log-loss on these rows."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    wrong = np.asarray(wrong, dtype=int)
    n_folds = min(5, int(np.bincount(wrong, minlength=2).min()))
    if n_folds < 2:
        raise DataError("the dev split needs at least two right and two wrong listed spans to fit an error predictor")
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    search = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=list(C_GRID), cv=folds, scoring="neg_log_loss",
                                                                  max_iter=2000))
    with warnings.catch_warnings():  # scikit-learn's notices of future defaults
        warnings.simplefilter("ignore", FutureWarning)
        search.fit(features, wrong)
    best_c = float(search[-1].C_[0])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=best_c, max_iter=2000))
    out_of_fold = cross_val_predict(model, features, wrong, cv=folds, method="predict_proba")[:, 1]
    model.fit(features, wrong)
    return model[0], model[1], out_of_fold


class ErrorPredictor:
    def __init__(self, data):
        self.data = data
        self.mean, self.scale = np.asarray(data["mean"]), np.asarray(data["scale"])
        self.coef, self.intercept = np.asarray(data["coef"]), float(data["intercept"])
        self.train_vocab, self.train_entities = set(data["train_vocab"]), data["train_entities"]
        self.train_words = data["train_words"]

    @classmethod
    def fit(cls, features: np.ndarray, wrong: ArrayLike, labels: Sequence[str], word_flags: WordFlags,
            base_uncertainty: str, seed: int = 0, second: Optional[dict] = None) -> tuple[ErrorPredictor, np.ndarray]:
        """The predictor and its out-of-fold dev probabilities (honest scores for dev tables).
        `second`: `second_model.describe` of the second model whose FEATURES end `features`."""
        scaler, model, out_of_fold = fit_logistic(features, wrong, seed)
        data = {"format": FORMAT, "features": predictor_features(labels, second), "labels": list(labels),
                "second_model": second,
                "base_uncertainty": base_uncertainty, "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
                "coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0]), "C": float(model.C),
                "dev_rows": int(np.size(wrong)), "dev_wrong": int(np.sum(wrong)), "train_vocab": sorted(word_flags.train_vocab),
                "train_entities": word_flags.train_entities, "train_words": word_flags.train_words}
        return cls(data), out_of_fold

    def save(self, checkpoint: str) -> str:
        self.data["weights"] = weights_digest(checkpoint)
        return write_atomic(predictor_path(checkpoint), self.data)

    @classmethod
    def load(cls, checkpoint: str, labels: list) -> "Optional[ErrorPredictor]":
        """The checkpoint's predictor, or None when it has none."""
        path = predictor_path(checkpoint)
        if not os.path.isfile(path):
            return None
        data = read_versioned(path, FORMAT, "LinkNER error predictor")
        stale = fitted_elsewhere(path, data, checkpoint)
        if stale:
            raise DataError(stale)
        if data["features"] != predictor_features(labels, data.get("second_model")):
            raise ConfigError(f"{path}: fitted for other labels or features; recalibrate the checkpoint")
        return cls(data)

    @property
    def second_model(self) -> Optional[dict]:
        """`second_model.describe` of the second model it reads, or None."""
        return self.data.get("second_model")

    @property
    def base_uncertainty(self) -> str:
        return self.data["base_uncertainty"]

    def word_flags(self, featurizer: Featurizer) -> WordFlags:
        return WordFlags(encoder_lookup(featurizer), self.train_vocab, self.train_entities, self.train_words)

    def probability(self, features: ArrayLike) -> np.ndarray:
        """P(wrong) for each row of `features`."""
        return expit(((np.asarray(features) - self.mean) / self.scale) @ self.coef + self.intercept)

    def rescore(self, records: list[dict], spans: Sequence[tuple[int, int]], probs: ArrayLike, uncertainty: ArrayLike,
                labels: Sequence[str], words: Sequence[str], word_flags: WordFlags,
                second_out: Optional[SecondOut] = None) -> list[dict]:
        """Put P(wrong) into each listed record's uncertainty, 1 - P(wrong) into its confidence;
        `second_out`: the second model's outputs for this sentence, when the predictor reads one."""
        if not records:
            return records
        p = self.probability(predictor_rows(records, spans, probs, uncertainty, labels, words, word_flags, second_out,
                                            self.second_model is not None))
        for rec, p_wrong in zip(records, p):
            rec["uncertainty"], rec["confidence"] = float(p_wrong), float(1.0 - p_wrong)
        return records
