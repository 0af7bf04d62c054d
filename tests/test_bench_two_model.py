"""bench/run.py's two-model rows: the checkpoint copy that holds the two-model predictor is the
benchmark's own (another folder there is never overwritten), and its rows reach the table."""
import pytest

from bench.run import TWO, Bench, budget_markdown


def bench_in(tmp_path):
    class Args:
        force, out = True, str(tmp_path / "results.json")
    bench = Bench(Args)
    bench.runs = str(tmp_path)
    first = tmp_path / f"conll03_{TWO['first']}"
    first.mkdir()
    (first / "config.json").write_text('{"labels": ["O", "PER"]}')
    (first / "model.safetensors").write_bytes(b"weights")
    return bench, first, tmp_path / f"conll03_{TWO['kind']}"


def test_the_copy_is_made_once_and_kept(tmp_path):
    bench, first, copy = bench_in(tmp_path)
    bench.copy_checkpoint("conll03", TWO["first"], TWO["kind"])
    assert (copy / "model.safetensors").read_bytes() == b"weights"
    (copy / "error_predictor.json").write_text("{}")  # calibration's output stays
    bench.copy_checkpoint("conll03", TWO["first"], TWO["kind"])
    assert (copy / "error_predictor.json").read_text() == "{}"
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "error_predictor.json", "model.safetensors"]


def test_a_folder_holding_another_model_is_never_overwritten(tmp_path):
    bench, first, copy = bench_in(tmp_path)
    copy.mkdir()
    (copy / "model.safetensors").write_bytes(b"another model")
    with pytest.raises(SystemExit, match="not a copy"):
        bench.copy_checkpoint("conll03", TWO["first"], TWO["kind"])
    assert (copy / "model.safetensors").read_bytes() == b"another model"


def test_the_two_model_rows_reach_the_budget_table():
    rows = [{"caught": c, "ceiling": 1.0, "oracle_f1": 0.95} for c in (0.3, 0.6, 0.8)]
    r = {"calibrate": {f"conll03/{TWO['kind']}": {"dev": {"learned": {
            "caught_5": 0.4, "caught_10": 0.7, "caught_20": 0.9, "auroc": 0.95}}}},
         "budget": {f"conll03/{TWO['kind']}/ori/learned": {
             "budgets": rows, "errors": 10, "listed": 100, "auroc": 0.9, "ece": 0.05, "f1": 0.9}}}
    lines = [x for x in budget_markdown(r) if x.startswith(f"| {TWO['name']} |")]
    assert lines == [f"| {TWO['name']} | learned | dev | | 40 / 70 / 90 | | 0.950 | | |",
                     f"| {TWO['name']} | learned | ori | 10 / 100 | 30 / 60 / 80 | 100 / 100 / 100 | 0.900 | 0.050 "
                     "| 95.00 / 95.00 / 95.00 (90.00) |"]
