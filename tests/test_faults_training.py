"""Training under faults: a run stopped after an epoch (Ctrl-C, or killed) and resumed ends with
the weights of the uninterrupted run; a resume with other flags, a training into a finished
checkpoint, and a checkpoint directory that is one of the run's inputs are each one clear line."""
import json
import os
import shutil
import signal
import warnings

import pytest
import torch
from safetensors.torch import load_file

import train_ener
import train_spanner
from models.checkpoint import FITTED
from models.lightning_module import SpanNERModule
from tests.helpers import SAMPLE_DIR

pytestmark = [pytest.mark.filterwarnings("ignore:.*does not have many workers"),
              pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated")]

TINY = ["--encoder", "glove", "--lstm_hidden", "8", "--batch_size", "16", "--early_stop", "10", "--no_calibrate"]


class Killed(Exception):
    """Stands for SIGKILL: nothing after the last epoch's resume checkpoint survives."""


def train(main, argv, stop_at_epoch=None, stop_with=Killed):
    """main(argv) recording every step's (epoch, loss) and the weights training ends with;
    with `stop_at_epoch`, `stop_with` is raised at that epoch's first step."""
    losses, final = [], {}
    step = SpanNERModule.training_step

    def training_step(self, batch, i):
        if self.current_epoch == stop_at_epoch:
            raise stop_with()
        loss = step(self, batch, i)
        losses.append((self.current_epoch, loss.item()))
        return loss

    def on_train_end(self):
        final.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mp.setattr(SpanNERModule, "training_step", training_step)
            mp.setattr(SpanNERModule, "on_train_end", on_train_end, raising=False)
            summary = main(argv)
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT once it has met a Ctrl-C
    return summary, losses, final


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("uninterrupted"))
    return train(train_ener.main, ["--data_dir", SAMPLE_DIR, "--model_save_dir", out, "--iteration", "3", *TINY])


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl_c", "kill"])
def test_a_stopped_training_resumed_ends_with_the_uninterrupted_weights(uninterrupted, tmp_path, stop):
    """Stopped in epoch 2 (the resume checkpoint holds epoch 1's end), then --resume: epoch 2's
    batches, dropout masks and so losses, and the final weights, are the uninterrupted run's."""
    argv = ["--data_dir", SAMPLE_DIR, "--model_save_dir", str(tmp_path / "m"), "--iteration", "3", *TINY]
    if stop == "ctrl_c":
        with pytest.raises(SystemExit) as exit_:
            train(train_ener.main, argv, stop_at_epoch=2, stop_with=KeyboardInterrupt)
        assert exit_.value.code == 130 and "continue with the same command and --resume" in str(exit_.value)
    else:
        with pytest.raises(Killed):
            train(train_ener.main, argv, stop_at_epoch=2)
    summary, losses, final = train(train_ener.main, argv + ["--resume"])
    ref_summary, ref_losses, ref_final = uninterrupted
    assert {epoch for epoch, _ in losses} == {2}, "the resumed run starts where the stopped one ended"
    assert losses == [(e, loss) for e, loss in ref_losses if e == 2]
    assert final.keys() == ref_final.keys() and all(torch.equal(final[k], ref_final[k]) for k in final)
    assert (summary["best_dev_f1"], summary["steps"]) == (ref_summary["best_dev_f1"], ref_summary["steps"])
    assert not os.path.exists(tmp_path / "m" / "resume")


@pytest.fixture(scope="module")
def small_data(write_data_dir, sample_sentences):
    return write_data_dir(sample_sentences[:30], name="small")


@pytest.mark.slow
def test_resuming_a_killed_bert_run_with_glove_is_one_line(small_data, tiny_bert_dir, tmp_path):
    out = str(tmp_path / "m")
    bert = ["--data_dir", small_data, "--model_save_dir", out, "--iteration", "2", "--batch_size", "8",
            "--no_calibrate", "--encoder", "bert", "--bert_config_dir", tiny_bert_dir]
    with pytest.raises(Killed):
        train(train_spanner.main, bert, stop_at_epoch=1)
    glove = ["--data_dir", small_data, "--model_save_dir", out, "--iteration", "2", "--batch_size", "8",
             "--no_calibrate", "--encoder", "glove", "--lstm_hidden", "8", "--resume"]
    with pytest.raises(SystemExit) as exit_:
        train_spanner.main(glove)
    message = exit_.value.code
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith(f"error: --resume: {out}/resume/last.ckpt continues a run with other settings: ")
    assert 'encoder "bert" (now "glove")' in message
    os.remove(os.path.join(out, "resume", "run.json"))  # a run killed before its settings were recorded
    with pytest.raises(SystemExit) as exit_:
        train_spanner.main(glove)
    assert exit_.value.code.startswith(f"error: --resume: {out}/resume/last.ckpt holds the training of another model")
    assert "\n" not in exit_.value.code


@pytest.mark.slow
def test_training_into_a_finished_checkpoint_says_so_and_drops_its_calibration(spanner_ckpt, tmp_path, caplog):
    out = tmp_path / "m"
    shutil.copytree(spanner_ckpt, out)
    assert set(FITTED) <= set(os.listdir(out)), "the fixture's training calibrates"
    old = load_file(str(out / "model.safetensors"))
    with caplog.at_level("WARNING", logger="train"):
        train(train_spanner.main, ["--data_dir", SAMPLE_DIR, "--model_save_dir", str(out), "--iteration", "1",
                                   "--seed", "7", "--overwrite", *TINY])
    assert f"{out} holds a finished model" in caplog.text
    assert not set(FITTED) & set(os.listdir(out)), "what was fitted on the old weights is gone"
    new = load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(old[k], new[k]) for k in old)


def test_a_checkpoint_directory_that_is_an_input_is_refused_before_anything_is_written(small_data, tiny_bert_dir):
    before = {name: open(os.path.join(tiny_bert_dir, name), "rb").read() for name in os.listdir(tiny_bert_dir)}
    with pytest.raises(SystemExit) as exit_:
        train_spanner.main(["--data_dir", small_data, "--model_save_dir", tiny_bert_dir, "--encoder", "bert",
                            "--bert_config_dir", tiny_bert_dir, "--no_calibrate"])
    assert exit_.value.code == (f"error: {tiny_bert_dir}/config.json: is also the input (--bert_config_dir); writing "
                                "it would destroy that input; choose another output file")
    assert {name: open(os.path.join(tiny_bert_dir, name), "rb").read() for name in os.listdir(tiny_bert_dir)} == before


def test_a_config_beside_other_weights_is_one_line(spanner_ckpt, ener_ckpt, tmp_path):
    """A SpanNER config.json beside E-NER weights, or the labels reordered: the weights'
    metadata says what they were saved for, and loading refuses the pair."""
    from models.checkpoint import load_checkpoint

    mixed = tmp_path / "mixed"
    shutil.copytree(spanner_ckpt, mixed)
    shutil.copy(os.path.join(ener_ckpt, "model.safetensors"), mixed / "model.safetensors")
    with pytest.raises(ValueError, match=r"model.safetensors: the weights do not match .*config.json: they were saved "
                                         r'for model_type "ener" \(config.json: "spanner"\)'):
        load_checkpoint(str(mixed))
    reordered = tmp_path / "reordered"
    shutil.copytree(spanner_ckpt, reordered)
    config = json.loads((reordered / "config.json").read_text())
    labels = config["labels"]
    (reordered / "config.json").write_text(json.dumps({**config, "labels": [labels[0], *reversed(labels[1:])]}))
    with pytest.raises(ValueError, match="they were saved for labels"):
        load_checkpoint(str(reordered))
