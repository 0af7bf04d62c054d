import math

import pytest
import torch

from inference.local.uncertainty import UNCERTAINTY_TYPES, evidence, span_probabilities

LN3 = math.log(3.0)
H_QUARTER = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # entropy of (1/4, 3/4) in nats


def close(a, b):
    assert torch.allclose(a, torch.as_tensor(b, dtype=torch.float32), atol=1e-5), (a, b)


def test_confidence_is_one_minus_max_softmax():
    probs, unc = span_probabilities(torch.tensor([[0.0, LN3], [0.0, 0.0]]), "confidence")
    close(probs, [[0.25, 0.75], [0.5, 0.5]])
    close(unc, [0.25, 0.5])


def test_entropy_is_normalised_by_log_k():
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0], [0.0, 100.0]])
    _, unc = span_probabilities(logits, "entropy")
    close(unc, [H_QUARTER / math.log(2), 1.0, 0.0])
    _, unc3 = span_probabilities(torch.zeros(1, 3), "entropy")  # uniform over K=3
    close(unc3, [1.0])


def test_mc_dropout_averages_the_passes():
    logits = torch.tensor([[[0.0, LN3]], [[LN3, 0.0]]])  # T=2 passes, 1 span, K=2
    probs, unc = span_probabilities(logits, "mc_dropout")
    assert probs.shape == (1, 2) and unc.shape == (1,)
    close(probs, [[0.5, 0.5]])
    close(unc, [0.5])


@pytest.mark.parametrize("etrans, logits, ev", [
    ("relu", [0.0, 2.0, -1.0], [0.0, 2.0, 0.0]),
    ("softplus", [0.0, 0.0, 0.0], [math.log(2)] * 3),
    ("exp", [0.0, math.log(2), 70.0], [1.0, 2.0, math.exp(60)]),  # clamped at 60 (float32 overflow)
])
def test_evidential(etrans, logits, ev):
    logits = torch.tensor([logits])
    close(evidence(logits, etrans), [ev])
    probs, unc = span_probabilities(logits, "evidential", etrans_func=etrans)
    alpha = torch.tensor(ev) + 1
    close(probs, [(alpha / alpha.sum()).tolist()])
    close(unc, [3 / alpha.sum().item()])


def test_evidential_hand_worked():
    # evidence (0, 2, 1) -> alpha (1, 3, 2), S = 6
    probs, unc = span_probabilities(torch.tensor([0.0, 2.0, 1.0]), "evidential", etrans_func="relu")
    close(probs, [1 / 6, 0.5, 1 / 3])
    close(unc, 0.5)


@pytest.mark.parametrize("kind", UNCERTAINTY_TYPES)
def test_shapes_range_and_dtype(kind):
    torch.manual_seed(0)
    shape = (4, 2, 7, 5) if kind == "mc_dropout" else (2, 7, 5)
    logits = (torch.randn(shape) * 5).half()
    probs, unc = span_probabilities(logits, kind)
    assert probs.shape == (2, 7, 5) and unc.shape == (2, 7)
    assert probs.dtype == unc.dtype == torch.float32 and probs.device == logits.device
    close(probs.sum(-1), torch.ones(2, 7))
    assert ((unc >= 0) & (unc <= 1 + 1e-6)).all()


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="uncertainty_type"):
        span_probabilities(torch.zeros(2, 3), "bayes")
    with pytest.raises(ValueError, match="evidence transform"):
        evidence(torch.zeros(2, 3), "square")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        span_probabilities(torch.zeros(3), "mc_dropout")
    with pytest.raises(TypeError, match="floating-point"):
        span_probabilities(torch.zeros(2, 3, dtype=torch.long), "confidence")
    with pytest.raises(ValueError, match="at least 2 labels"):
        span_probabilities(torch.zeros(2, 1), "entropy")
