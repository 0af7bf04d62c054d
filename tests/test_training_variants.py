"""bench/training_variants.py reuses a trained variant only when it was trained with the
variant's flags and finished."""
import json

import pytest

from bench.training_variants import SEED, train


def write_model(folder, train_args):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"train_args": train_args, "dev_f1": 0.9, "epoch": 1}))


def args_for(tmp_path):
    class Args:
        runs, data_dir = str(tmp_path), str(tmp_path / "data")
    return Args


def test_a_finished_variant_with_its_flags_is_reused(tmp_path):
    write_model(tmp_path / "v", {"seed": SEED, "iteration": 2})
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train_v.log").write_text(
        "x train: epoch 0: dev F1 0.5000, saved\nx train: epoch 2: dev F1 0.9000, saved\n"
        'x train: done: {"train_seconds": 3.0}\n')
    model_dir, entry = train(args_for(tmp_path), "v", {"iteration": 2})
    assert model_dir == str(tmp_path / "v")
    assert entry["dev_f1_per_epoch"] == [0.5, None, 0.9] and entry["best_epoch"] == 2 and entry["train_seconds"] == 3.0


@pytest.mark.parametrize("train_args, log", [
    ({"seed": SEED, "iteration": 3}, 'x train: done: {}\n'),  # other flags
    ({"seed": 1, "iteration": 2}, 'x train: done: {}\n'),  # other seed
    ({"seed": SEED, "iteration": 2}, "x train: epoch 0: dev F1 0.5000, saved\n"),  # killed before the end
])
def test_another_or_an_unfinished_model_is_never_taken_nor_overwritten(tmp_path, train_args, log):
    write_model(tmp_path / "v", train_args)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train_v.log").write_text(log)
    with pytest.raises(SystemExit, match="unfinished training or another model"):
        train(args_for(tmp_path), "v", {"iteration": 2})
    assert json.loads((tmp_path / "v" / "config.json").read_text())["train_args"] == train_args


def test_the_bench_model_is_read_from_bench_run_and_never_trained_here(tmp_path, monkeypatch):
    import bench.training_variants as tv

    monkeypatch.setattr(tv, "BENCH_RUNS", str(tmp_path))
    with pytest.raises(SystemExit, match="run bench/run.py first"):
        tv.bench_model("conll03_ener")
    write_model(tmp_path / "conll03_ener", {"seed": SEED, "iteration": 12})
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train_conll03_ener.log").write_text("x train: epoch 0: dev F1 0.9000, saved\n")
    with pytest.raises(SystemExit, match="run bench/run.py first"):  # unfinished: no closing line
        tv.bench_model("conll03_ener")
    (tmp_path / "logs" / "train_conll03_ener.log").write_text(
        'x train: epoch 0: dev F1 0.9000, saved\nx train: done: {"train_seconds": 5.0}\n')
    model_dir, entry = tv.bench_model("conll03_ener")
    assert model_dir == str(tmp_path / "conll03_ener")
    assert (entry["flags"], entry["dev_f1_per_epoch"], entry["train_seconds"]) == ({"iteration": 12}, [0.9], 5.0)
