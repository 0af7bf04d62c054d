"""Run a span model over a dataset: per sentence, its spans with label probabilities and
uncertainties, decoded into entities (and LLM candidates) by `inference.local.decode`.

Inference reads each batch on the (start, offset) grid (`grid_batch`, `SpanNER.grid_scores`):
the same scores as the model's forward over the span list, without per-span Python or gathers.
MC dropout keeps the forward over the span list (`span_scores`), the path training takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from dataloaders.dataset import BucketBatchSampler, make_loader
from dataloaders.features import pad
from dataloaders.spans import morph_id, width_bucket
from inference.local.decode import decode_sentence
from inference.local.uncertainty import LEARNED, span_probabilities
from utils.errors import ConfigError

if TYPE_CHECKING:
    from dataloaders.dataset import SpanDataset
    from models.config import ModelConfig
    from models.span_ner import SpanNER

    Device = Union[str, torch.device]
    Scored = tuple[int, list[tuple[int, int]], torch.Tensor, torch.Tensor]  # sentence index, spans, probs, uncertainty
    Batch = tuple[list[int], list[int], torch.Tensor, torch.Tensor]  # sentence indices, spans each, probs, uncertainty
    Outputs = list[tuple[list[tuple[int, int]], np.ndarray, np.ndarray]]  # per sentence: spans, probs, uncertainty


def default_uncertainty(config: ModelConfig) -> str:
    return "evidential" if config.is_ener else "confidence"


def check_uncertainty(config: ModelConfig, uncertainty_type: Optional[str] = None) -> str:
    """The uncertainty method to use (the checkpoint's default when None), or a clear error."""
    uncertainty_type = uncertainty_type or default_uncertainty(config)
    if uncertainty_type == LEARNED:  # needs the checkpoint's error predictor: see inference/local/learned/rescoring.py
        return uncertainty_type
    if uncertainty_type == "evidential" and not config.is_ener:
        raise ConfigError("evidential uncertainty needs an E-NER checkpoint (train_ener.py); this SpanNER "
                         "checkpoint was trained with softmax cross-entropy: use confidence, entropy or mc_dropout")
    return uncertainty_type


def span_scores(model: SpanNER, batch: dict[str, torch.Tensor], uncertainty_type: Optional[str],
                mc_samples: int) -> torch.Tensor:
    """The model's span scores [B, n, K]; under mc_dropout, [mc_samples, B, n, K] from as many
    passes with dropout on."""
    if uncertainty_type != "mc_dropout":
        return model(batch)
    model.train()  # dropout on: each pass is one sample
    try:
        return torch.stack([model(batch) for _ in range(mc_samples)])
    finally:
        model.eval()


def batch_outputs(dataset: SpanDataset, batch: dict[str, torch.Tensor], scores: torch.Tensor, uncertainty_type: str,
                  etrans: str = "exp") -> Iterator[Scored]:
    """(sentence index, spans, probs [n, K], uncertainty [n]) for each sentence of a batch."""
    probs, unc = span_probabilities(scores, uncertainty_type, etrans)
    for row, index in enumerate(batch["index"].tolist()):
        n = len(dataset.spans[index])
        yield index, dataset.spans[index], probs[..., row, :n, :].cpu(), unc[..., row, :n].cpu()


def to_device(batch: dict[str, torch.Tensor], device: Device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def grid_batch(dataset: SpanDataset, indices: list[int], max_span_len: int) -> dict[str, torch.Tensor]:
    """The batch `SpanNER.grid_scores` reads for `dataset`'s sentences `indices`: the encoder's
    inputs, "morph" [B, W], and per (start s, offset k) entry [B, W, max_span_len] "span_valid",
    "span_width" (bucketed encoder positions, as `SpanDataset` computes them) and "span_len";
    "index" [B]. The valid entries, row by row, are each sentence's `dataset.spans` in order."""
    feats = [dataset.feats[i] for i in indices]
    batch = dataset.featurizer.collate(feats)
    n_sub = pad([f["n_sub"] for f in feats])  # encoder positions per word, 0 past the end
    lengths = (n_sub > 0).sum(1)
    n_words = n_sub.shape[1]
    start = torch.arange(n_words).unsqueeze(1)
    offset = torch.arange(max_span_len)
    end = start + offset  # [W, L]
    cum = torch.nn.functional.pad(n_sub.cumsum(1), (1, 0))  # cum[:, i]: positions before word i
    width = (cum[:, (end + 1).clamp(max=n_words)] - 1 - cum[:, start]).clamp(min=0)
    buckets = torch.tensor([width_bucket(w, max_span_len) for w in range(int(width.max()) + 1)])
    batch.update(index=torch.tensor(indices), morph=pad([[morph_id(w) for w in dataset.sentences[i].words]
                                                          for i in indices]),
                 span_valid=end < lengths.view(-1, 1, 1), span_width=buckets[width],
                 span_len=(offset + 1).expand(len(indices), n_words, -1))
    return batch


def grid_outputs(model: SpanNER, dataset: SpanDataset, batch: dict[str, torch.Tensor],
                 uncertainty_types: Sequence[str], etrans: str = "exp") -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[int]]:
    """{type: (probs [N, K], uncertainty [N])} over the batch's valid grid entries (sentence by
    sentence, each in `dataset.spans` order), and the spans per sentence."""
    scores = model.grid_scores(batch)
    counts = batch["span_valid"].flatten(1).sum(1).tolist()
    return {t: span_probabilities(scores, t, etrans) for t in uncertainty_types}, counts


def length_batches(dataset: SpanDataset, batch_size: int) -> list[list[int]]:
    """Sentence indices in batches of similar length (sorted by length), as inference reads them."""
    return list(BucketBatchSampler([len(s.words) for s in dataset.sentences], batch_size, shuffle=False))


def split_outputs(dataset: SpanDataset, indices: list[int], counts: list[int], probs: torch.Tensor,
                  unc: torch.Tensor) -> Iterator[Scored]:
    """(sentence index, spans, probs [n, K], uncertainty [n]) per sentence of one grid batch."""
    for index, p, u in zip(indices, probs.split(counts), unc.split(counts)):
        yield index, dataset.spans[index], p, u


@torch.inference_mode()  # no autograd bookkeeping at all (lighter than no_grad)
def predict(model: SpanNER, dataset: SpanDataset, config: ModelConfig, uncertainty_type: Optional[str] = None, *,
            mc_samples: int, batch_size: int, device: Device = "cpu", progress: bool = True) -> Iterator[Scored]:
    """Yield (index, spans, probs, uncertainty) for every sentence, batched by length
    (so not in input order). `mc_samples` and `batch_size`: as `TagSettings` holds them."""
    for indices, counts, probs, unc in predict_batches(model, dataset, config, uncertainty_type, mc_samples=mc_samples,
                                                       batch_size=batch_size, device=device, progress=progress):
        yield from split_outputs(dataset, indices, counts, probs, unc)


@torch.inference_mode()
def predict_batches(model: SpanNER, dataset: SpanDataset, config: ModelConfig, uncertainty_type: Optional[str] = None,
                    *, mc_samples: int, batch_size: int, device: Device = "cpu", progress: bool = True) -> Iterator[Batch]:
    """`predict` a batch at a time: (sentence indices, their numbers of spans, probs [N, K],
    uncertainty [N] on the CPU), the sentences' spans end to end, each in `dataset.spans` order."""
    uncertainty_type = check_uncertainty(config, uncertainty_type)
    if uncertainty_type == "mc_dropout":  # the forward over the span list, as training runs it
        loader = make_loader(dataset, batch_size, shuffle=False)
        for batch in tqdm(loader, desc="local inference", unit="batch", disable=not progress):
            batch = to_device(batch, device)
            scores = span_scores(model, batch, uncertainty_type, mc_samples)
            scored = list(batch_outputs(dataset, batch, scores, uncertainty_type, config.etrans_func))
            yield ([index for index, *_ in scored], [len(spans) for _, spans, *_ in scored],
                   torch.cat([p for *_, p, _ in scored]), torch.cat([u for *_, u in scored]))
        return
    for indices in tqdm(length_batches(dataset, batch_size), desc="local inference", unit="batch",
                        disable=not progress):
        batch = to_device(grid_batch(dataset, indices, config.max_span_len), device)
        outputs, counts = grid_outputs(model, dataset, batch, [uncertainty_type], config.etrans_func)
        probs, unc = (x.cpu() for x in outputs[uncertainty_type])
        yield indices, counts, probs, unc


@torch.inference_mode()
def outputs_by_type(model: SpanNER, config: ModelConfig, dataset: SpanDataset, uncertainty_types: Sequence[str],
                    batch_size: int, device: Device = "cpu") -> dict[str, Outputs]:
    """{type: per sentence, in order, (spans, probs [n, K], uncertainty [n]) as float64 numpy
    arrays}, from one pass of the model scored under several uncertainty types."""
    out: dict[str, dict[int, tuple[list[tuple[int, int]], np.ndarray, np.ndarray]]] = {
        unc_type: {} for unc_type in uncertainty_types}  # {type: {sentence index: its outputs}}
    for indices in length_batches(dataset, batch_size):
        batch = to_device(grid_batch(dataset, indices, config.max_span_len), device)
        outputs, counts = grid_outputs(model, dataset, batch, uncertainty_types, config.etrans_func)
        for unc_type, (probs, unc) in outputs.items():
            for index, spans, p, u in split_outputs(dataset, indices, counts, probs.cpu(), unc.cpu()):
                out[unc_type][index] = (spans, p.numpy().astype(np.float64), u.numpy().astype(np.float64))
    return {unc_type: [by_index[i] for i in range(len(dataset))] for unc_type, by_index in out.items()}


def dev_counter(dataset: SpanDataset,
                config: ModelConfig) -> Callable[[dict[str, torch.Tensor], torch.Tensor], tuple[int, int, int]]:
    """`dev_counts(batch, scores) -> (tp, n_pred, n_gold)` for training's dev F1, decoded
    exactly as local_inference.py decodes."""
    labels, uncertainty_type = config.labels, default_uncertainty(config)

    def dev_counts(batch: dict[str, torch.Tensor], scores: torch.Tensor) -> tuple[int, int, int]:
        tp = n_pred = n_gold = 0
        for index, spans, probs, unc in batch_outputs(dataset, batch, scores.detach(), uncertainty_type,
                                                             config.etrans_func):
            pred = {(*r["span"], r["pred"]) for r in decode_sentence(spans, probs, unc, labels)}
            gold = set(dataset.sentences[index].entities or [])
            tp, n_pred, n_gold = tp + len(pred & gold), n_pred + len(pred), n_gold + len(gold)
        return tp, n_pred, n_gold

    return dev_counts
