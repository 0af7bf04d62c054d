"""Turn span scores into label probabilities and one uncertainty per span.

Every uncertainty lies in [0, 1] (higher = less sure), so one `--candidate_threshold`
means roughly the same thing whichever method produced it. Label index 0 is "O".
Work is done in float32 so half-precision logits from a GPU stay stable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.config import ModelConfig
from models.losses import evidence
from utils.errors import ConfigError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

UNCERTAINTY_TYPES = ("confidence", "entropy", "mc_dropout", "evidential")
LEARNED = "learned"  # the checkpoint's error predictor over the default type (inference/local/learned/rescoring.py)

def _check_logits(logits, min_dim=1):
    if not torch.is_tensor(logits) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {type(logits).__name__}")
    if logits.dim() < min_dim:
        raise ValueError(f"logits need at least {min_dim} dimensions [..., K], got shape {tuple(logits.shape)}")
    if logits.shape[-1] < 2:
        raise ValueError(f"logits need at least 2 labels (O and one entity type), got K={logits.shape[-1]}")
    return logits.float()


def _entropy(probs):
    """Entropy over the last axis, divided by log K so it lies in [0, 1]."""
    return torch.special.entr(probs).sum(-1) / math.log(probs.shape[-1])


def span_probabilities(logits: torch.Tensor, uncertainty_type: str,
                       etrans_func: str = ModelConfig.etrans_func) -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(probs [..., K], uncertainty [...])` for span scores `logits` [..., K].

    - confidence: 1 - max softmax probability.
    - entropy: softmax entropy / log K.
    - mc_dropout: `logits` is [T, ..., K] from T passes with dropout on; probs are the mean
      softmax and the uncertainty is 1 - its max (comparable with `confidence`).
    - evidential: alpha = evidence + 1, probs = alpha / S, uncertainty = K / S, S = sum(alpha).
    """
    if uncertainty_type not in UNCERTAINTY_TYPES:
        raise ConfigError(f"unknown uncertainty_type {uncertainty_type!r}; choose one of {', '.join(UNCERTAINTY_TYPES)}")
    logits = _check_logits(logits, min_dim=2 if uncertainty_type == "mc_dropout" else 1)
    if uncertainty_type == "evidential":
        alpha = evidence(logits, etrans_func) + 1.0
        strength = alpha.sum(-1)
        return alpha / strength.unsqueeze(-1), logits.shape[-1] / strength
    probs = torch.softmax(logits, dim=-1)
    if uncertainty_type == "mc_dropout":
        probs = probs.mean(0)
    if uncertainty_type == "entropy":
        return probs, _entropy(probs)
    return probs, 1.0 - probs.max(-1).values


def tempered(probs: ArrayLike, temperature: float) -> np.ndarray:
    """Probabilities [..., K] re-scaled by a post-hoc temperature on their logarithms: for a
    softmax this is softmax(logits / T); T > 1 softens, T < 1 sharpens, T = 1 is the identity."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) / temperature
    logp -= logp.max(-1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(-1, keepdims=True)
