"""What a checkpoint's dev calibration adds to each decoded sentence, after decoding (so
the entities, and F1, never change): with `--uncertainty_type learned`, the learned error
probability as the listed spans' uncertainty (and 1 minus it as their confidence); with the
other types, a "calibrated_confidence" per listed span: its label's probability under the
dev temperature (the confidence and uncertainty themselves are kept)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from inference.local.learned.second_model import SecondModel, second_model_outputs
from inference.local.dev_calibration import DevCalibration
from inference.local.learned.error_predictor import ErrorPredictor
from inference.local.uncertainty import LEARNED, tempered
from utils.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

    from dataloaders.readers import Sentence
    from inference.local.learned.second_model import SecondOut


class Rescorer:
    """Built once per run from the checkpoint directory; `rescore` each decoded sentence."""

    def __init__(self, checkpoint, config, featurizer, uncertainty_type, calibration=None, device="cpu"):
        calibration = calibration or DevCalibration.load(checkpoint)
        self.labels, self.predictor, self.temperature, self.second_model = config.labels, None, None, None
        if uncertainty_type == LEARNED:
            self.predictor = ErrorPredictor.load(checkpoint, config.labels)
            if self.predictor is None:
                raise ConfigError(f"{checkpoint}: no error predictor; run python -m inference.local.calibrate "
                                 f"{checkpoint} --data_dir DATA (training writes one on its dev split)")
            self.word_flags = self.predictor.word_flags(featurizer)
            second = self.predictor.second_model
            if second is not None:  # a two-model predictor: the second checkpoint runs too
                self.second_model = SecondModel(second["path"], config.labels, device, expected=second)
        else:
            temperature = calibration.temperature(uncertainty_type)
            self.temperature = temperature if temperature and temperature != 1.0 else None

    @property
    def active(self) -> bool:
        return self.predictor is not None or self.temperature is not None

    def outputs(self, sentences: list[Sentence], name: str = "input", *, batch_size: int) -> list[Optional[SecondOut]]:
        """Per sentence, the second model's second_out (None when the predictor reads none)."""
        return second_model_outputs(self.second_model, sentences, name, batch_size=batch_size)

    def rescore(self, records: list[dict], spans: Sequence[tuple[int, int]], probs: ArrayLike, uncertainty: ArrayLike,
                words: Sequence[str], second_out: Optional[SecondOut] = None) -> list[dict]:
        if self.predictor is not None:
            return self.predictor.rescore(records, spans, probs, uncertainty, self.labels, words, self.word_flags,
                                          second_out)
        if self.temperature is not None and records:
            where = {(int(s), int(e)): i for i, (s, e) in enumerate(spans)}
            self._calibrate(records, [where.get(tuple(r["span"])) for r in records], probs)
        return records

    def rescore_batch(self, decoded: list[list[dict]], rows: list[list[Optional[int]]], spans: Sequence[Sequence[tuple[int, int]]],
                      probs: torch.Tensor, uncertainty: torch.Tensor, words: Sequence[Sequence[str]],
                      second_outs: Sequence[Optional[SecondOut]]) -> None:
        """`rescore` of the sentences that `decode_batch` decoded into `decoded` (with their `rows`),
        from its `probs` [N, K] and `uncertainty` [N], the sentences' `spans` end to end."""
        if self.predictor is not None:
            counts = [len(s) for s in spans]
            for args in zip(decoded, spans, probs.split(counts), uncertainty.split(counts), words, second_outs):
                self.rescore(*args)
        elif self.temperature is not None:
            self._calibrate([r for sent in decoded for r in sent], [i for sent in rows for i in sent], probs)

    def _calibrate(self, records: list[dict], rows: list[Optional[int]], probs: ArrayLike) -> None:
        """Each record's "calibrated_confidence": its label's probability, under the dev temperature,
        in its row of `probs` (none for a record whose row is None)."""
        listed = [(rec, i) for rec, i in zip(records, rows) if i is not None]
        if not listed:
            return
        p = tempered(np.asarray(probs)[[i for _, i in listed]].astype(np.float64), self.temperature)
        index = {label: k for k, label in enumerate(self.labels)}
        for (rec, _), row in zip(listed, p):
            rec["calibrated_confidence"] = float(row[index[rec["pred"]]])
