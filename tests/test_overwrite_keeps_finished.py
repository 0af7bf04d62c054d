"""An --overwrite link run (or one a new threshold starts afresh) never replaces a finished
output until its own spans are answered: with the server failing, the finished SAVE_FILE, its
metrics and settings stay byte for byte, the run exits 3, and a later rerun completes."""
import os

import pytest

from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import Fail, LLMServer
from tests.test_faults_llm import answer, link, statuses
from utils.owned_output import KEPT, kept_until_finished

SUFFIXES = ("", ".metrics.json", ".settings.json")


def snapshot(save):
    return {suffix: open(f"{save}{suffix}", "rb").read() for suffix in SUFFIXES if os.path.isfile(f"{save}{suffix}")}


def no_kept_files(folder):
    return not [name for name in os.listdir(folder) if name.endswith(KEPT)]


@pytest.fixture
def finished(tmp_path):
    with LLMServer(answer=answer) as server:
        link(tmp_path, server)
    save = tmp_path / "linked.jsonl"
    assert statuses(save) == ["linked"] * 3 + ["cached"] * 6  # the three records ask the same three prompts
    before = snapshot(save)
    assert set(before) == set(SUFFIXES)
    return save, before


def test_a_failing_overwrite_run_keeps_the_finished_output_then_a_rerun_completes(tmp_path, finished, capsys):
    save, before = finished
    # another model (not in the cache), and every request fails
    with LLMServer(answer=answer, script=[Fail(500)] * 9) as server, pytest.raises(SystemExit) as exit_:
        link(tmp_path, server, "--overwrite", "--model", "other", "--max_attempts", "1")
    assert exit_.value.code == 3
    assert snapshot(save) == before and no_kept_files(tmp_path)
    err = capsys.readouterr().err
    assert f"{save}: this run did not finish its own output, so it replaced nothing" in err
    assert "error: 9 spans failed" in err
    with LLMServer(answer=answer) as server:
        metrics = link(tmp_path, server, "--overwrite", "--model", "other")
    assert metrics["llm"]["failed"] == 0 and statuses(save) == ["linked"] * 3 + ["cached"] * 6
    assert '"model": "other"' in open(f"{save}.settings.json").read() and no_kept_files(tmp_path)


def test_a_fatal_error_in_an_overwrite_run_keeps_the_finished_output(tmp_path, finished):
    save, before = finished
    with LLMServer(answer=answer, api_key="needed") as server, pytest.raises(SystemExit) as exit_:
        link(tmp_path, server, "--overwrite", "--model", "other")  # no key: 401, the run stops
    assert str(exit_.value.code).startswith("stopped: ")
    assert snapshot(save) == before and no_kept_files(tmp_path)


def test_a_new_threshold_whose_spans_fail_keeps_the_finished_output(tmp_path):
    """A new threshold starts the output afresh without --overwrite (relinked from the cache):
    the spans it now sends, never asked before, fail."""
    save = tmp_path / "linked.jsonl"
    with LLMServer(answer=answer) as server:
        link(tmp_path, server, "--threshold", "0.95")  # every span at 0.9 stays local
    assert statuses(save) == ["below_threshold"] * 9
    before = snapshot(save)
    with LLMServer(answer=answer, script=[Fail(500)] * 9) as server, pytest.raises(SystemExit) as exit_:
        link(tmp_path, server, "--threshold", "0.5", "--max_attempts", "1")
    assert exit_.value.code == 3 and snapshot(save) == before and no_kept_files(tmp_path)
    with LLMServer(answer=answer) as server:
        link(tmp_path, server, "--threshold", "0.5")
    assert statuses(save) == ["linked"] * 3 + ["cached"] * 6


# -- kept_until_finished on its own ----------------------------------------------------------

def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def output(tmp_path, metrics=True):
    save = str(tmp_path / "out.jsonl")
    write(save, '{"id": 0, "old": true}\n')
    write(save + ".settings.json", '{"old": 1}')
    if metrics:
        write(save + ".metrics.json", '{"f1": 0.9}')
    return save


def start_afresh(save, metrics=True):
    write(save, '{"id": 0, "new": true}\n')
    write(save + ".settings.json", '{"new": 1}')
    if metrics:
        write(save + ".metrics.json", '{"f1": 0.1}')


@pytest.mark.parametrize("old_metrics", [True, False])
def test_unfinished_puts_back_every_file_as_it_was(tmp_path, old_metrics):
    save = output(tmp_path, metrics=old_metrics)
    before = snapshot(save)
    with kept_until_finished(save, lambda path: False):
        assert not os.path.exists(save) and os.path.isfile(save + KEPT)
        start_afresh(save)
    assert snapshot(save) == before and no_kept_files(tmp_path)
    assert os.path.isfile(save + ".metrics.json") == old_metrics  # the new run's metrics are not left behind


def test_finished_keeps_the_new_output_and_drops_the_old(tmp_path):
    save = output(tmp_path)
    with kept_until_finished(save, lambda path: open(path).read() == '{"id": 0, "new": true}\n'):
        start_afresh(save)
    assert snapshot(save) == {"": b'{"id": 0, "new": true}\n', ".metrics.json": b'{"f1": 0.1}',
                              ".settings.json": b'{"new": 1}'}
    assert no_kept_files(tmp_path)


def test_an_error_puts_it_back(tmp_path):
    save = output(tmp_path)
    before = snapshot(save)
    with pytest.raises(KeyboardInterrupt), kept_until_finished(save, lambda path: True):
        start_afresh(save)
        raise KeyboardInterrupt
    assert snapshot(save) == before and no_kept_files(tmp_path)


def test_nothing_there_leaves_an_unfinished_output_to_continue(tmp_path):
    save = str(tmp_path / "out.jsonl")
    with kept_until_finished(save, lambda path: False):
        start_afresh(save)
    assert open(save).read() == '{"id": 0, "new": true}\n'  # a rerun continues it
    assert no_kept_files(tmp_path)


def test_what_a_killed_run_set_aside_is_the_output_kept(tmp_path):
    save = output(tmp_path)
    before = snapshot(save)
    for suffix in SUFFIXES:  # a run killed after setting them aside, with its own half-written output
        os.replace(save + suffix, save + suffix + KEPT)
    start_afresh(save)
    with kept_until_finished(save, lambda path: False):
        start_afresh(save)
    assert snapshot(save) == before and no_kept_files(tmp_path)


def test_a_link_is_kept_a_link_and_its_target_put_back(tmp_path):
    real = output(tmp_path)
    before = open(real, "rb").read()
    save = str(tmp_path / "via.jsonl")
    os.symlink(real, save)
    for suffix in (".metrics.json", ".settings.json"):
        os.symlink(real + suffix, save + suffix)
    with kept_until_finished(save, lambda path: False):
        start_afresh(real)
    assert os.path.islink(save) and open(real, "rb").read() == before and no_kept_files(tmp_path)
