"""`ModelConfig`: every model hyper-parameter with its default, written once, and how it is
stored (`config.json` in a checkpoint directory). argparse takes its defaults from here.

The paper's flags name some fields differently (kept for the command line):
--max_spanLen is `max_span_len`, --tokenLen_emb_dim `width_dim` (span width in encoder
positions), --spanLen_emb_dim `len_dim` (span length in words), --morph_emb_dim `morph_dim`,
--model_dropout `dropout`. Old checkpoints' config.json files use the field names already.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from models.losses import NEG_SPAN_WEIGHT, EnerLossOptions
from utils.errors import DataError

if TYPE_CHECKING:
    import argparse

DEFAULT_LR = {"bert": 3e-5, "glove": 2e-3}
ENER_FIELDS = ("etrans_func", "annealing_step", "with_iw", "with_kl", "with_uc")
BERT_FIELDS = ("bert_config_dir", "bert_max_length", "bert_dropout")
GLOVE_FIELDS = ("lstm_hidden", "lstm_layers", "glove_dropout")
# Opt-in noisy-text options of the GloVe encoder (docs/noisy_text.md); written to config.json only when on,
# so the configs of models trained without them stay as they were.
NOISY_FIELDS = ("noisy_words", "context_encoder", "context_layers")
# The sizes a `--profile` (models/profiles.py, docs/speed.md) may change beyond the fields above, and its
# name: written to config.json only when not at their defaults, so a default model's config stays as it was.
PROFILE_FIELDS = ("profile", "span_hidden", "char_filters")
# Opt-in switches written to config.json only when on, so configs from before them stay as they were.
SWITCH_FIELDS = ("context_mix",)


class ModelType(str, enum.Enum):
    SPANNER = "spanner"  # softmax span classifier
    ENER = "ener"  # evidential head (Dirichlet evidence per span)


@dataclass(frozen=True)
class ModelConfig:
    labels: list = field(default_factory=list)  # index 0 is "O"
    model_type: ModelType = ModelType.SPANNER
    encoder: str = "bert"  # bert or glove
    max_span_len: int = 5
    width_dim: int = 60
    len_dim: int = 100
    morph_dim: int = 100
    dropout: float = 0.2
    neg_span_weight: float = NEG_SPAN_WEIGHT
    lr: Optional[float] = None  # None: DEFAULT_LR of the encoder
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-8
    warmup_proportion: float = 0.1
    bert_config_dir: Optional[str] = None
    bert_max_length: int = 128
    bert_dropout: float = 0.15
    lstm_hidden: int = 200
    lstm_layers: int = 2
    glove_dropout: float = 0.33
    noisy_words: bool = False  # GloVe lookup of '#tag' / '@name' words without the mark
    context_encoder: Optional[str] = None  # frozen pretrained encoder whose word states join the GloVe inputs
    context_layers: int = 4  # its last layers, averaged
    context_mix: bool = False  # those layers' weights learned (a scalar mix) instead of the plain mean
    profile: str = "default"  # the preset the sizes came from (models/profiles.py); a record, read by no layer
    span_hidden: Optional[int] = None  # the span classifier's hidden width; None: the span vector's width
    char_filters: int = 50  # glove encoder: character CNN filters
    etrans_func: str = EnerLossOptions.etrans
    annealing_step: float = EnerLossOptions.annealing_step
    with_iw: bool = EnerLossOptions.with_iw
    with_kl: bool = EnerLossOptions.with_kl
    with_uc: bool = EnerLossOptions.with_uc
    encoder_config: dict = field(default_factory=dict)  # built encoder: hf_config (BERT) or chars (GloVe)
    dev_f1: Optional[float] = None
    epoch: Optional[int] = None
    step: Optional[int] = None
    train_args: Optional[dict] = None

    def __post_init__(self):
        object.__setattr__(self, "model_type", ModelType(self.model_type))

    @property
    def is_ener(self) -> bool:
        return self.model_type is ModelType.ENER

    @property
    def noisy_text(self) -> bool:
        """Whether any opt-in noisy-text option of the GloVe encoder is on."""
        return self.noisy_words or self.context_encoder is not None

    @property
    def learning_rate(self) -> float:
        return self.lr or DEFAULT_LR[self.encoder]

    def ener_loss_options(self) -> EnerLossOptions:
        return EnerLossOptions(annealing_step=self.annealing_step, etrans=self.etrans_func,
                               neg_weight=self.neg_span_weight, with_iw=self.with_iw, with_kl=self.with_kl,
                               with_uc=self.with_uc)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **extra: Any) -> ModelConfig:
        """The fields that parsed flags (named as the fields) set, plus `extra`."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        return cls(**{**given, **extra})

    def to_dict(self) -> dict[str, Any]:
        """The fields, less those that do not apply: the E-NER loss options of a SpanNER model,
        the other encoder's settings."""
        skip = set() if self.is_ener else set(ENER_FIELDS)
        skip |= set(GLOVE_FIELDS if self.encoder == "bert" else BERT_FIELDS)
        skip |= {name for name in NOISY_FIELDS if self.encoder == "bert" or not self.noisy_text}
        skip |= {name for name in PROFILE_FIELDS if getattr(self, name) == _DEFAULTS[name]}
        skip |= {name for name in SWITCH_FIELDS if not getattr(self, name)}
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        d["model_type"] = self.model_type.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """From a config.json, old ones included (they lack the fields of the other encoder)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**d)

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=False)

    @classmethod
    def load(cls, path: str) -> ModelConfig:
        """From a config.json; a damaged one is a DataError naming it."""
        try:
            with open(path, encoding="utf-8") as f:
                config = json.load(f)
            if not isinstance(config, dict):
                raise TypeError(f"expected a JSON object, got {type(config).__name__}")
            return cls.from_dict(config)
        except (ValueError, TypeError, AttributeError) as err:  # truncated, not JSON, wrong fields
            raise DataError(f"{path}: not a readable model config ({err})") from None


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name in PROFILE_FIELDS}
