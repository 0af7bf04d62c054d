#!/usr/bin/env bash
# The two-command set-up, part two: the environment of quickstart.sh, then the test suite.
# Extra arguments go to pytest:  bash scripts/test.sh -x -k scripts
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
setup_env
cd "$REPO_ROOT"
status=0
"$PYTHON" -m pytest -q "$@" || status=$?
if [[ $status == 5 ]]; then
    echo "$SCRIPT_NAME: pytest collected no tests" >&2
fi
exit "$status"
