"""Run a span model over a dataset: per sentence, its spans with label probabilities and
uncertainties, decoded into entities (and LLM candidates) by `inference.local.decode`."""
import numpy as np
import torch
from tqdm import tqdm

from dataloaders.dataset import make_loader
from inference.local.decode import decode_sentence
from inference.local.uncertainty import LEARNED, span_probabilities


def default_uncertainty(config):
    return "evidential" if config.is_ener else "confidence"


def check_uncertainty(config, uncertainty_type=None):
    """The uncertainty method to use (the checkpoint's default when None), or a clear error."""
    uncertainty_type = uncertainty_type or default_uncertainty(config)
    if uncertainty_type == LEARNED:  # needs the checkpoint's error predictor: see inference/local/learned/rescoring.py
        return uncertainty_type
    if uncertainty_type == "evidential" and not config.is_ener:
        raise ValueError("evidential uncertainty needs an E-NER checkpoint (train_ener.py); this SpanNER "
                         "checkpoint was trained with softmax cross-entropy: use confidence, entropy or mc_dropout")
    return uncertainty_type


def span_scores(model, batch, uncertainty_type, mc_samples):
    """The model's span scores [B, n, K]; under mc_dropout, [mc_samples, B, n, K] from as many
    passes with dropout on."""
    if uncertainty_type != "mc_dropout":
        return model(batch)
    model.train()  # dropout on: each pass is one sample
    try:
        return torch.stack([model(batch) for _ in range(mc_samples)])
    finally:
        model.eval()


def batch_outputs(dataset, batch, scores, uncertainty_type, etrans="exp"):
    """(sentence index, spans, probs [n, K], uncertainty [n]) for each sentence of a batch."""
    probs, unc = span_probabilities(scores, uncertainty_type, etrans)
    for row, index in enumerate(batch["index"].tolist()):
        n = len(dataset.spans[index])
        yield index, dataset.spans[index], probs[..., row, :n, :].cpu(), unc[..., row, :n].cpu()


def to_device(batch, device):
    return {k: v.to(device) for k, v in batch.items()}


@torch.inference_mode()  # no autograd bookkeeping at all (lighter than no_grad)
def predict(model, dataset, config, uncertainty_type=None, *, mc_samples, batch_size, device="cpu",
            progress=True):
    """Yield (index, spans, probs, uncertainty) for every sentence, batched by length
    (so not in input order). `mc_samples` and `batch_size`: as `TagSettings` holds them."""
    uncertainty_type = check_uncertainty(config, uncertainty_type)
    loader = make_loader(dataset, batch_size, shuffle=False)
    for batch in tqdm(loader, desc="local inference", unit="batch", disable=not progress):
        batch = to_device(batch, device)
        scores = span_scores(model, batch, uncertainty_type, mc_samples)
        yield from batch_outputs(dataset, batch, scores, uncertainty_type, config.etrans_func)


@torch.inference_mode()
def outputs_by_type(model, config, dataset, uncertainty_types, batch_size, device="cpu"):
    """{type: per sentence, in order, (spans, probs [n, K], uncertainty [n]) as float64 numpy
    arrays}, from one pass of the model scored under several uncertainty types."""
    out = {unc_type: [None] * len(dataset) for unc_type in uncertainty_types}
    for batch in make_loader(dataset, batch_size, shuffle=False):
        batch = to_device(batch, device)
        scores = model(batch)
        for unc_type in uncertainty_types:
            for index, spans, probs, unc in batch_outputs(dataset, batch, scores, unc_type, config.etrans_func):
                out[unc_type][index] = (spans, probs.numpy().astype(np.float64), unc.numpy().astype(np.float64))
    return out


def dev_counter(dataset, config):
    """`dev_counts(batch, scores) -> (tp, n_pred, n_gold)` for training's dev F1, decoded
    exactly as local_inference.py decodes."""
    labels, uncertainty_type = config.labels, default_uncertainty(config)

    def dev_counts(batch, scores):
        tp = n_pred = n_gold = 0
        for index, spans, probs, unc in batch_outputs(dataset, batch, scores.detach(), uncertainty_type,
                                                             config.etrans_func):
            pred = {(*r["span"], r["pred"]) for r in decode_sentence(spans, probs, unc, labels)}
            gold = set(dataset.sentences[index].entities or [])
            tp, n_pred, n_gold = tp + len(pred & gold), n_pred + len(pred), n_gold + len(gold)
        return tp, n_pred, n_gold

    return dev_counts
