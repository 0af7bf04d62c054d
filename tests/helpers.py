"""Helpers the test modules share (conftest.py keeps only fixtures)."""
import copy
import os
import signal
import time
from dataclasses import dataclass

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(REPO, "data", "sample")
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def to_bio(spans, n_words):
    """(start, end, label) spans, end inclusive, as BIO tags: the input seqeval scores."""
    tags = ["O"] * n_words
    for s, e, label in spans:
        tags[s:e + 1] = [f"B-{label}"] + [f"I-{label}"] * (e - s)
    return tags


def ctrl_c_works():
    """Popen's preexec_fn for a child the test will Ctrl-C (SIGINT): a job started in the
    background by a shell without job control inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt; the child gets the default disposition back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(condition, seconds=60):
    """Poll `condition` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_real_openai(monkeypatch):
    """Imported into a test module, keeps every test in it off the real OpenAI."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@dataclass
class Run:
    summary: dict
    losses: list  # (epoch, loss) per training step
    eval_modules: set  # names of submodules found in eval mode during a training step
    model: torch.nn.Module  # the live model as it was at its last checkpoint
    featurizer: object
    path: str


def train_recorded(main, argv):
    """Train through a trainer's `main` (train_spanner.main / train_ener.main), recording the
    step losses and the model as it was checkpointed."""
    import models.training
    from models.checkpoint import save_checkpoint
    from models.lightning_module import SpanNERModule

    losses, saved, eval_modules, step = [], {}, set(), SpanNERModule.training_step

    def training_step(self, batch, i):
        eval_modules.update(name for name, m in self.model.named_modules() if not m.training)
        loss = step(self, batch, i)
        losses.append((self.current_epoch, loss.item()))
        return loss

    def save(path, model, featurizer, config):
        save_checkpoint(path, model, featurizer, config)
        saved.update(model=copy.deepcopy(model).eval(), featurizer=featurizer)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SpanNERModule, "training_step", training_step)
        mp.setattr(models.training, "save_checkpoint", save)
        summary = main(argv)
    return Run(summary, losses, eval_modules, saved["model"], saved["featurizer"], summary["model_save_dir"])
