"""SpanNER: score every enumerated span from its endpoint states and span features.

span = [h_start ; h_end] (combination "x,y") + width embedding (encoder positions,
bucketed) + length embedding (words, ReLU) + summed morphology embedding, then a two-layer
MLP (hidden = input dim, GELU, dropout) gives one score per label. SpanNER reads the
scores as softmax logits, E-NER as evidence (see models/losses.py).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from dataloaders.spans import MORPHS


def _gather(h, idx):
    """h [B, W, D] at word positions idx [B, S] -> [B, S, D] (as one row lookup, which is
    faster than `gather` with an expanded index)."""
    b, w, d = h.shape
    flat = idx + torch.arange(b, device=idx.device).unsqueeze(1) * w
    return h.reshape(b * w, d).index_select(0, flat.flatten()).view(*idx.shape, d)


# Old checkpoints numbered the classifier's layers (nn.Sequential without names).
OLD_CLASSIFIER_KEYS = {"classifier.0.": "classifier.hidden.", "classifier.3.": "classifier.output."}


def upgrade_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with the classifier's numbered keys (classifier.0.weight, ...) renamed."""
    def new_key(key: str) -> str:
        for old, new in OLD_CLASSIFIER_KEYS.items():
            if key.startswith(old):
                return new + key[len(old):]
        return key

    return {new_key(k): v for k, v in state.items()}


class SpanNER(nn.Module):
    def __init__(self, encoder, n_labels, max_span_len, width_dim, len_dim, morph_dim, dropout):
        super().__init__()
        self.encoder = encoder
        self.width_emb = nn.Embedding(max_span_len, width_dim)
        self.len_emb = nn.Embedding(max_span_len + 1, len_dim, padding_idx=0)
        self.morph_emb = nn.Embedding(len(MORPHS) + 1, morph_dim, padding_idx=0)
        self.dims = [encoder.hidden_size, encoder.hidden_size, width_dim, len_dim, morph_dim]
        dim = sum(self.dims)
        self.classifier = nn.Sequential(OrderedDict(hidden=nn.Linear(dim, dim), activation=nn.GELU(),
                                                    dropout=nn.Dropout(dropout), output=nn.Linear(dim, n_labels)))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores [batch, spans, labels] for `batch["spans"]` [batch, spans, 2] (word indices).

        The first MLP layer applied to the concatenated span vector equals the sum of its
        column blocks applied to each part. So each part is projected where it is cheap (per
        word, or per embedding row) and the projections are added per span: the same function
        as the paper's, with the big matrix product done ~5x fewer times.
        """
        h_start, h_end = self.encoder(batch)
        w_start, w_end, w_width, w_len, w_morph = self.classifier.hidden.weight.split(self.dims, dim=1)
        # Morphology summed over a span [s, e] is P[e + 1] - P[s], P the prefix sum of the words'
        # projected morphology; so it folds into per-word start and end terms.
        morph = F.pad((self.morph_emb.weight @ w_morph.T)[batch["morph"]].cumsum(1), (0, 0, 1, 0))
        start_term = h_start @ w_start.T - morph[:, :-1] + self.classifier.hidden.bias
        end_term = h_end @ w_end.T + morph[:, 1:]
        # Width and length: one table over the pairs of (width bucket, length).
        n_len = self.len_emb.num_embeddings
        pair_table = ((self.width_emb.weight @ w_width.T).unsqueeze(1)
                      + (F.relu(self.len_emb.weight) @ w_len.T).unsqueeze(0)).flatten(0, 1)
        hidden = _gather(start_term, batch["spans"][..., 0])
        hidden += _gather(end_term, batch["spans"][..., 1])  # in place: no third [B, S, D] copy
        hidden += pair_table[batch["span_width"] * n_len + batch["span_len"]]
        c = self.classifier
        return c.output(c.dropout(c.activation(hidden)))
