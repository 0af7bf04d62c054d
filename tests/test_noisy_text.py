"""The GloVe encoder's opt-in noisy-text options (docs/noisy_text.md): `--noisy_words` and
`--context_encoder` (a frozen pretrained encoder's word states), checked against the
transformers model run directly, and through training, saving and loading a checkpoint."""
import os
import warnings

import torch
from safetensors.torch import load_file

from dataloaders.features import BertFeaturizer, GloveFeaturizer
from dataloaders.readers import read_dataset
from models.checkpoint import load_checkpoint
from models.config import ModelConfig
from models.encoders import FrozenContext
from tests.helpers import SAMPLE_DIR, train_recorded
from tests.conftest import TINY_GLOVE

WORDS = ["obama", "lakers", "#", "0"]


def test_noisy_words_looks_marked_words_up_without_the_mark():
    plain, noisy = GloveFeaturizer(WORDS, "abc"), GloveFeaturizer(WORDS, "abc", noisy_words=True)
    index = {w: i + 2 for i, w in enumerate(WORDS)}
    for word, expected in [("#Obama", index["obama"]), ("@LAKERS", index["lakers"]), ("##lakers", index["lakers"]),
                           ("#", index["#"]), ("#zzqx", 1), ("Obama", index["obama"])]:
        assert noisy.word_id(word) == expected, word
    assert plain.word_id("#Obama") == 1 and plain.word_id("Obama") == index["obama"]


def test_the_options_are_written_to_config_json_only_when_on(tmp_path):
    assert not {"noisy_words", "context_encoder", "context_layers"} & ModelConfig(encoder="glove").to_dict().keys()
    config = ModelConfig(encoder="glove", noisy_words=True, context_encoder="some-encoder", context_layers=2)
    assert config.to_dict()["context_encoder"] == "some-encoder" and config.to_dict()["context_layers"] == 2
    config.save(str(tmp_path / "config.json"))
    assert ModelConfig.load(str(tmp_path / "config.json")) == config


def test_frozen_context_gives_each_word_its_first_subwords_layer_mean(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    sentences = [["the", "cat", "sat", "unbelievably"], ["a", "dog"]]
    featurizer = BertFeaturizer(tokenizer, 128)
    batch = featurizer.collate(featurizer.encode_all(sentences))
    context = FrozenContext(tiny_bert_dir, layers=2)
    got = context(batch)
    assert not list(context.parameters()) and not context.state_dict()  # nothing trained or saved
    model = AutoModel.from_pretrained(tiny_bert_dir).eval()
    for i, words in enumerate(sentences):
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        mean = torch.stack(hidden[-2:]).mean(0)[0]
        firsts = [enc.word_ids(0).index(w) for w in range(len(words))]
        torch.testing.assert_close(got[i, :len(words)], mean[firsts], atol=1e-5, rtol=1e-4)
    calls = []
    context._frozen[0].register_forward_hook(lambda *a: calls.append(1))
    torch.testing.assert_close(context(batch), got)  # the second pass is read from the cache
    assert not calls


def test_a_context_model_trains_saves_without_the_frozen_weights_and_reloads(tiny_bert_dir, tmp_path):
    import train_ener

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = train_recorded(train_ener.main, ["--data_dir", SAMPLE_DIR, "--model_save_dir", str(tmp_path / "m"),
                                               *TINY_GLOVE, "--context_encoder", tiny_bert_dir, "--context_layers",
                                               "2", "--noisy_words", "--no_calibrate"])
    assert run.summary["best_dev_f1"] >= 0
    weights = load_file(os.path.join(run.path, "model.safetensors"))
    assert not [k for k in weights if "bert" in k or "frozen" in k]
    model, featurizer, config = load_checkpoint(run.path)
    assert config.context_encoder == tiny_bert_dir and config.context_layers == 2 and config.noisy_words
    from dataloaders.dataset import SpanDataset

    sentences = read_dataset(os.path.join(SAMPLE_DIR, "dev.txt"))[:8]
    live = SpanDataset(sentences, run.featurizer, config.labels, config.max_span_len)
    loaded = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    with torch.no_grad():
        torch.testing.assert_close(model(loaded.collate([loaded[i] for i in range(8)])),
                                   run.model(live.collate([live[i] for i in range(8)])))
