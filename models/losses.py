"""Training losses over span scores [batch, spans, K], with `mask` marking real spans.

Spans that are not gold entities are down-weighted by `neg_weight` (SpanNER's 0.6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

ETRANS = ("exp", "softplus", "relu")
NEG_SPAN_WEIGHT = 0.6


@dataclass(frozen=True)
class EnerLossOptions:
    """E-NER's loss options (see `ener_loss`)."""
    annealing_step: float = 100.0  # KL and uncertainty terms weighted by min(1, epoch / this)
    etrans: str = "exp"  # evidence = etrans(span scores), one of ETRANS
    neg_weight: float = NEG_SPAN_WEIGHT  # weight of spans that are not gold entities
    with_iw: bool = True  # uncertainty-weighted digamma term
    with_kl: bool = True  # KL to the uniform Dirichlet on non-target evidence
    with_uc: bool = True  # uncertainty-guided term


def evidence(scores: torch.Tensor, etrans: str = "exp") -> torch.Tensor:
    """Non-negative evidence from span scores (E-NER's evidence transforms)."""
    if etrans == "exp":
        # exp overflows float32 past ~88; the clamp only bites on absurd scores.
        return torch.exp(scores.clamp(max=60.0))
    if etrans == "softplus":
        return F.softplus(scores)
    if etrans == "relu":
        return F.relu(scores)
    raise ValueError(f"unknown evidence transform {etrans!r} (choose from {', '.join(ETRANS)})")


def _span_weights(labels, mask, neg_weight):
    return torch.where(labels > 0, 1.0, neg_weight) * mask


def span_cross_entropy(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                       neg_weight: float = NEG_SPAN_WEIGHT) -> torch.Tensor:
    """SpanNER: softmax cross-entropy, weighted per span, averaged over real spans."""
    loss = F.cross_entropy(scores.flatten(0, 1).float(), labels.flatten(), reduction="none").view_as(labels)
    return (loss * _span_weights(labels, mask, neg_weight)).sum() / mask.sum()


def _kl_to_uniform(alpha):
    """KL(Dir(alpha) || Dir(1, ..., 1)) over the last axis."""
    s = alpha.sum(-1)
    k = alpha.shape[-1]
    return (torch.lgamma(s) - torch.lgamma(alpha).sum(-1) - torch.lgamma(torch.tensor(float(k), device=alpha.device))
            + ((alpha - 1) * (torch.digamma(alpha) - torch.digamma(s).unsqueeze(-1))).sum(-1))


def ener_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, epoch: int,
              options: EnerLossOptions = EnerLossOptions()) -> torch.Tensor:
    """E-NER's evidential loss, summed over real spans as in the paper's code:

    A = sum_k (1 - b_k)^iw * y_k * (digamma(S) - digamma(alpha_k))   (b = e / S, the belief)
    B = KL(Dir(alpha~) || Dir(1)) with alpha~ = e * (1 - y) + 1        (evidence of wrong labels)
    C = (1 - [argmax = y]) * log(K / S)                                (uncertain when wrong)
    loss = A + lambda_t * B - lambda_t * C,  lambda_t = min(1, epoch / annealing_step)
    """
    o = options
    e = evidence(scores.float(), o.etrans)
    alpha = e + 1
    strength = alpha.sum(-1, keepdim=True)
    y = F.one_hot(labels, alpha.shape[-1]).float()
    weight = 1 - e / strength if o.with_iw else 1.0
    loss = (weight * y * (torch.digamma(strength) - torch.digamma(alpha))).sum(-1)
    anneal = min(1.0, epoch / o.annealing_step)
    if o.with_kl:
        loss = loss + anneal * _kl_to_uniform(e * (1 - y) + 1)
    if o.with_uc:
        wrong = (alpha.argmax(-1) != labels).float()
        loss = loss - anneal * wrong * torch.log(alpha.shape[-1] / strength.squeeze(-1) + 1e-20)
    return (loss * _span_weights(labels, mask, o.neg_weight)).sum()
