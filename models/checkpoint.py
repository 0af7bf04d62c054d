"""Build a model from its config; save and load checkpoint directories.

A checkpoint is a directory: `config.json` (the `ModelConfig`: model and training arguments, label list),
`model.safetensors` (weights only: loading never unpickles anything), and for BERT the
tokenizer files in `tokenizer/` (apart, so that transformers never mistakes our config.json
for a model's). GloVe vectors are read from the installed package, not stored.

The weights carry, in their safetensors metadata, what they were trained for (model type,
encoder, labels in order): a config.json that says otherwise (a SpanNER config beside E-NER
weights, reordered labels) is refused on load with one line, not silently applied. What
`inference.local.calibrate` fits on the weights (`FITTED`) records their digest.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from dataloaders.features import BertFeaturizer, ContextGloveFeaturizer, GloveFeaturizer
from models.encoders import BertEncoder, FrozenContext, GloveEncoder, load_glove
from models.config import ModelConfig
from models.pretrained import resolve
from models.span_ner import SpanNER, upgrade_state_dict
from utils.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from dataloaders.readers import Sentence

    Featurizer = BertFeaturizer | GloveFeaturizer | ContextGloveFeaturizer

CONFIG, WEIGHTS, TOKENIZER = "config.json", "model.safetensors", "tokenizer"
FITTED = ("calibration.json", "error_predictor.json")  # fitted on the weights: stale once they change
RESUME = "resume"  # a killed training's state (models/training.py)
META_KEY = "linkner"  # the weights' metadata entry: what they were trained for
TIED = ("model_type", "encoder", "labels")  # config fields the weights must agree with


def checkpoint_files(path: str) -> list[str]:
    """Every file of the checkpoint directory `path` that loading or calibrating reads, and that
    training writes: config, weights, what was fitted on them, the tokenizer's files."""
    files = [os.path.join(path, name) for name in (CONFIG, WEIGHTS, *FITTED)]
    for base, _, names in os.walk(os.path.join(path, TOKENIZER)):
        files += [os.path.join(base, name) for name in sorted(names)]
    return files


def _tied(config):
    d = config.to_dict()
    return {key: d[key] for key in TIED}


def build_model(config: ModelConfig, sentences: Optional[list[Sentence]] = None,
                tokenizer: Optional[PreTrainedTokenizerBase] = None) -> tuple[SpanNER, Featurizer, ModelConfig]:
    """(model, featurizer, config) for the `ModelConfig` `config`. Training passes `sentences`
    (to collect the character set) and starts BERT from `config.bert_config_dir`; loading
    passes the stored `encoder_config` and `tokenizer`, and the weights follow. The config
    returned holds the built encoder's `encoder_config`."""
    enc_cfg = dict(config.encoder_config)
    featurizer: Featurizer
    encoder: BertEncoder | GloveEncoder
    if config.encoder == "bert":
        from transformers import AutoTokenizer

        if tokenizer is None:
            if config.bert_config_dir is None:  # training refuses this first (models/training.py)
                raise DataError("--encoder bert needs --bert_config_dir")
            bert_dir, hub_args = resolve(config.bert_config_dir)
            tokenizer = AutoTokenizer.from_pretrained(bert_dir, **hub_args, **_prefix_space(bert_dir, hub_args))
        encoder = BertEncoder(config.bert_config_dir, config.bert_dropout, enc_cfg.get("hf_config"))
        enc_cfg["hf_config"] = encoder.bert.config.to_dict()
        featurizer = BertFeaturizer(tokenizer, config.bert_max_length)
    elif config.encoder == "glove":
        words, vectors = load_glove()
        if "chars" not in enc_cfg:
            if sentences is None:
                raise ValueError("build_model: a new GloVe model needs the training sentences (its characters)")
            enc_cfg["chars"] = GloveFeaturizer.from_sentences(words, [s.words for s in sentences]).chars
        glove = GloveFeaturizer(words, enc_cfg["chars"], noisy_words=config.noisy_words)
        featurizer = glove
        context: Optional[FrozenContext] = None
        if config.context_encoder:  # opt-in (docs/noisy_text.md): read from its package, never stored
            from transformers import AutoTokenizer

            context = FrozenContext(config.context_encoder, config.context_layers, mix=config.context_mix)
            if sentences is None:  # loaded to tag: each sentence is read once, a long stream would only grow the cache
                context.cache_size = 0
            bert_dir, hub_args = resolve(config.context_encoder)
            tokenizer = AutoTokenizer.from_pretrained(bert_dir, **hub_args, **_prefix_space(bert_dir, hub_args))
            featurizer = ContextGloveFeaturizer(glove, BertFeaturizer(tokenizer, config.bert_max_length))
        encoder = GloveEncoder(vectors, len(enc_cfg["chars"]), char_filters=config.char_filters, hidden=config.lstm_hidden,
                               layers=config.lstm_layers, dropout=config.glove_dropout, context=context)
    else:
        raise ValueError(f"unknown encoder {config.encoder!r} (bert or glove)")
    model = SpanNER(encoder, len(config.labels), config.max_span_len, config.width_dim, config.len_dim,
                    config.morph_dim, config.dropout, config.span_hidden)
    return model, featurizer, config.replace(encoder_config=enc_cfg)


