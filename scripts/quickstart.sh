#!/usr/bin/env bash
# The two-command set-up, part one: make .venv if missing and install requirement.txt, train
# E-NER (GloVe encoder) on data/sample (or DATA_DIR), tag its test set with evidential
# uncertainty, link the uncertain spans to an LLM, and print the scores.
# The LLM is picked by common.sh's pick_llm: OpenAI or a compatible server when OPENAI_API_KEY or
# OPENAI_BASE_URL is set (model LLM_MODEL), a local chat model when LLM_CKPT is set (LLM_NAME
# llama / qwen / hf); otherwise the prompts are written without calling anything (dry run).
# Extra arguments go to train_ener.py.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ -z ${DATA_DIR:-} ]]; then
    DATA_DIR="$REPO_ROOT/data/sample"
    : "${DATANAME:=conll03}"  # the sample has CoNLL-2003's labels
fi
: "${MODEL_SAVE_DIR:=$REPO_ROOT/outputs/quickstart/model}"
: "${RESULTS_DIR:=$REPO_ROOT/outputs/quickstart}"
: "${ITERATION:=20}"
export DATA_DIR DATANAME MODEL_SAVE_DIR RESULTS_DIR ITERATION
export MODEL_TYPE=ener ENCODER=glove UNCERTAINTY_TYPE=evidential TEST_MODE=ori

setup_env
export PYTHON
bash "$REPO_ROOT/scripts/pipeline.sh" "$@"

echo
PYTHONPATH="$REPO_ROOT" "$PYTHON" -m inference.reports.summary "$RESULTS_DIR/ori"
if [[ ! -f $RESULTS_DIR/ori.linked.jsonl.metrics.json ]]; then
    echo "  to link: OPENAI_API_KEY=... (OpenAI), OPENAI_BASE_URL=http://localhost:8000/v1 LLM_MODEL=... (vLLM," \
         "Ollama), or LLM_CKPT=/path/to/Qwen2.5-7B-Instruct (a local model), then rerun $SCRIPT_NAME"
fi
echo "quickstart finished in ${SECONDS} s"
