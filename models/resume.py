"""Starting a training in its checkpoint directory, afresh or where a killed run stopped.

Afresh (`start_fresh`): a finished model already there is refused (`refuse_finished`) unless
--overwrite is given; then it is replaced (said once), and what was
fitted on its weights (calibration.json, error_predictor.json) is removed, so that inference
never applies it to the new weights. The run's settings go to RESUME/run.json.

Resumed (`check_resume`): Lightning's RESUME/last.ckpt (written after every epoch) continues
only the run it was written by: its settings (model, labels, data, batch size, seed) must be
the ones given again, and its weights the model's shapes, else one line says what differs.
`RngState` keeps the random generators' state in that checkpoint, so a resumed run draws the
dropout masks the uninterrupted one draws (its batch order is the sampler's: seed and epoch,
`dataloaders.dataset.BucketBatchSampler`): resumed, the training ends with the same weights.
"""
from __future__ import annotations

import json
import logging
import os
import random
from typing import TYPE_CHECKING

import numpy as np
import pytorch_lightning as pl
import torch

from models.checkpoint import CONFIG, FITTED, RESUME, WEIGHTS
from models.config import ModelConfig
from utils.errors import DataError

if TYPE_CHECKING:  # models/training.py imports this module
    from models.training import TrainSettings

log = logging.getLogger("train")
LAST, RUN = "last.ckpt", "run.json"
VOLATILE = ("dev_f1", "epoch", "step", "train_args", "encoder_config")  # config fields a run fills in


def run_settings(config: ModelConfig, settings: "TrainSettings", train_path: str, dev_path: str) -> dict:
    """What a resumed run must share with the killed one."""
    model = {k: v for k, v in config.to_dict().items() if k not in VOLATILE}
    return {"model": model, "train_file": os.path.abspath(train_path), "dev_file": os.path.abspath(dev_path),
            "batch_size": settings.batch_size, "seed": settings.seed}


def _describe(old: dict, new: dict) -> list:
    flat = lambda d: {**{k: v for k, v in d.items() if k != "model"}, **d.get("model", {})}  # noqa: E731
    old, new = flat(old), flat(new)
    return [f"{k} {json.dumps(old.get(k))} (now {json.dumps(new.get(k))})" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def _dev_f1(save_dir):
    """The dev F1 of the model in `save_dir` (config and weights there), else None."""
    config, weights = os.path.join(save_dir, CONFIG), os.path.join(save_dir, WEIGHTS)
    if not (os.path.isfile(config) and os.path.isfile(weights)):
        return None
    try:
        with open(config, encoding="utf-8") as f:
            dev_f1 = json.load(f).get("dev_f1")
    except (OSError, ValueError, AttributeError):
        return None
    return dev_f1 if isinstance(dev_f1, (int, float)) and not isinstance(dev_f1, bool) else None


def refuse_finished(save_dir: str) -> None:
    """A DataError when `save_dir` holds a finished model (config, weights and a dev F1, and no
    killed run's state beside them): a new training there needs --overwrite."""
    dev_f1 = _dev_f1(save_dir)
    if dev_f1 is not None and not os.path.isfile(os.path.join(save_dir, RESUME, RUN)):
        raise DataError(f"{save_dir}: holds a finished model (dev F1 {dev_f1:.4f}); training there would replace it: "
                        "give --overwrite to replace it, or choose another --model_save_dir")


def start_fresh(save_dir: str, run: dict) -> None:
    """A new training in `save_dir`: say so when it replaces a finished model, remove what
    was fitted on the old weights, and record this run's settings for --resume."""
    if _dev_f1(save_dir) is not None:
        log.warning("%s holds a finished model (dev F1 %s); this training replaces it", save_dir, _dev_f1(save_dir))
    for name in FITTED:
        path = os.path.join(save_dir, name)
        if os.path.isfile(path):
            try:
                os.remove(path)
            except FileNotFoundError:  # another process of the run (DDP) was first
                continue
            log.warning("removed %s: it was fitted on the old weights (the new ones are calibrated when training "
                        "ends)", path)
    os.makedirs(os.path.join(save_dir, RESUME), exist_ok=True)
    with open(os.path.join(save_dir, RESUME, RUN), "w", encoding="utf-8") as f:
        json.dump(run, f, indent=1)


def check_resume(save_dir: str, run: dict, module: torch.nn.Module) -> str:
    """The checkpoint --resume continues, once it is known to be this run's (else a DataError)."""
    resume_dir = os.path.join(save_dir, RESUME)
    ckpt = os.path.join(resume_dir, LAST)
    if not os.path.isfile(ckpt):
        raise DataError(f"--resume: {ckpt} does not exist (nothing to continue)")
    try:
        with open(os.path.join(resume_dir, RUN), encoding="utf-8") as f:
            before = json.load(f)
    except (OSError, ValueError):
        before = None  # a run killed before run.json existed: its weights' shapes are checked
    if isinstance(before, dict):
        differ = _describe(before, json.loads(json.dumps(run)))
        if differ:
            raise DataError(f"--resume: {ckpt} continues a run with other settings: {'; '.join(differ)}. "
                            "Resume with that run's flags, or train afresh without --resume")
    try:
        saved = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["state_dict"]
    except Exception as err:  # noqa: BLE001 (a truncated or foreign file: torch raises several types)
        raise DataError(f"--resume: {ckpt}: unreadable ({' '.join(str(err).split())[:200]})") from None
    ours = module.state_dict()
    wrong = sorted(k for k in set(saved) | set(ours)
                   if k not in saved or k not in ours or tuple(saved[k].shape) != tuple(ours[k].shape))
    if wrong:
        raise DataError(f"--resume: {ckpt} holds the training of another model ({len(wrong)} weights differ in name "
                        f"or shape, e.g. {wrong[0]}); resume with that run's flags, or train afresh without --resume")
    return ckpt


class RngState(pl.Callback):
    """The random generators' state, saved with the resume checkpoint and restored from it."""

    def state_dict(self) -> dict:
        version, internal, gauss = random.getstate()
        numpy_state = np.random.get_state()
        assert isinstance(numpy_state, tuple)  # legacy=True, the default: (name, keys, pos, has_gauss, cached)
        name, keys, pos, has_gauss, cached = numpy_state
        state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss],
                 "numpy": [name, keys.tolist(), pos, has_gauss, cached]}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
