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
    def __init__(self, encoder, n_labels, max_span_len, width_dim, len_dim, morph_dim, dropout, span_hidden=None):
        """`span_hidden`: the MLP's hidden width (None: the span vector's width, the paper's)."""
        super().__init__()
        self.encoder = encoder
        self.width_emb = nn.Embedding(max_span_len, width_dim)
        self.len_emb = nn.Embedding(max_span_len + 1, len_dim, padding_idx=0)
        self.morph_emb = nn.Embedding(len(MORPHS) + 1, morph_dim, padding_idx=0)
        self.dims = [encoder.hidden_size, encoder.hidden_size, width_dim, len_dim, morph_dim]
        dim = sum(self.dims)
        hidden = span_hidden or dim
        self.classifier = nn.Sequential(OrderedDict(hidden=nn.Linear(dim, hidden), activation=nn.GELU(),
                                                    dropout=nn.Dropout(dropout), output=nn.Linear(hidden, n_labels)))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scores [batch, spans, labels] for `batch["spans"]` [batch, spans, 2] (word indices).

        The first MLP layer applied to the concatenated span vector equals the sum of its
        column blocks applied to each part. So each part is projected where it is cheap (per
        word, or per embedding row) and the projections are added per span: the same function
        as the paper's, with the big matrix product done ~5x fewer times.
        """
        start_term, end_term, pair_table = self._terms(batch)
        hidden = _gather(start_term, batch["spans"][..., 0])
        hidden += _gather(end_term, batch["spans"][..., 1])  # in place: no third [B, S, D] copy
        hidden += pair_table[self._pair_index(batch)]
        c = self.classifier
        return c.output(c.dropout(c.activation(hidden)))

    def _pair_table(self, w_width, w_len):
        """Width and length: one table [P, D] over the pairs of (width bucket, length)."""
        return ((self.width_emb.weight @ w_width.T).unsqueeze(1)
                + (F.relu(self.len_emb.weight) @ w_len.T).unsqueeze(0)).flatten(0, 1)

    def _terms(self, batch):
        """Per-word start and end terms [B, W, D] of the first MLP layer, and its pair table."""
        h_start, h_end = self.encoder(batch)
        w_start, w_end, w_width, w_len, w_morph = self.classifier.hidden.weight.split(self.dims, dim=1)
        # Morphology summed over a span [s, e] is P[e + 1] - P[s], P the prefix sum of the words'
        # projected morphology; so it folds into per-word start and end terms.
        morph = F.pad((self.morph_emb.weight @ w_morph.T)[batch["morph"]].cumsum(1), (0, 0, 1, 0))
        start_term = h_start @ w_start.T - morph[:, :-1] + self.classifier.hidden.bias
        end_term = h_end @ w_end.T + morph[:, 1:]
        return start_term, end_term, self._pair_table(w_width, w_len)

    def _packed_terms(self, batch, words):
        """`_terms` for the batch's words packed end to end (`words` [B, W] marks them), [N, D]
        each, from fewer passes: the morphology prefix sum P is taken over the words'
        per-category counts C (P = C @ rows), so [h ; C[:-1] ; C[1:]] times one matrix gives both
        terms, bias and morphology included (one product where the encoder gives one state per
        word, as GloVe's)."""
        h_start, h_end = self.encoder(batch)
        w_start, w_end, w_width, w_len, w_morph = self.classifier.hidden.weight.split(self.dims, dim=1)
        rows = self.morph_emb.weight @ w_morph.T  # [M + 1, D]
        counts = F.pad(F.one_hot(batch["morph"], rows.shape[0]).cumsum(1), (0, 0, 1, 0)).to(h_start.dtype)
        before, through = counts[:, :-1][words], counts[:, 1:][words]
        bias, zeros = self.classifier.hidden.bias, torch.zeros_like(rows.T)
        if h_start is h_end:
            weight = torch.cat([torch.cat([w_start, -rows.T, zeros], 1), torch.cat([w_end, zeros, rows.T], 1)])
            both = F.linear(torch.cat([h_start[words], before, through], -1), weight,
                            torch.cat([bias, torch.zeros_like(bias)]))
            start_term, end_term = both.split(bias.shape[0], -1)
        else:
            start_term = F.linear(torch.cat([h_start[words], before], -1), torch.cat([w_start, -rows.T], 1), bias)
            end_term = F.linear(torch.cat([h_end[words], through], -1), torch.cat([w_end, rows.T], 1))
        return start_term, end_term, self._pair_table(w_width, w_len)

    def _pair_index(self, batch):
        return batch["span_width"] * self.len_emb.num_embeddings + batch["span_len"]

    def grid_scores(self, batch: dict, rows: int = 256) -> torch.Tensor:
        """`forward`'s scores (up to float rounding) for the spans of the (start, offset) grid that
        `batch["span_valid"]` [B, W, L] marks, [n_valid, K] in its row-major order: sentence by
        sentence, span (s, s + k) before (s, s + k + 1) before (s + 1, s + 1). For inference (no
        dropout).

        `batch` holds the encoder's inputs, "morph" [B, W], and per grid entry "span_valid" (s + k
        within the sentence), "span_width" and "span_len". The batch's words are packed end to
        end (no padding), and for each offset k the hidden layer of every span (r, r + k) is
        start_term[r] + end_term[r + k] + the pair row of k: sums over contiguous rows instead of
        `forward`'s per-span gathers, `rows` rows at a time so each block stays in cache. Spans
        that cross into the next sentence are computed and dropped. Where the pair row is not
        one per offset (BERT widths count subwords), it is looked up per span."""
        if self.training:
            raise RuntimeError("grid_scores is for inference: call model.eval() first")
        words = batch["span_valid"][..., 0]
        start_term, end_term, pair_table = self._packed_terms(batch, words)
        valid, pair = batch["span_valid"][words], self._pair_index(batch)[words]  # [N, L]
        n_words, n_off = valid.shape
        masked = pair.masked_fill(~valid, -1)
        per_offset = masked.amax(dim=0)
        regular = bool(((masked == per_offset) | ~valid).all())
        per_offset = per_offset.clamp(min=0).tolist()
        c = self.classifier
        out = start_term.new_empty(n_words, n_off, c.output.out_features)
        for lo in range(0, n_words, rows):
            for k in range(n_off):
                hi = min(lo + rows, n_words - k)
                if hi <= lo:
                    break
                hidden = start_term[lo:hi] + end_term[lo + k:hi + k]
                hidden += pair_table[per_offset[k]] if regular else pair_table[pair[lo:hi, k].clamp(min=0)]
                out[lo:hi, k] = c.output(c.activation(hidden))
        return out[valid]