def _prefix_space(bert_dir, hub_args):
    """RoBERTa-style BPE tokenizers need add_prefix_space to take pre-split words."""
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(bert_dir, **hub_args).model_type
    return {"add_prefix_space": True} if model_type in ("roberta", "longformer", "bart", "deberta") else {}


def save_checkpoint(path: str, model: SpanNER, featurizer: Featurizer, config: ModelConfig) -> None:
    os.makedirs(path, exist_ok=True)
    # Own copies: cuDNN packs LSTM weights into one shared buffer, which safetensors refuses.
    data = save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                metadata={META_KEY: json.dumps(_tied(config))})
    # written by open(), so the mode follows the umask (0644 as a rule), then swapped in whole
    with open(os.path.join(path, WEIGHTS + ".part"), "wb") as f:
        f.write(data)
    os.replace(os.path.join(path, WEIGHTS + ".part"), os.path.join(path, WEIGHTS))
    if isinstance(featurizer, BertFeaturizer):
        featurizer.tok.save_pretrained(os.path.join(path, TOKENIZER))
    config.save(os.path.join(path, CONFIG))


def load_checkpoint(path: str, device: Union[str, torch.device] = "cpu") -> tuple[SpanNER, Featurizer, ModelConfig]:
    """(model in eval mode, featurizer, config) from a checkpoint directory."""
    for name in (CONFIG, WEIGHTS):
        if not os.path.isfile(os.path.join(path, name)):
            raise FileNotFoundError(f"{path}: not a checkpoint directory (no {name})")
    config = ModelConfig.load(os.path.join(path, CONFIG))
    check_tied(path, config)
    tokenizer = None
    if config.encoder == "bert":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(os.path.join(path, TOKENIZER), local_files_only=True)
    model, featurizer, config = build_model(config, tokenizer=tokenizer)
    weights = os.path.join(path, WEIGHTS)
    try:
        state = load_file(weights)
    except Exception as err:  # noqa: BLE001 (safetensors raises its own error type for a damaged file)
        raise DataError(f"{weights}: unreadable weights, the file is damaged or truncated ({err})") from None
    try:
        model.load_state_dict(upgrade_state_dict(state))
    except RuntimeError as err:  # sizes or names that are not this config's model
        first = str(err).strip().splitlines()
        raise DataError(f"{weights}: the weights do not match {os.path.join(path, CONFIG)} (its labels and sizes): "
                        f"{' '.join(line.strip() for line in first[:3])}") from None
    return model.to(device).eval(), featurizer, config


def check_tied(path: str, config: ModelConfig) -> None:
    """A DataError in one line when the weights of the checkpoint `path` were saved for another
    model type, encoder or label list than its config.json says (weights saved before the
    metadata existed are checked by their shapes only, on load)."""
    weights = os.path.join(path, WEIGHTS)
    try:
        with safe_open(weights, framework="pt") as f:
            meta = (f.metadata() or {}).get(META_KEY)
    except Exception as err:  # noqa: BLE001 (safetensors raises its own error type for a damaged file)
        raise DataError(f"{weights}: unreadable weights, the file is damaged or truncated ({err})") from None
    if meta is None:
        return
    try:
        saved = json.loads(meta)
    except ValueError:
        raise DataError(f"{weights}: damaged metadata ({META_KEY} is not JSON)") from None
    ours = _tied(config)
    differ = [key for key in TIED if saved.get(key) != ours[key]]
    if differ:
        what = "; ".join(f"{key} {json.dumps(saved.get(key))} (config.json: {json.dumps(ours[key])})" for key in differ)
        raise DataError(f"{weights}: the weights do not match {os.path.join(path, CONFIG)}: they were saved for {what}; "
                        "the two files are not one checkpoint")
