"""Train SpanNER (softmax span classifier); `train_ener.py` reuses this with the evidential loss.

    python train_spanner.py --data_dir ../shared/data/conll03 --encoder glove --model_save_dir M
    python train_spanner.py --data_dir DATA --bert_config_dir bert-base-uncased --model_save_dir M
"""
import argparse
import json
import logging
import os
import shutil
import sys
import time
import warnings

import pytorch_lightning as pl

from dataloaders.dataset import SpanDataset, make_loader
from dataloaders.readers import load_labels, read_dataset, split_path
from utils.errors import DataError
from inference.local.predict import dev_counter
from models.checkpoint import build_model, save_checkpoint
from models.lightning_module import SpanNERModule

log = logging.getLogger("train")

DEFAULT_LR = {"bert": 3e-5, "glove": 2e-3}


def str2bool(v):
    if v.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if v.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def build_parser(description=__doc__):
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data_dir", required=True, help="spanner.train/dev (paper layout) or train.txt/dev.txt; optional labels.txt")
    a("--train_file", help="override the training file found in --data_dir")
    a("--dev_file", help="override the dev file found in --data_dir")
    a("--model_save_dir", required=True, help="checkpoint directory (best dev F1 is kept)")
    a("--encoder", choices=["bert", "glove"], default="bert")
    a("--bert_config_dir", help="Hugging Face checkpoint directory or hub id (bert-base-uncased, roberta-large, ...)")
    a("--bert_max_length", type=int, default=128, help="subwords per window; longer sentences get several windows")
    a("--bert_dropout", type=float, default=0.15)
    a("--lstm_hidden", type=int, default=200, help="glove encoder: BiLSTM size per direction")
    a("--lstm_layers", type=int, default=2)
    a("--glove_dropout", type=float, default=0.33)
    a("--max_spanLen", type=int, default=5)
    a("--tokenLen_emb_dim", type=int, default=60, help="span width embedding (encoder positions)")
    a("--spanLen_emb_dim", type=int, default=100, help="span length embedding (words)")
    a("--morph_emb_dim", type=int, default=100)
    a("--model_dropout", type=float, default=0.2)
    a("--neg_span_weight", type=float, default=0.6, help="loss weight of spans that are not gold entities")
    a("--lr", type=float, help=f"default {DEFAULT_LR['bert']} for bert, {DEFAULT_LR['glove']} for glove")
    a("--weight_decay", type=float, default=0.01)
    a("--adam_epsilon", type=float, default=1e-8)
    a("--warmup_proportion", type=float, default=0.1)
    a("--batch_size", type=int, default=64)
    a("--iteration", type=int, default=30, help="epochs")
    a("--max_steps", type=int, default=-1, help="stop after this many optimiser steps (short runs)")
    a("--early_stop", type=int, default=5, help="epochs without dev F1 gain before stopping")
    a("--seed", type=int, default=123123)
    a("--accelerator", default="auto")
    a("--devices", default="auto", help="e.g. 1, 4, or auto")
    a("--strategy", default="auto", help="e.g. ddp for several GPUs")
    a("--precision", default="32-true", help="e.g. bf16-mixed on recent GPUs")
    a("--resume", action="store_true",
      help="continue a killed run from MODEL_SAVE_DIR/resume/last.ckpt (written after every epoch)")
    return p


def model_config(args, labels, model_type):
    c = {"model_type": model_type, "encoder": args.encoder, "labels": labels, "max_span_len": args.max_spanLen,
         "width_dim": args.tokenLen_emb_dim, "len_dim": args.spanLen_emb_dim, "morph_dim": args.morph_emb_dim,
         "dropout": args.model_dropout, "neg_span_weight": args.neg_span_weight, "lr": args.lr or DEFAULT_LR[args.encoder],
         "weight_decay": args.weight_decay, "adam_epsilon": args.adam_epsilon, "warmup_proportion": args.warmup_proportion}
    if args.encoder == "bert":
        if not args.bert_config_dir:
            raise DataError("--encoder bert needs --bert_config_dir (a Hugging Face checkpoint directory or hub id)")
        bert_dir = args.bert_config_dir
        # Hugging Face takes any non-directory for a hub id, and says so confusingly for a mistyped path.
        if (os.path.isabs(bert_dir) or bert_dir.startswith(".")) and not os.path.isdir(bert_dir):
            raise DataError(f"--bert_config_dir {bert_dir}: no such directory")
        c.update(bert_config_dir=args.bert_config_dir, bert_max_length=args.bert_max_length, bert_dropout=args.bert_dropout)
    else:
        c.update(lstm_hidden=args.lstm_hidden, lstm_layers=args.lstm_layers, glove_dropout=args.glove_dropout)
    return c


