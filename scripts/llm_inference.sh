#!/usr/bin/env bash
# Stage two: spans whose uncertainty is above LINK_THRESHOLD re-labelled by an LLM, as the paper's
# scripts/llm_inference.sh. Writes SAVE_FILE and SAVE_FILE.metrics.json.
# Edit the values below or override them from the environment; extra arguments go to
# llm_inference.py:
#   INPUT_FILE=outputs/results/ori.jsonl OPENAI_API_KEY=... bash scripts/llm_inference.sh
#   INPUT_FILE=... LLM_NAME=llama LLM_CKPT=/models/Llama-3-8B-Instruct bash scripts/llm_inference.sh
#   INPUT_FILE=... OPENAI_BASE_URL=http://localhost:8000/v1 LLM_MODEL=Qwen2.5-7B-Instruct bash scripts/llm_inference.sh
set -euo pipefail

: "${INPUT_FILE:=/path/to/results/ori.jsonl}"         # written by local_inference.sh
: "${SAVE_FILE:=${INPUT_FILE%.jsonl}.linked.jsonl}"
: "${LLM_NAME:=}"                       # gpt / openai (OpenAI or a compatible server), llama / qwen / hf (local);
                                        # empty: picked from LLM_CKPT / OPENAI_API_KEY / OPENAI_BASE_URL, else
                                        # a dry run (common.sh: pick_llm)
: "${LLM_MODEL:=}"                      # model name on the server (gpt / openai); empty: the default
: "${LLM_CKPT:=/path/to/llm}"           # local Hugging Face chat model folder (llama / qwen / hf)
: "${DATANAME:=conll03}"                # the paper's label descriptions: conll03, wnut16, wnut17, twitter, ontonotes5;
                                        # empty: the local model's labels
: "${SHOT:=}"                           # examples per label in each prompt; empty: none
: "${SELECTSHOT_DIR:=/path/to/train}"   # labelled file to draw them from (SHOT > 0)
: "${LINK_THRESHOLD:=}"                 # spans with uncertainty above it go to the LLM; empty: the default (inference/llm/settings.py)
: "${LINK_BUDGET:=}"                    # e.g. 0.1: send the most uncertain 10 % of the spans instead
: "${COMBINE:=}"                        # override (the paper's rule) or fuse (first: python -m inference.llm.calibrate_link); empty: the default
: "${LINK_CALIBRATION:=}"               # for fuse; empty: link_calibration.json beside the linked output
: "${DRY_RUN:=0}"                       # 1: write the prompts, call nothing

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require INPUT_FILE
pick_llm dry_run
run_llm "$INPUT_FILE" "$SAVE_FILE" "$@"
