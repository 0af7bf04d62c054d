import itertools
import math

import pytest
import torch
from scipy.special import digamma

from models.losses import ETRANS, EnerLossOptions, ener_loss, evidence, span_cross_entropy

# One sentence, 3 spans (the last one padding), K = 3 labels. Span 0 is gold "O" but its
# evidence favours label 2 (wrong); span 1 is gold label 2 and predicted right.
SCORES = [[0.5, -0.2, 1.0], [-1.0, 0.1, 2.0], [9.0, 9.0, -9.0]]
LABELS = [0, 2, 1]
MASK = [1, 1, 0]
NEG = 0.6
TRANSFORMS = {"exp": math.exp, "softplus": lambda x: math.log1p(math.exp(x)), "relu": lambda x: max(x, 0.0)}


def ener_by_hand(epoch, annealing_step, iw, kl, uc, etrans="exp"):
    """E-NER's loss written out per span with scalar math."""
    total = 0.0
    for scores, y, real in zip(SCORES, LABELS, MASK):
        if not real:
            continue
        k = len(scores)
        e = [TRANSFORMS[etrans](s) for s in scores]
        alpha = [x + 1 for x in e]
        strength = sum(alpha)
        a_term = (1 - e[y] / strength if iw else 1.0) * (digamma(strength) - digamma(alpha[y]))
        lam = min(1.0, epoch / annealing_step)
        # KL(Dir(alpha~) || Dir(1,...,1)) with the target's evidence removed
        at = [1.0 if j == y else alpha[j] for j in range(k)]
        st = sum(at)
        kl_term = (math.lgamma(st) - sum(math.lgamma(a) for a in at) - math.lgamma(k)
                   + sum((a - 1) * (digamma(a) - digamma(st)) for a in at))
        wrong = max(range(k), key=lambda j: alpha[j]) != y
        uc_term = math.log(k / strength) if wrong else 0.0
        loss = a_term + (lam * kl_term if kl else 0.0) - (lam * uc_term if uc else 0.0)
        total += loss * (1.0 if y > 0 else NEG)
    return total


def tensors():
    return torch.tensor([SCORES]), torch.tensor([LABELS]), torch.tensor([MASK], dtype=torch.bool)


@pytest.mark.parametrize("epoch", [0, 30, 100, 250])
@pytest.mark.parametrize("iw, kl, uc", list(itertools.product([True, False], repeat=3)))
def test_ener_loss_by_hand(epoch, iw, kl, uc):
    options = EnerLossOptions(annealing_step=100.0, etrans="exp", neg_weight=NEG, with_iw=iw, with_kl=kl, with_uc=uc)
    got = ener_loss(*tensors(), epoch, options)
    assert got.item() == pytest.approx(ener_by_hand(epoch, 100.0, iw, kl, uc), rel=1e-5)


@pytest.mark.parametrize("etrans", ETRANS)
def test_ener_loss_evidence_transforms(etrans):
    got = ener_loss(*tensors(), 5, EnerLossOptions(annealing_step=10.0, etrans=etrans, neg_weight=NEG))
    assert got.item() == pytest.approx(ener_by_hand(5, 10.0, True, True, True, etrans), rel=1e-5)


def test_ener_terms_switch_on_with_annealing():
    # At epoch 0 the KL and uncertainty terms weigh nothing; later they do.
    base = ener_loss(*tensors(), 0, EnerLossOptions(with_kl=False, with_uc=False))
    assert ener_loss(*tensors(), 0).item() == pytest.approx(base.item())
    assert ener_loss(*tensors(), 100).item() != pytest.approx(base.item())


def test_ener_loss_gradient_is_finite_for_huge_scores():
    scores = torch.tensor([[[500.0, -500.0, 0.0]]], requires_grad=True)
    loss = ener_loss(scores, torch.tensor([[1]]), torch.tensor([[True]]), 100)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(scores.grad).all()


def test_span_cross_entropy_by_hand():
    total = 0.0
    for scores, y, real in zip(SCORES, LABELS, MASK):
        if real:
            nll = math.log(sum(math.exp(s) for s in scores)) - scores[y]
            total += nll * (1.0 if y > 0 else NEG)
    expected = total / sum(MASK)  # weighted, averaged over real spans
    assert span_cross_entropy(*tensors(), neg_weight=NEG).item() == pytest.approx(expected, rel=1e-6)


def test_neg_weight_scales_only_non_entity_spans():
    scores, labels, mask = tensors()
    full = span_cross_entropy(scores, labels, mask, neg_weight=1.0)
    none = span_cross_entropy(scores, labels, mask, neg_weight=0.0)
    half = span_cross_entropy(scores, labels, mask, neg_weight=0.5)
    assert half.item() == pytest.approx((full.item() + none.item()) / 2)
    assert none.item() > 0  # span 1 is an entity


def test_evidence_transforms():
    x = torch.tensor([-2.0, 0.0, 1.5, 100.0])
    assert torch.allclose(evidence(x, "relu"), torch.tensor([0.0, 0.0, 1.5, 100.0]))
    assert torch.allclose(evidence(x, "softplus"), torch.tensor([math.log1p(math.exp(v)) for v in x.tolist()]))
    exp = evidence(x, "exp")
    assert torch.allclose(exp[:3], torch.exp(x[:3])) and exp[3] == pytest.approx(math.exp(60), rel=1e-5)
    for etrans in ETRANS:
        assert (evidence(x, etrans) >= 0).all()
    with pytest.raises(ValueError, match="unknown evidence transform 'softmax'"):
        evidence(x, "softmax")
