"""Inputs that are not what they claim: a calibration with a value of the wrong type, a
calibration fitted on other weights, a column file of document markers only, UTF-16 text. Each
is one line naming the file (or, for a stale calibration, a one-line warning and the defaults)
and leaves no output behind."""
import codecs
import json
import os
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import local_inference
from dataloaders.readers import read_dataset
from inference.local.dev_calibration import CALIBRATION, DEFAULT_CANDIDATE_THRESHOLD
from inference.local.learned.error_predictor import PREDICTOR
from models.checkpoint import FITTED
from tests.helpers import SAMPLE_DIR

TEST_FILE = os.path.join(SAMPLE_DIR, "test.txt")


def infer(ckpt, save, *flags):
    local_inference.main(["--inference_model", str(ckpt), "--input_file", TEST_FILE, "--save_file", str(save), *flags])
    with open(f"{save}.metrics.json", encoding="utf-8") as f:
        return json.load(f)


def one_line(ckpt, save, *flags, input_file=TEST_FILE):
    with pytest.raises(SystemExit) as exit_:
        local_inference.main(["--inference_model", str(ckpt), "--input_file", str(input_file),
                              "--save_file", str(save), *flags])
    message = exit_.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    assert not os.path.exists(save), "no output is left behind"
    return message


@pytest.fixture
def ckpt(spanner_ckpt, tmp_path):
    return shutil.copytree(spanner_ckpt, tmp_path / "ckpt")


def test_the_fitted_files_are_the_ones_the_checkpoint_names():
    assert {CALIBRATION, PREDICTOR} == set(FITTED)


def test_a_calibration_value_of_the_wrong_type_is_one_line(ckpt, tmp_path):
    """A string candidate_threshold was once a traceback that left an empty output behind."""
    path = ckpt / CALIBRATION
    data = json.loads(path.read_text())
    data["types"]["confidence"]["candidate_threshold"] = "0.3"
    path.write_text(json.dumps(data))
    message = one_line(ckpt, tmp_path / "o.jsonl")
    assert message.startswith(f"error: {path}: types.confidence.candidate_threshold is '0.3', not a number; "
                              f"recalibrate: python -m inference.local.calibrate {ckpt}")


def retrain_in_place(ckpt):
    """Weights of the same shapes and metadata but other values: what a new training leaves."""
    weights = str(ckpt / "model.safetensors")
    with safe_open(weights, framework="pt") as f:
        metadata = f.metadata()
    state = load_file(weights)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 0.01
    save_file(state, weights, metadata=metadata)


def test_a_calibration_of_other_weights_is_ignored_with_one_warning(ckpt, tmp_path, capsys):
    """A calibration fitted before the checkpoint was retrained was once applied silently."""
    calibrated = json.loads((ckpt / CALIBRATION).read_text())["types"]["confidence"]["candidate_threshold"]
    assert calibrated != DEFAULT_CANDIDATE_THRESHOLD, "the fixture's calibration moves the threshold"
    retrain_in_place(ckpt)
    metrics = infer(ckpt, tmp_path / "o.jsonl")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].endswith("; it is ignored")
    assert warnings[0].startswith(f"warning: {ckpt}/{CALIBRATION}: fitted on other weights (digest ")
    assert metrics["candidate_threshold"] == DEFAULT_CANDIDATE_THRESHOLD
    message = one_line(ckpt, tmp_path / "learned.jsonl", "--uncertainty_type", "learned")
    assert message.startswith(f"error: {ckpt}/{PREDICTOR}: fitted on other weights")


def test_the_calibration_written_at_training_holds_for_its_weights(ckpt, tmp_path, capsys):
    calibrated = json.loads((ckpt / CALIBRATION).read_text())["types"]["confidence"]["candidate_threshold"]
    assert infer(ckpt, tmp_path / "o.jsonl")["candidate_threshold"] == calibrated
    assert "warning:" not in capsys.readouterr().err


def test_a_column_file_of_document_markers_only_is_one_line(ckpt, tmp_path):
    """It was once read as raw text: '-DOCSTART- -X- -X- O' tagged as a sentence."""
    markers = tmp_path / "empty.txt"
    markers.write_text("-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n")
    assert one_line(ckpt, tmp_path / "o.jsonl", input_file=markers) == \
        f"error: {markers}: only -DOCSTART- lines, no sentence to read"


@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no_bom"])
def test_utf16_input_is_named_as_such(ckpt, tmp_path, bom):
    """UTF-16 was once told to convert with iconv -f latin1 (or, without a mark, read as text
    with a NUL between letters)."""
    path = tmp_path / "notes.txt"
    path.write_bytes((codecs.BOM_UTF16_LE if bom else b"") + "Angela Merkel visited Paris .\n".encode("utf-16-le"))
    assert one_line(ckpt, tmp_path / "o.jsonl", input_file=path) == (
        f"error: {path}: not UTF-8 text: UTF-16 (from its first bytes); convert it, e.g. iconv -f utf-16 -t utf-8")
    assert "Angela" in path.read_bytes().decode("utf-16")  # and that is the conversion that works


def test_latin1_input_still_points_at_latin1(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Zürich B-LOC\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text .*iconv -f latin1 -t utf-8"):
        read_dataset(str(path))


def test_a_config_json_damaged_in_its_values_leaves_no_output(ckpt, tmp_path):
    weights = load_file(str(ckpt / "model.safetensors"))
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "model_type": "ener"}))  # E-NER config, SpanNER weights
    message = one_line(ckpt, tmp_path / "o.jsonl")
    assert message.startswith(f"error: {ckpt}/model.safetensors: the weights do not match {ckpt}/config.json: they "
                              'were saved for model_type "spanner" (config.json: "ener")')
