#!/usr/bin/env bash
# Tag your own text: a trained checkpoint tags each line of INPUT_FILE and, when an LLM is
# configured, the spans it is unsure of go to the LLM sentence by sentence (local_inference.py's
# online mode). Writes SAVE_FILE, SAVE_FILE.metrics.json and the page HTML.
# The LLM is OpenAI or a compatible server when OPENAI_API_KEY, OPENAI_BASE_URL or BASE_URL is
# set (model LLM_MODEL), a local chat model when LLM_CKPT is set; with none, the local model
# tags alone. Edit the values below or override them from the environment; extra arguments go
# to local_inference.py (--overwrite to replace an earlier SAVE_FILE):
#   INPUT_FILE=notes.txt MODEL_SAVE_DIR=outputs/quickstart/model bash scripts/predict.sh
#   echo "Angela Merkel visited Zürich." | INPUT_FILE=- MODEL_SAVE_DIR=... OPENAI_API_KEY=... bash scripts/predict.sh
set -euo pipefail

: "${MODEL_SAVE_DIR:=/path/to/model}"    # the checkpoint from spanner_train.sh / ener_train.sh
: "${INPUT_FILE:=/path/to/text.txt}"     # one sentence or paragraph per line; - for stdin
: "${SAVE_FILE:=predictions.jsonl}"
: "${HTML:=${SAVE_FILE%.jsonl}.html}"    # the entities highlighted, the LLM's changes marked
: "${LLM_NAME:=}"                        # gpt / openai (OpenAI or a compatible server), llama / qwen / hf
                                         # (local); empty: hf with LLM_CKPT, else gpt
: "${LLM_MODEL:=}"                       # model name on the server (gpt / openai); empty: the default
: "${BASE_URL:=}"                        # OpenAI-compatible server, e.g. http://localhost:8000/v1 (vLLM,
                                         # Ollama); empty: OPENAI_BASE_URL, else OpenAI
: "${LLM_CKPT:=}"                        # local Hugging Face chat model folder (llama / qwen / hf)
: "${DATANAME:=}"                        # the paper's label descriptions (conll03, wnut16, ...); empty: the
                                         # checkpoint's labels
: "${LINK_THRESHOLD:=}"                  # spans with uncertainty above it go to the LLM; empty: the default (inference/llm/settings.py)
: "${LINK_BUDGET:=}"                     # e.g. 0.1: the threshold that sent 10 % on the checkpoint's dev split
: "${COMBINE:=}"                         # override (the paper's rule) or fuse (first: python -m inference.llm.calibrate_link); empty: the default
: "${LINK_CALIBRATION:=}"                # for fuse; empty: link_calibration.json beside the linked output
: "${SHOT:=}"                           # examples per label in each prompt; empty: none
: "${DRY_RUN:=0}"                        # 1: write the prompts, call nothing

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require MODEL_SAVE_DIR INPUT_FILE
require_number_or_empty LINK_THRESHOLD
pick_llm local
threshold=()
set_flag threshold --threshold LINK_THRESHOLD
"$PYTHON" "$REPO_ROOT/local_inference.py" --inference_model "$MODEL_SAVE_DIR" --input_file "$INPUT_FILE" \
    --save_file "$SAVE_FILE" --html "$HTML" "${threshold[@]}" "${LLM_FLAGS[@]}" "$@"
