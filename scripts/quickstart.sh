#!/usr/bin/env bash
# The two-command set-up, part one: make .venv if missing and install requirement.txt, train
# E-NER (GloVe encoder) on data/sample (or DATA_DIR), tag its test set with evidential
# uncertainty, link the uncertain spans to an LLM, and print the scores.
# The LLM is OpenAI or a compatible server when OPENAI_API_KEY or OPENAI_BASE_URL is set (model
# LLM_MODEL), a local chat model when LLM_CKPT is set (LLM_NAME llama / qwen / hf); otherwise
# the prompts are written without calling anything (dry run). Extra arguments go to train_ener.py.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [[ -z ${DATA_DIR:-} ]]; then
    DATA_DIR="$REPO_ROOT/data/sample"
    : "${DATANAME:=conll03}"  # the sample has CoNLL-2003's labels
fi
: "${MODEL_SAVE_DIR:=$REPO_ROOT/outputs/quickstart/model}"
: "${RESULTS_DIR:=$REPO_ROOT/outputs/quickstart}"
: "${ITERATION:=20}"
if [[ -n ${OPENAI_API_KEY:-} || -n ${OPENAI_BASE_URL:-} ]]; then
    DRY_RUN=0
elif [[ -n ${LLM_CKPT:-} ]]; then
    DRY_RUN=0
    : "${LLM_NAME:=hf}"
else
    DRY_RUN=1
    echo "no LLM configured (OPENAI_API_KEY, OPENAI_BASE_URL or LLM_CKPT): the linking stage is a dry run"
fi
export DATA_DIR DATANAME MODEL_SAVE_DIR RESULTS_DIR ITERATION DRY_RUN LLM_NAME LLM_CKPT
export MODEL_TYPE=ener ENCODER=glove UNCERTAINTY_TYPE=evidential TEST_MODE=ori

setup_env
export PYTHON
bash "$REPO_ROOT/scripts/pipeline.sh" "$@"

echo
"$PYTHON" - "$RESULTS_DIR/ori" <<'PY'
import json
import sys

def scores(name, path):
    with open(path, encoding="utf-8") as f:
        m = json.load(f)
    m = m.get("linked", m)
    print(f"{name} F1 {m['f1']:.4f}  (P {m['precision']:.4f}, R {m['recall']:.4f}; {m['n_gold']} gold entities)  {path}")

scores("local ", sys.argv[1] + ".jsonl.metrics.json")
try:
    scores("linked", sys.argv[1] + ".linked.jsonl.metrics.json")
except FileNotFoundError:
    print(f"linked: dry run, no LLM called; the prompts are in {sys.argv[1]}.linked.prompts.jsonl\n"
          "  to link: OPENAI_API_KEY=... (OpenAI), OPENAI_BASE_URL=http://localhost:8000/v1 LLM_MODEL=... "
          "(vLLM, Ollama), or LLM_CKPT=/path/to/Qwen2.5-7B-Instruct (a local model), then rerun")
PY
echo "quickstart finished in ${SECONDS} s"
