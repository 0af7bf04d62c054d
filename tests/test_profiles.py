"""`--profile` (models/profiles.py) and int8 inference (models/quantize.py): a fast checkpoint
trains, tags, resumes and links (dry run) like a default one, its sizes stored in config.json;
a default model's config.json is the one written before profiles existed; an int8 copy loads,
tags through local_inference.py and scores close to its float model."""
import json
import os
import types
import warnings

import numpy as np
import pytest
import torch

import local_inference
import train_ener
from dataloaders.dataset import SpanDataset
from dataloaders.readers import read_dataset
from inference.local.dev_calibration import DevCalibration
from inference.local.predict import grid_batch, length_batches
from models.checkpoint import load_checkpoint
from models.config import PROFILE_FIELDS, ModelConfig
from models.profiles import PROFILES, parse_train_args
from models.quantize import Int8SpanNER, patched_loading, quantize_model
from models.training import add_ener_args, build_parser
from tests.helpers import SAMPLE_DIR, no_real_openai  # noqa: F401 (autouse fixture)
from utils.jsonl import read_jsonl

TEST_FILE = os.path.join(SAMPLE_DIR, "test.txt")
# tiny sizes: the fast profile's structure (one BiLSTM layer, a narrow span MLP, fewer char filters)
FAST = ["--profile", "fast", "--lstm_hidden", "16", "--span_hidden", "24", "--batch_size", "16"]


def parse(*flags):
    return parse_train_args(add_ener_args(build_parser("t")), ["--data_dir", SAMPLE_DIR, "--model_save_dir", "m",
                                                               *flags])


def train(path, *flags):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_ener.main(["--data_dir", SAMPLE_DIR, "--model_save_dir", str(path), "--encoder", "glove", *flags])


def infer(ckpt, save, *args):
    local_inference.main(["--inference_model", str(ckpt), "--save_file", str(save), "--input_file", TEST_FILE, *args])
    return read_jsonl(str(save)), json.load(open(f"{save}.metrics.json"))


@pytest.fixture(scope="module")
def fast_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast")
    train(path, *FAST, "--iteration", "2")
    return path


def test_a_profile_sets_its_sizes_and_given_flags_win():
    default = ModelConfig.from_args(parse())
    assert default == ModelConfig(train_args=None) and default.profile == "default"
    fast = ModelConfig.from_args(parse("--profile", "fast"))
    assert {k: getattr(fast, k) for k in PROFILES["fast"]} == PROFILES["fast"] and fast.profile == "fast"
    mixed = ModelConfig.from_args(parse("--profile", "fast", "--lstm_hidden", "64", "--lstm_layers", "2"))
    assert (mixed.lstm_hidden, mixed.lstm_layers, mixed.span_hidden) == (64, 2, PROFILES["fast"]["span_hidden"])
    with pytest.raises(SystemExit):
        parse("--profile", "turbo")


def test_a_default_config_json_has_no_profile_keys_and_old_ones_load(tmp_path):
    config = ModelConfig(encoder="glove", labels=["O", "PER"])
    assert not set(PROFILE_FIELDS) & config.to_dict().keys()
    old = config.to_dict()  # what a checkpoint saved before profiles existed holds
    assert ModelConfig.from_dict(old) == config
    fast = config.replace(profile="fast", span_hidden=128, char_filters=30, lstm_layers=1)
    fast.save(str(tmp_path / "config.json"))
    assert ModelConfig.load(str(tmp_path / "config.json")) == fast
    assert {k: fast.to_dict()[k] for k in PROFILE_FIELDS} == {"profile": "fast", "span_hidden": 128, "char_filters": 30}


def test_a_fast_checkpoint_trains_calibrates_and_builds_its_own_network(fast_ckpt):
    model, _, config = load_checkpoint(str(fast_ckpt))
    stored = json.load(open(fast_ckpt / "config.json"))
    assert stored["profile"] == "fast" and stored["lstm_layers"] == 1 and stored["span_hidden"] == 24
    assert config.profile == "fast" and model.encoder.lstm.num_layers == 1 and model.encoder.lstm.hidden_size == 16
    assert model.encoder.char_cnn.out_channels == PROFILES["fast"]["char_filters"]
    assert model.classifier.hidden.out_features == 24 and model.classifier.output.in_features == 24
    assert DevCalibration.load(str(fast_ckpt)).candidate_default("evidential") is not None


