"""SpanNER: score every enumerated span from its endpoint states and span features.

span = [h_start ; h_end] (combination "x,y") + width embedding (encoder positions,
bucketed) + length embedding (words) + summed morphology embedding, then a two-layer
MLP (hidden = input dim, GELU, dropout) gives one score per label. SpanNER reads the
scores as softmax logits, E-NER as evidence (see models/losses.py).
"""
import torch
from torch import nn
from torch.nn import functional as F

from dataloaders.spans import MORPHS


class SpanNER(nn.Module):
    def __init__(self, encoder, n_labels, max_span_len=5, width_dim=60, len_dim=100, morph_dim=100, dropout=0.2):
        super().__init__()
        self.encoder = encoder
        self.width_emb = nn.Embedding(max_span_len, width_dim)
        self.len_emb = nn.Embedding(max_span_len + 1, len_dim, padding_idx=0)
        self.morph_emb = nn.Embedding(len(MORPHS) + 1, morph_dim, padding_idx=0)
        dim = 2 * encoder.hidden_size + width_dim + len_dim + morph_dim
        self.classifier = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, n_labels))

    def forward(self, batch):
        """Scores [batch, spans, labels] for `batch["spans"]` [batch, spans, 2] (word indices)."""
        h_start, h_end = self.encoder(batch)
        starts, ends = batch["spans"][..., 0], batch["spans"][..., 1]
        gather = lambda h, idx: h.gather(1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        # Morphology summed over each span's words, via a prefix sum over the sentence.
        morph = F.pad(self.morph_emb(batch["morph"]).cumsum(1), (0, 0, 1, 0))
        span_morph = gather(morph, ends + 1) - gather(morph, starts)
        rep = torch.cat([gather(h_start, starts), gather(h_end, ends), self.width_emb(batch["span_width"]),
                         F.relu(self.len_emb(batch["span_len"])), span_morph], -1)
        return self.classifier(rep)
