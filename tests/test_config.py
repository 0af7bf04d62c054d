"""models/config.py: ModelConfig defaults, config.json round trip, old checkpoints' files;
models/span_ner.py: the classifier's old numbered keys still load."""
import json

import pytest
import torch

from models.config import ModelConfig, ModelType
from models.span_ner import upgrade_state_dict
from models.training import add_ener_args, build_parser

OLD_GLOVE_ENER = {  # a config.json as checkpoints were written before ModelConfig
    "model_type": "ener", "encoder": "glove", "labels": ["O", "PER"], "max_span_len": 5, "width_dim": 60,
    "len_dim": 100, "morph_dim": 100, "dropout": 0.2, "neg_span_weight": 0.6, "lr": 0.002, "weight_decay": 0.01,
    "adam_epsilon": 1e-08, "warmup_proportion": 0.1, "lstm_hidden": 16, "lstm_layers": 2, "glove_dropout": 0.33,
    "etrans_func": "exp", "annealing_step": 100.0, "with_iw": True, "with_kl": True, "with_uc": True,
    "encoder_config": {"chars": ["<pad>", "<unk>", "a"]}, "train_args": {"max_spanLen": 5}, "dev_f1": 0.5,
    "epoch": 1, "step": 14}


def test_old_config_json_loads_and_round_trips(tmp_path):
    config = ModelConfig.from_dict(OLD_GLOVE_ENER)
    assert config.model_type is ModelType.ENER and config.is_ener and config.lstm_hidden == 16
    assert config.to_dict() == OLD_GLOVE_ENER
    config.save(str(tmp_path / "config.json"))
    assert ModelConfig.load(str(tmp_path / "config.json")) == config
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "ener"


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown model config keys: tokenLen_emb_dim"):
        ModelConfig.from_dict({**OLD_GLOVE_ENER, "tokenLen_emb_dim": 60})


def test_argparse_defaults_are_the_dataclass_defaults():
    args = add_ener_args(build_parser("")).parse_args(["--data_dir", ".", "--model_save_dir", "m"])
    config = ModelConfig.from_args(args, model_type=ModelType.ENER)
    assert config == ModelConfig(model_type=ModelType.ENER)
    args = build_parser("").parse_args(["--data_dir", ".", "--model_save_dir", "m", "--tokenLen_emb_dim", "7"])
    assert ModelConfig.from_args(args).width_dim == 7  # the paper's flag fills width_dim


def test_spanner_config_leaves_out_what_does_not_apply():
    keys = ModelConfig(encoder="glove").to_dict().keys()
    assert "with_uc" not in keys and "bert_dropout" not in keys and "lstm_hidden" in keys


def test_old_classifier_keys_are_renamed():
    w = torch.zeros(2)
    old = {"classifier.0.weight": w, "classifier.0.bias": w, "classifier.3.weight": w, "width_emb.weight": w}
    assert sorted(upgrade_state_dict(old)) == ["classifier.hidden.bias", "classifier.hidden.weight",
                                               "classifier.output.weight", "width_emb.weight"]