def test_a_fast_checkpoint_tags_and_links_like_a_default_one(fast_ckpt, ener_ckpt, tmp_path):
    for name, ckpt in (("default", ener_ckpt), ("fast", fast_ckpt)):
        records, metrics = infer(ckpt, tmp_path / f"{name}.jsonl")
        assert len(records) == len(read_dataset(TEST_FILE)) == metrics["n_sentences"]
        assert metrics["uncertainty_type"] == "evidential" and 0 <= metrics["f1"] <= 1
        assert all(0 <= e["uncertainty"] <= 1 for r in records for e in r["entity"])
        threshold = DevCalibration.load(str(ckpt)).budget_threshold("evidential", 0.3)
        prompts = tmp_path / f"{name}.prompts.jsonl"
        local_inference.main(["--inference_model", str(ckpt), "--save_file", str(tmp_path / f"{name}.online.jsonl"),
                              "--input_file", TEST_FILE, "--dry_run", "--budget", "0.3", "--prompts_file",
                              str(prompts)])
        expected = sum(e["uncertainty"] > threshold for r in records for e in r["entity"])
        assert 0 < expected == len(read_jsonl(str(prompts))), name


def test_a_fast_training_resumes_and_refuses_another_profile(tmp_path, monkeypatch):
    import models.training

    out = tmp_path / "m"
    # a run that stopped after its first epoch: its resume state kept, as a killed run leaves it
    with monkeypatch.context() as mp:
        mp.setattr(models.training, "shutil", types.SimpleNamespace(rmtree=lambda *a, **k: None))
        first = train(out, *FAST, "--iteration", "1", "--no_calibrate")
    assert os.path.isfile(out / "resume" / "last.ckpt")
    with pytest.raises(SystemExit, match="profile"):
        train(out, "--profile", "default", "--lstm_hidden", "16", "--batch_size", "16", "--iteration", "2",
              "--resume", "--no_calibrate")
    resumed = train(out, *FAST, "--iteration", "2", "--resume", "--no_calibrate")
    assert resumed["steps"] == 2 * first["steps"] and not os.path.exists(out / "resume")
    assert json.load(open(out / "config.json"))["profile"] == "fast"


def _grid_probs(model, featurizer, config, sentences):
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    out = []
    with torch.inference_mode():
        for indices in length_batches(dataset, 16):
            scores = model.grid_scores(grid_batch(dataset, indices, config.max_span_len))
            out.append(torch.softmax(scores, -1))
    return torch.cat(out)


def test_int8_loads_tags_and_stays_close_to_the_float_model(fast_ckpt, ener_ckpt, tmp_path):
    sentences = read_dataset(TEST_FILE)[:40]
    for ckpt in (ener_ckpt, fast_ckpt):
        model, featurizer, config = load_checkpoint(str(ckpt))
        q = quantize_model(model, "int8")
        assert isinstance(q, Int8SpanNER) and type(model).__name__ == "SpanNER"  # the float model is left as it was
        assert ".quantized." in type(q.encoder.lstm).__module__ and type(model.encoder.lstm) is torch.nn.LSTM
        assert quantize_model(model, "none") is model
        fp, i8 = _grid_probs(model, featurizer, config, sentences), _grid_probs(q, featurizer, config, sentences)
        assert fp.shape == i8.shape
        assert float((fp - i8).abs().max()) < 0.1  # int8 rounding, not another model
        assert np.mean((fp.argmax(-1) == i8.argmax(-1)).numpy()) > 0.97
    plain, plain_metrics = infer(fast_ckpt, tmp_path / "fp32.jsonl")
    records, metrics = infer(fast_ckpt, tmp_path / "int8.jsonl", "--quantize", "int8")
    assert len(records) == len(plain) and abs(metrics["f1"] - plain_metrics["f1"]) < 0.05
    with patched_loading(local_inference, "int8"):  # the bench's hook tags the same records
        again, _ = infer(fast_ckpt, tmp_path / "hook.jsonl")
    assert again == records
    with pytest.raises(SystemExit, match="quantize"):  # an output of the float model is not continued in int8
        infer(fast_ckpt, tmp_path / "fp32.jsonl", "--quantize", "int8")
    with pytest.raises(ValueError, match="unknown quantization"):
        quantize_model(model, "int4")
