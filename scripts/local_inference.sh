#!/usr/bin/env bash
# Stage one: tag a test set with a trained checkpoint, give every entity an uncertainty and
# list the spans the model is unsure of for the LLM, as the paper's scripts/local_inference.sh.
# Writes RESULTS_DIR/TEST_MODE.jsonl, its .metrics.json, and plots in RESULTS_DIR/plots.
# Edit the values below or override them from the environment; extra arguments go to
# local_inference.py:
#   DATA_DIR=data/sample MODEL_SAVE_DIR=outputs/ener RESULTS_DIR=outputs/results bash scripts/local_inference.sh
set -euo pipefail

: "${DATA_DIR:=/path/to/data}"           # its test split is read (typos/ oov/ ood/ for those TEST_MODEs)
: "${MODEL_SAVE_DIR:=/path/to/model}"    # the checkpoint from spanner_train.sh / ener_train.sh
: "${RESULTS_DIR:=/path/to/results}"
: "${TEST_MODE:=ori}"                    # ori, typos, oov, ood
: "${UNCERTAINTY_TYPE:=}"                # confidence, entropy, mc_dropout, evidential, learned; empty: evidential
                                         # for E-NER, confidence for SpanNER
: "${CANDIDATE_THRESHOLD:=}"             # spans tagged O above this uncertainty become LLM candidates;
                                         # empty: the checkpoint's dev-calibrated default, else 0.4

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
run_local "$@"
