"""--budget: the threshold that sends the most uncertain FRACTION of the listed spans."""
import json

import numpy as np
import pytest

import llm_inference
from inference.budget import sent_share, table_threshold, threshold_for_budget, uncertainty_table
from tests.support.loopback_server import LLMServer
from inference.reports.budget_curve import caught, ceiling
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.test_llm_inference import answer, write_input


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.25, 0.5, 0.99, 1.0])
def test_the_budget_sends_the_most_uncertain_share(fraction):
    values = np.random.default_rng(0).random(400)
    threshold = threshold_for_budget(values, fraction)
    sent = values > threshold
    assert sent.sum() == int(fraction * 400)
    assert values[sent].min(initial=1.0) > values[~sent].max(initial=0.0)  # the most uncertain ones


def test_equally_uncertain_spans_are_sent_together_and_never_above_the_budget():
    values = [0.9, 0.9, 0.9, 0.5, 0.5, 0.1]
    assert sent_share(values, threshold_for_budget(values, 0.34)) == 0.0  # 3 tied, 2 allowed: none
    assert sent_share(values, threshold_for_budget(values, 0.5)) == pytest.approx(0.5)
    assert threshold_for_budget([], 0.1) is None


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_a_budget_outside_0_1_is_refused(fraction):
    with pytest.raises(ValueError, match="budget"):
        threshold_for_budget([0.5], fraction)


def test_the_dev_table_gives_the_threshold_of_a_budget_on_similar_data():
    rng = np.random.default_rng(1)
    dev, fresh = rng.beta(2, 5, 5000), rng.beta(2, 5, 5000)
    table = uncertainty_table(dev)
    for fraction in (0.05, 0.1, 0.2):
        assert sent_share(dev, table_threshold(table, fraction)) == pytest.approx(fraction, abs=0.001)
        assert sent_share(fresh, table_threshold(table, fraction)) == pytest.approx(fraction, abs=0.03)
    assert sent_share(dev, table_threshold(table, 1.0)) == 1.0


def test_llm_inference_budget_sends_that_share_and_reports_it(tmp_path):
    input_file, save = write_input(tmp_path), str(tmp_path / "linked.jsonl")
    with LLMServer(answer=answer) as server:  # 30 spans; uncertainties 0.9 x6, 0.7 x6, 0.5 x6, ...
        metrics = llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "conll03",
                                      "--base_url", server.base_url, "--budget", "0.4"])
    assert len(server.prompts) == 12 and metrics["sent"] == 12  # the 0.9 and 0.7 spans
    on_disk = json.load(open(save + ".metrics.json"))
    assert (on_disk["budget"], on_disk["threshold"], on_disk["sent_share"]) == (0.4, 0.5, 0.4)


def test_a_bad_budget_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        llm_inference.main(["--input_file", write_input(tmp_path), "--save_file", str(tmp_path / "x.jsonl"),
                            "--budget", "2", "--dry_run"])
    assert exit_.value.code == 2 and "--budget" in capsys.readouterr().err


def test_caught_counts_the_errors_a_budget_sends_and_the_ceiling_bounds_it():
    unc = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    errors = [True, False, True, False, False, False, False, False, False, True]
    assert caught(unc, errors, 0.2) == pytest.approx(1 / 3)  # 0.9 and 0.8 sent
    assert caught(unc, errors, 0.3) == pytest.approx(2 / 3)
    assert ceiling(10, 3, 0.2) == pytest.approx(2 / 3) and ceiling(10, 3, 0.5) == 1.0
    assert caught(unc, [False] * 10, 0.2) is None and ceiling(10, 0, 0.2) is None


def test_the_bench_budget_report_reads_a_local_output(tmp_path):
    from bench.budget import budget_report, plot_caught

    report = budget_report(write_input(tmp_path, n=10))  # 50 spans, 30 errors (German, Peter, Smith)
    assert (report["listed"], report["errors"], report["never_listed"]) == (50, 30, 10)
    rows = {row["budget"]: row for row in report["budgets"]}
    assert rows[0.2]["caught"] == pytest.approx(10 / 30) and rows[0.2]["ceiling"] == pytest.approx(10 / 30)
    assert rows[0.05]["oracle_f1"] < rows[0.2]["oracle_f1"]
    assert plot_caught({"test": report}, str(tmp_path / "plots" / "c.png"), "t").endswith("c.png")
    assert (tmp_path / "plots" / "c.png").stat().st_size > 1000


@pytest.mark.parametrize("held", [0, 1, 10, 1 << 22])
def test_a_streamed_threshold_equals_the_sorted_one(held, monkeypatch):
    """`streamed_threshold` reads the values again per pass instead of holding them; with any
    number held in memory at the end (0: every bit refined), it is `threshold_for_budget` exactly."""
    import numpy as np

    import inference.budget as budget

    monkeypatch.setattr(budget, "HELD", held)
    if held < 100:  # narrower buckets: more passes, each faster
        monkeypatch.setattr(budget, "BUCKET_BITS", 8)
    rng = np.random.default_rng(held)
    for trial in range(16):
        n = int(rng.integers(0, 300))
        values = [rng.random(n), rng.integers(0, 5, n) / 4.0, rng.normal(size=n),
                  np.concatenate([rng.random(n // 2), -rng.random(n - n // 2) * 1e-300])][trial % 4]
        groups = [list(values[i:i + 3]) for i in range(0, n, 3)]
        passes = []
        for fraction in (0.01, 0.1, 0.33, 0.5, 1.0):
            got = budget.streamed_threshold(lambda: passes.append(1) or groups, fraction)
            assert got == budget.threshold_for_budget(values, fraction)
    assert len(passes) >= 2  # the values were read again, not kept