class SaveBest(pl.Callback):
    """Write the safetensors checkpoint whenever dev F1 improves (rank 0 only)."""

    def __init__(self, path, featurizer, config):
        self.path, self.featurizer, self.config, self.best = path, featurizer, config, -1.0

    def on_validation_end(self, trainer, module):
        f1 = float(trainer.callback_metrics.get("dev_f1", -1.0))
        if trainer.sanity_checking or f1 <= self.best:
            return
        self.best = f1
        if trainer.is_global_zero:
            self.config.update(dev_f1=f1, epoch=trainer.current_epoch, step=trainer.global_step)
            save_checkpoint(self.path, module.model, self.featurizer, self.config)
            log.info("epoch %d: dev F1 %.4f, checkpoint saved to %s", trainer.current_epoch, f1, self.path)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]


def load_split(args, split, labels=None):
    path = getattr(args, f"{split}_file") or split_path(args.data_dir, split)
    sentences = read_dataset(path, labels=labels)
    if not sentences or any(s.entities is None for s in sentences):
        raise DataError(f"{path}: no labelled sentences (training needs spanner JSON or CoNLL columns)")
    return path, sentences


def train(args, model_type="spanner", extra_config=None):
    pl.seed_everything(args.seed, workers=True, verbose=False)
    train_path, train_sents = load_split(args, "train")
    labels = load_labels(args.data_dir, train_sents)
    unknown = sorted({label for s in train_sents for *_, label in s.entities} - set(labels))
    if unknown:
        raise DataError(f"{train_path}: labels {', '.join(unknown)} are missing from {args.data_dir}/labels.txt")
    _, dev_sents = load_split(args, "dev", labels)
    config = model_config(args, labels, model_type)
    config.update(extra_config or {})
    model, featurizer = build_model(config, sentences=train_sents)
    train_set = SpanDataset(train_sents, featurizer, labels, args.max_spanLen, train_path)
    dev_set = SpanDataset(dev_sents, featurizer, labels, args.max_spanLen, "dev")
    if getattr(featurizer, "n_windowed", 0):
        log.info("%d sentences were longer than %d subwords and were read in overlapping windows",
                 featurizer.n_windowed, args.bert_max_length)
    log.info("train %d sentences, dev %d, labels %s", len(train_set), len(dev_set), labels[1:])
    config["train_args"] = vars(args)
    saver = SaveBest(args.model_save_dir, featurizer, config)
    # Lightning's own checkpoint of the whole training state, only to resume a killed run:
    # overwritten after every epoch, read back with weights_only (no arbitrary unpickling).
    resume_dir = os.path.join(args.model_save_dir, "resume")
    last = pl.callbacks.ModelCheckpoint(resume_dir, "last", save_top_k=1, enable_version_counter=False)
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=args.devices, strategy=args.strategy, precision=args.precision,
        max_epochs=args.iteration, max_steps=args.max_steps, logger=False, num_sanity_val_steps=0,
        callbacks=[saver, last, pl.callbacks.EarlyStopping("dev_f1", patience=args.early_stop, mode="max",
                                                           check_on_train_epoch_end=False)])
    module = SpanNERModule(model, config, dev_counter(dev_set, config))
    start = time.time()
    # Length-bucketed batches on one device; DDP needs Lightning's own distributed sampler.
    bucket = trainer.world_size == 1
    dev_loader = make_loader(dev_set, args.batch_size, False, bucket=bucket)
    ckpt_path = os.path.join(resume_dir, "last.ckpt") if args.resume else None
    if ckpt_path and not os.path.isfile(ckpt_path):
        raise DataError(f"--resume: {ckpt_path} does not exist (nothing to continue)")
    try:
        trainer.fit(module, make_loader(train_set, args.batch_size, True, args.seed, bucket), dev_loader,
                    ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:  # Lightning's graceful Ctrl-C ends in sys.exit(1)
        sys.exit(f"interrupted; continue with the same command and --resume (from {resume_dir})")
    shutil.rmtree(resume_dir, ignore_errors=True)  # finished: the checkpoint directory is all that stays
    if saver.best < 0:  # --max_steps ended training inside the first epoch
        trainer.validate(module, dev_loader, verbose=False)
    summary = {"best_dev_f1": saver.best, "epochs": trainer.current_epoch, "steps": trainer.global_step,
               "train_seconds": round(time.time() - start, 1), "model_save_dir": args.model_save_dir}
    log.info("done: %s", json.dumps(summary))
    return summary


def main(argv=None, model_type="spanner", parser=None, extra_config=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")  # --resume
    args = (parser or build_parser()).parse_args(argv)
    try:
        return train(args, model_type, extra_config(args) if extra_config else None)
    except (DataError, OSError) as err:  # bad data; a model directory or hub id that cannot be read
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
