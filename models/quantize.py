"""Optional int8 inference on the CPU: torch's dynamic quantization (int8 weights, activations
quantized per call) of the LSTM and the linear layers of a loaded model, for tagging only.

`quantize_model(model, "int8")` returns a quantized copy; the model given is left as it was. What
is quantized: the BiLSTM (GloVe encoder) or every linear layer of a BERT encoder; the per-word
projection of the encoder states into the span MLP's start and end terms (the biggest matrix
product of tagging, `SpanNER._packed_terms`); the MLP's output layer. The morphology, width and
length terms stay float (tiny tables, and their integer counts would spoil a shared activation
scale). Its F1 and AUROC are measured, not assumed: docs/speed.md.

local_inference.py's hook (one line after `load_checkpoint`, with a `--quantize` flag kept in
TagSettings): `model = quantize_model(model, settings.quantize)`. Until it is there,
`patched_loading` gives the same hook from outside (the speed bench uses it).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any, Iterator, Optional

import torch
from torch import nn
from torch.nn import functional as F

from models.encoders import GloveEncoder
from models.span_ner import SpanNER

QUANTIZE = ("none", "int8")


def _dynamic(module: nn.Module, types: set) -> nn.Module:
    """`module` dynamically quantized (a module of one of `types` itself included: quantize_dynamic
    swaps children only, so it gets a parent for the call)."""
    with warnings.catch_warnings():  # torch deprecates eager-mode quantization in favour of torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(nn.Sequential(module), types, dtype=torch.qint8)[0]


class Int8SpanNER(SpanNER):
    """A SpanNER whose per-word start and end terms come from one int8 projection of the
    encoder states (`word_projection`: [start ; end] weights), for `grid_scores`. Built by
    `quantize_model` only."""

    word_projection: nn.Module

    def _packed_terms(self, batch, words):
        h_start, h_end = self.encoder(batch)
        *_, w_width, w_len, w_morph = self.classifier.hidden.weight.split(self.dims, dim=1)
        rows = self.morph_emb.weight @ w_morph.T  # [M + 1, D]
        counts = F.pad(F.one_hot(batch["morph"], rows.shape[0]).cumsum(1), (0, 0, 1, 0)).to(rows.dtype)
        before, through = counts[:, :-1][words], counts[:, 1:][words]
        d = rows.shape[1]
        both = self.word_projection(h_start[words])
        start, end = both[:, :d], both[:, d:]
        if h_start is not h_end:  # BERT: the end term from the word's last subword
            end = self.word_projection(h_end[words])[:, d:]
        start_term = start - before @ rows + self.classifier.hidden.bias
        end_term = end + through @ rows
        return start_term, end_term, self._pair_table(w_width, w_len)


def quantize_model(model: SpanNER, mode: Optional[str] = "int8") -> SpanNER:
    """`model` itself for mode None / "none"; for "int8", a dynamically quantized copy for CPU
    inference (eval mode; `grid_scores` and `forward` both work, training does not)."""
    if mode in (None, "none"):
        return model
    if mode != "int8":
        raise ValueError(f"unknown quantization {mode!r} (one of {', '.join(QUANTIZE)})")
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 dynamic quantization runs on the CPU: load the model with --device cpu")
    q = copy.deepcopy(model).eval()
    if isinstance(q.encoder, GloveEncoder):
        q.encoder.lstm = _dynamic(q.encoder.lstm, {nn.LSTM})
    else:
        q.encoder = _dynamic(q.encoder, {nn.Linear})
    h = q.dims[0]
    w_start, w_end = q.classifier.hidden.weight[:, :h], q.classifier.hidden.weight[:, h:2 * h]
    projection = nn.Linear(h, 2 * w_start.shape[0], bias=False)
    with torch.no_grad():
        projection.weight.copy_(torch.cat([w_start, w_end]))
    q.word_projection = _dynamic(projection, {nn.Linear})
    q.classifier.output = _dynamic(q.classifier.output, {nn.Linear})
    q.__class__ = Int8SpanNER
    return q


@contextlib.contextmanager
def patched_loading(module: Any, mode: Optional[str]) -> Iterator[None]:  # a module with load_checkpoint
    """Within the block, `module.load_checkpoint` (e.g. local_inference's) returns the model
    quantized by `quantize_model(model, mode)`, as `local_inference.py --quantize` does."""
    if mode in (None, "none"):
        yield
        return
    load = module.load_checkpoint

    def quantized_load(*args: Any, **kwargs: Any) -> tuple:
        model, featurizer, config = load(*args, **kwargs)
        return quantize_model(model, mode), featurizer, config

    module.load_checkpoint = quantized_load
    try:
        yield
    finally:
        module.load_checkpoint = load
