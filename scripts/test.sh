#!/usr/bin/env bash
# The two-command set-up, part two: the environment of quickstart.sh, then ruff (ruff.toml) and
# mypy (mypy.ini), then the test suite; a lint or type finding fails the run before the tests.
# Extra arguments go to pytest:  bash scripts/test.sh -x -k scripts
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
setup_env
cd "$REPO_ROOT"
"$PYTHON" -m ruff check --quiet . || die "ruff found problems (listed above; settings in ruff.toml)"
"$PYTHON" -m mypy || die "mypy found type errors (listed above; settings in mypy.ini)"
status=0
"$PYTHON" -m pytest -q "$@" || status=$?
if [[ $status == 5 ]]; then
    echo "$SCRIPT_NAME: pytest collected no tests" >&2
fi
exit "$status"
