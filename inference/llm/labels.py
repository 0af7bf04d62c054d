"""The label set and the prompt builder of a linking run: --labels > --dataname > the local
model's labels (INPUT.metrics.json) > the labels seen in the input records."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

from inference.llm.prompt import PromptBuilder, ShotSelector, dataset_spec, generic_spec, with_descriptions
from utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from inference.llm.prompt import LabelSpec
    from inference.llm.settings import LinkSettings


def read_label_list(value: str) -> list[str]:
    """--labels: a labels.txt file (one per line) or a comma list."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    return [label.strip() for label in value.split(",") if label.strip()]


def model_labels(input_file: str) -> Optional[list[str]]:
    """The local model's labels, from INPUT.metrics.json beside the input, if it is there."""
    return local_metrics_of(input_file).get("labels")


def local_metrics_of(input_file: str) -> dict:
    """INPUT.metrics.json beside a local output ({} where there is none)."""
    path = input_file + ".metrics.json"
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            metrics = json.load(f)
        except ValueError:
            metrics = None
    if not isinstance(metrics, dict):
        raise DataError(f"{path}: not a metrics JSON object")
    return metrics


def seen_labels(records: Iterable[dict]) -> list[str]:
    found = {span.get(key) for rec in records for span in rec["entity"] for key in ("pred", "answer")}
    found |= {label for rec in records for _, _, label in rec.get("gold") or []}
    return sorted(found - {None, "O"})


def resolve_spec(settings: LinkSettings, records: Sequence[dict] = (), known: Optional[list[str]] = None) -> LabelSpec:
    """--labels > --dataname > the model's labels `known` (default: those in INPUT.metrics.json)
    > labels seen in the input records."""
    if known is None and settings.input_file is not None:
        known = model_labels(settings.input_file)
    if settings.labels:
        spec = generic_spec(read_label_list(settings.labels))
    elif settings.dataname:
        spec = dataset_spec(settings.dataname, known)
    else:
        labels = known or seen_labels(records)
        if not labels:
            raise DataError(f"{settings.input_file}: no labels found; pass --labels or --dataname")
        spec = generic_spec(labels)
    if settings.label_desc:
        with open(settings.label_desc, encoding="utf-8-sig") as f:
            spec = with_descriptions(spec, json.load(f))
    return spec


def prompt_builder(settings: LinkSettings, spec: LabelSpec) -> PromptBuilder:
    shots = None
    if settings.shot > 0:
        if settings.selectShot_dir is None:  # the flags refuse this; settings built in code may not
            raise ConfigError("--shot needs --selectShot_dir, a labelled file to draw examples from")
        shots = ShotSelector.from_file(settings.selectShot_dir, spec, settings.shot, settings.shot_strategy,
                                       seed=settings.seed)
    return PromptBuilder(spec, shots)
