"""python -m inference.reports.summary: the closing lines of a run, or one line of error."""
import json
import subprocess
import sys

import pytest

from inference.reports.summary import main
from tests.helpers import REPO

SCORES = {"f1": 0.5, "precision": 0.5, "recall": 0.5, "n_gold": 4}


def test_local_and_linked_lines(tmp_path, capsys):
    (tmp_path / "ori.jsonl.metrics.json").write_text(json.dumps(SCORES))
    (tmp_path / "ori.linked.jsonl.metrics.json").write_text(json.dumps({"linked": {**SCORES, "f1": 0.75}}))
    main([str(tmp_path / "ori")])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("local  F1 0.5000") and out[1].startswith("linked F1 0.7500")


def test_a_missing_or_malformed_metrics_file_is_one_line(tmp_path):
    stem = str(tmp_path / "ori")
    with pytest.raises(SystemExit, match=f"^error: {stem}.jsonl.metrics.json: No such file or directory$"):
        main([stem])
    (tmp_path / "ori.jsonl.metrics.json").write_text('{"f1": 0.5')
    with pytest.raises(SystemExit, match=f"^error: {stem}.jsonl.metrics.json: not a metrics file with scores$"):
        main([stem])
    run = subprocess.run([sys.executable, "-m", "inference.reports.summary"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "the following arguments are required: stem" in run.stderr
