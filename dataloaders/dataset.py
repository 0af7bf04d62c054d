"""Sentences to span batches: every span up to `max_span_len` words, with its features and label."""

from __future__ import annotations

import random
import warnings
from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dataloaders.features import pad
from dataloaders.spans import enumerate_spans, morph_id, width_bucket


class SpanDataset(Dataset):
    def __init__(self, sentences, featurizer, labels, max_span_len, source="data"):
        self.sentences, self.featurizer, self.max_span_len = sentences, featurizer, max_span_len
        self.label_index = {label: i for i, label in enumerate(labels)}
        self.feats = featurizer.encode_all([s.words for s in sentences])
        self.spans = [enumerate_spans(len(s.words), max_span_len) for s in sentences]
        too_long = sum(e - s + 1 > max_span_len for sent in sentences for s, e, _ in (sent.entities or []))
        if too_long:
            warnings.warn(f"{source}: {too_long} gold entities are longer than max_spanLen={max_span_len} "
                          "words; the model cannot predict them (they count as missed)")

    def __len__(self):
        return len(self.sentences)

    def __getitem__(self, i):
        sent, feats, spans = self.sentences[i], self.feats[i], self.spans[i]
        gold = {(s, e): self.label_index[label] for s, e, label in (sent.entities or [])}
        n_sub = feats["n_sub"]
        cum = [0]
        for n in n_sub:
            cum.append(cum[-1] + n)
        return {"index": i, "feats": feats, "spans": spans,
                "labels": [gold.get(span, 0) for span in spans],
                "span_len": [e - s + 1 for s, e in spans],
                "span_width": [width_bucket(cum[e + 1] - 1 - cum[s], self.max_span_len) for s, e in spans],
                "morph": [morph_id(w) for w in sent.words]}

    def collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.featurizer.collate([it["feats"] for it in items])
        batch.update({"index": torch.tensor([it["index"] for it in items]),
                      "spans": pad([it["spans"] for it in items]),
                      "span_mask": pad([[1] * len(it["spans"]) for it in items]).bool(),
                      "labels": pad([it["labels"] for it in items]),
                      "span_len": pad([it["span_len"] for it in items]),
                      "span_width": pad([it["span_width"] for it in items]),
                      "morph": pad([it["morph"] for it in items])})
        return batch


class BucketBatchSampler(Sampler):
    """Batches of similar length (less padding, much faster on CPU), in random order.
    Without shuffle, sorted by length: the order inference uses.

    An epoch's batches depend on (seed, epoch) only: epoch e gets the e-th pass of one random
    generator seeded with `seed` (the passes before it are replayed), so a training resumed at
    epoch e sees the batches an uninterrupted run sees there. The epoch is `epoch_of()` when
    given (the trainer's current epoch, read when a pass starts), else `set_epoch`'s or the
    number of passes so far."""

    def __init__(self, lengths, batch_size, shuffle=True, seed=0, pool=50, epoch_of=None):
        self.lengths, self.batch_size, self.shuffle, self.pool = lengths, batch_size, shuffle, pool
        self.seed, self.epoch_of, self.epoch = seed, epoch_of, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pass(self, rng):
        """One epoch's batches, drawn from `rng`."""
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size * self.pool
        batches = []
        for p in range(0, len(order), size):
            chunk = sorted(order[p:p + size], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def __iter__(self):
        if not self.shuffle:
            order = sorted(range(len(self.lengths)), key=lambda i: self.lengths[i])
            yield from (order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size))
            return
        epoch = self.epoch_of() if self.epoch_of is not None else self.epoch
        self.epoch = epoch + 1
        rng = random.Random(self.seed)
        for _ in range(epoch):  # the earlier epochs' draws
            self._pass(rng)
        yield from self._pass(rng)

    def __len__(self):
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def make_loader(dataset: SpanDataset, batch_size: int, shuffle: bool, seed: int = 0, bucket: bool = True,
                epoch_of: Optional[Callable[[], int]] = None) -> DataLoader:
    """A DataLoader of span batches; bucketed by length unless `bucket` is off (`epoch_of`: see
    `BucketBatchSampler`)."""
    if bucket:
        lengths = [len(s.words) for s in dataset.sentences]
        sampler = BucketBatchSampler(lengths, batch_size, shuffle, seed, epoch_of=epoch_of)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=dataset.collate)
