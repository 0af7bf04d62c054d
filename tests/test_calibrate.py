"""Dev calibration: what training stores in the checkpoint (calibration.json, the error
predictor), the `learned` uncertainty, the dev-calibrated candidate default and online --budget."""
import json
import os
import shutil

import numpy as np
import pytest

import local_inference
from inference.local import calibrate
from inference.local.dev_calibration import CALIBRATION, DevCalibration
from inference.local.learned.second_model import FEATURES as SECOND_FEATURES
from inference.local.learned.second_model import SecondModel, describe
from inference.local.learned.error_predictor import PREDICTOR, ErrorPredictor
from dataloaders.readers import Sentence
from inference.local.learned.span_features import BASE, WordFlags, feature_names, sentence_features, train_lexicon
from inference.reports.calibration import auroc
from tests.helpers import SAMPLE_DIR, no_real_openai  # noqa: F401 (autouse fixture)
from utils.jsonl import read_jsonl

TEST_FILE = os.path.join(SAMPLE_DIR, "test.txt")
LABELS = ["O", "LOC", "ORG", "PER"]


def infer(ckpt, save, *args):
    local_inference.main(["--inference_model", ckpt, "--save_file", str(save), "--input_file", TEST_FILE, *args])
    return read_jsonl(str(save)), json.load(open(f"{save}.metrics.json"))


def test_training_leaves_a_plain_json_calibration_in_the_checkpoint(ener_ckpt):
    calib = DevCalibration.load(ener_ckpt)
    assert set(calib.data["types"]) >= {"evidential", "confidence", "entropy", "learned"}
    entry = calib.data["types"]["evidential"]
    assert entry["temperature"] > 0 and entry["budget_table"] == sorted(entry["budget_table"])
    predictor = json.load(open(os.path.join(ener_ckpt, PREDICTOR)))
    assert predictor["features"] == feature_names(predictor["labels"])
    assert len(predictor["coef"]) == len(predictor["mean"]) == len(predictor["features"])


def test_learned_uncertainty_keeps_the_entities_and_is_a_probability(ener_ckpt, tmp_path):
    plain, plain_metrics = infer(ener_ckpt, tmp_path / "plain.jsonl")
    learned, metrics = infer(ener_ckpt, tmp_path / "learned.jsonl", "--uncertainty_type", "learned")
    assert [[(e["span"], e["pred"]) for e in r["entity"]] for r in learned] == \
        [[(e["span"], e["pred"]) for e in r["entity"]] for r in plain]
    assert metrics["f1"] == plain_metrics["f1"] and metrics["uncertainty_type"] == "learned"
    spans = [e for r in learned for e in r["entity"]]
    unc = np.array([e["uncertainty"] for e in spans])
    assert ((unc > 0) & (unc < 1)).all() and len(set(unc.round(6))) > 1
    assert [e["confidence"] for e in spans] == pytest.approx(list(1 - unc))
    # the candidate default is the dev-calibrated one of the base type
    assert metrics["candidate_threshold"] == DevCalibration.load(ener_ckpt).candidate_default("evidential")


def test_online_budget_uses_the_threshold_stored_on_dev(spanner_ckpt, tmp_path):
    records, _ = infer(spanner_ckpt, tmp_path / "local.jsonl")
    threshold = DevCalibration.load(spanner_ckpt).budget_threshold("confidence", 0.3)
    prompts = tmp_path / "prompts.jsonl"
    local_inference.main(["--inference_model", spanner_ckpt, "--save_file", str(tmp_path / "online.jsonl"),
                          "--input_file", TEST_FILE, "--dry_run", "--budget", "0.3", "--prompts_file", str(prompts)])
    expected = sum(e["uncertainty"] > threshold for r in records for e in r["entity"])
    assert 0 < expected == len(read_jsonl(str(prompts)))


def test_an_uncalibrated_checkpoint_says_how_to_calibrate(spanner_ckpt, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(spanner_ckpt, bare, ignore=shutil.ignore_patterns(CALIBRATION, PREDICTOR))
    for flags in (["--dry_run", "--budget", "0.1"], ["--uncertainty_type", "learned"]):
        with pytest.raises(SystemExit) as exit_:
            local_inference.main(["--inference_model", str(bare), "--save_file", str(tmp_path / "o.jsonl"),
                                  "--input_file", TEST_FILE, *flags])
        assert str(exit_.value).startswith("error: ") and "inference.local.calibrate" in str(exit_.value)
    records, metrics = infer(str(bare), tmp_path / "plain.jsonl")  # local inference as before
    assert metrics["candidate_threshold"] == 0.4 and "temperature" not in metrics
    calibrate.main([str(bare), "--data_dir", SAMPLE_DIR])
    assert DevCalibration.load(str(bare)).calibrated and os.path.isfile(bare / PREDICTOR)


def test_the_calibrate_command_answers_a_bad_checkpoint_in_one_line(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        calibrate.main([str(tmp_path), "--data_dir", SAMPLE_DIR])
    assert str(exit_.value).startswith("error: ") and "not a checkpoint directory" in str(exit_.value)


def test_features_see_unknown_words_casing_and_a_dropped_competitor():
    words = ["Zorblax", "visited", "paris", "today"]
    spans = [(0, 0), (0, 1), (1, 1), (2, 2), (3, 3)]
    probs = np.array([[0.1, 0.1, 0.1, 0.7], [0.3, 0.1, 0.5, 0.1], [0.9, 0.05, 0.03, 0.02],
                      [0.55, 0.4, 0.03, 0.02], [0.97, 0.01, 0.01, 0.01]])
    records = [{"span": [0, 0], "pred": "PER", "candidate": False},
               {"span": [2, 2], "pred": "O", "candidate": True}]
    lexicon = {"Zorblax": {"PER": 1, "ORG": 3}}
    flags = WordFlags(lambda w: w.lower() != "zorblax", {"visited", "paris", "today"}, lexicon,
                      {"Zorblax": {"PER": 1, "ORG": 1, "O": 2}})
    rows = sentence_features(records, spans, probs, 1 - probs.max(1), LABELS, words, flags)
    f = [dict(zip(feature_names(LABELS), row)) for row in rows]
    assert (f[0]["unknown_encoder"], f[0]["unknown_train"], f[0]["capitalised"], f[0]["at_start"]) == (1, 1, 1, 1)
    assert f[0]["competitor"] == 1 and f[0]["competitor_p"] == pytest.approx(0.5)  # (0, 1) ORG lost the overlap
    assert f[0]["margin"] == pytest.approx(0.6) and f[0]["label=PER"] == 1
    assert (f[0]["seen_entity"], f[0]["seen_label"], f[1]["seen_entity"]) == (1, 0.25, 0)
    assert (f[0]["word_entity"], f[0]["word_label"], f[1]["word_entity"]) == (0.5, 0.25, 0)
    assert (f[1]["candidate"], f[1]["lower"], f[1]["competitor"], f[1]["p_entity"]) == (1, 1, 0, 0.4)
    assert len(BASE) + len(LABELS) == rows.shape[1]


def test_the_training_lexicon_counts_every_occurrence_in_any_order():
    # "Paris" is outside an entity once before and once after its one entity occurrence
    sents = [Sentence(["Paris", "Hilton"], [(0, 1, "PER")]), Sentence(["in", "Paris"], [(1, 1, "LOC")]),
             Sentence(["Paris", "is", "big"], []), Sentence(["paris", "Paris"], [])]
    results = [train_lexicon(order) for order in (sents, sents[::-1], sents[2:] + sents[:2])]
    vocab, entities, words = results[0]
    assert all(r == results[0] for r in results)
    assert words["Paris"] == {"PER": 1, "LOC": 1, "O": 2} and words["Hilton"] == {"PER": 1}
    assert "is" not in words and "paris" not in words and "paris" in vocab
    assert entities == {"Paris Hilton": {"PER": 1}, "Paris": {"LOC": 1}}


def test_the_predictor_learns_a_signal_and_survives_a_json_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(feature_names(LABELS))))
    wrong = rng.random(600) < 1 / (1 + np.exp(-3 * x[:, 9]))  # unknown_encoder drives the errors
    predictor, out_of_fold = ErrorPredictor.fit(x, wrong, LABELS, WordFlags(None, {"a"}), "confidence")
    assert auroc(out_of_fold, wrong) > 0.8
    predictor.save(str(tmp_path))
    again = ErrorPredictor.load(str(tmp_path), LABELS)
    assert again.probability(x) == pytest.approx(predictor.probability(x))
    with pytest.raises(ValueError, match="other labels"):
        ErrorPredictor.load(str(tmp_path), ["O", "MISC"])


def test_the_dev_temperature_adds_a_calibrated_confidence(spanner_ckpt, tmp_path):
    temperature = DevCalibration.load(spanner_ckpt).temperature("confidence")
    records, metrics = infer(spanner_ckpt, tmp_path / "t.jsonl")
    entities = [e for r in records for e in r["entity"] if not e["candidate"]]
    if temperature == 1.0:
        assert "temperature" not in metrics and all("calibrated_confidence" not in e for e in entities)
        return
    assert metrics["temperature"] == temperature and 0 <= metrics["ece_calibrated"] <= 1
    for e in entities:  # the top label's probability shrinks toward uniform above T = 1, grows below
        assert (e["calibrated_confidence"] - e["confidence"]) * (temperature - 1) <= 1e-9


def test_too_few_errors_on_dev_are_a_clear_error():
    x = np.random.default_rng(0).normal(size=(40, len(feature_names(LABELS))))
    with pytest.raises(ValueError, match="two right and two wrong"):
        ErrorPredictor.fit(x, [True] + [False] * 39, LABELS, WordFlags(None, set()), "confidence")


def test_a_foreign_or_broken_calibration_file_is_named(tmp_path):
    (tmp_path / CALIBRATION).write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a LinkNER dev calibration"):
        DevCalibration.load(str(tmp_path))
    (tmp_path / CALIBRATION).write_text("{")
    with pytest.raises(ValueError, match=f"{CALIBRATION}: not JSON"):
        DevCalibration.load(str(tmp_path))


def test_a_two_model_predictor_reads_the_second_checkpoint(ener_ckpt, spanner_ckpt, tmp_path):
    two, second = tmp_path / "two", tmp_path / "second"
    shutil.copytree(ener_ckpt, two)
    shutil.copytree(spanner_ckpt, second)
    calibrate.main([str(two), "--data_dir", SAMPLE_DIR, "--second_model", str(second)])
    data = json.load(open(two / PREDICTOR))
    assert data["second_model"]["path"] == str(second) and data["features"][-4:] == list(SECOND_FEATURES)
    assert len(data["coef"]) == len(data["features"]) == len(feature_names(data["labels"])) + 4
    assert DevCalibration.load(str(two)).type_entry("learned")["second_model"] == str(second)
    plain, _ = infer(str(two), tmp_path / "plain.jsonl")
    one, _ = infer(ener_ckpt, tmp_path / "one.jsonl", "--uncertainty_type", "learned")
    both, metrics = infer(str(two), tmp_path / "both.jsonl", "--uncertainty_type", "learned")
    assert [[(e["span"], e["pred"]) for e in r["entity"]] for r in both] == \
        [[(e["span"], e["pred"]) for e in r["entity"]] for r in plain]  # the entities stay the first model's
    unc = [e["uncertainty"] for r in both for e in r["entity"]]
    assert all(0 < u < 1 for u in unc) and unc != [e["uncertainty"] for r in one for e in r["entity"]]
    shutil.rmtree(second)  # a predictor whose second model is gone says so, in one line
    with pytest.raises(SystemExit) as exit_:
        infer(str(two), tmp_path / "gone.jsonl", "--uncertainty_type", "learned")
    assert str(exit_.value).startswith("error: ") and "second model is missing" in str(exit_.value)


def test_the_second_model_is_checked_before_calibrating(ener_ckpt, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ener_ckpt, copy)
    before = (copy / PREDICTOR).read_bytes()
    for second, problem in ((copy, "must be another checkpoint"), (tmp_path / "none", "second model is missing")):
        with pytest.raises(SystemExit) as exit_:
            calibrate.main([str(copy), "--data_dir", SAMPLE_DIR, "--second_model", str(second)])
        assert str(exit_.value).startswith("error: ") and problem in str(exit_.value)
    assert (copy / PREDICTOR).read_bytes() == before


def test_an_output_made_with_another_error_predictor_is_not_continued(ener_ckpt, spanner_ckpt, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ener_ckpt, copy)
    save = tmp_path / "learned.jsonl"
    infer(str(copy), save, "--uncertainty_type", "learned")
    before = save.read_bytes()
    calibrate.main([str(copy), "--data_dir", SAMPLE_DIR, "--second_model", spanner_ckpt])  # a new predictor
    with pytest.raises(SystemExit) as exit_:
        infer(str(copy), save, "--uncertainty_type", "learned")
    assert "other settings: error_predictor" in str(exit_.value) and save.read_bytes() == before


def test_a_second_model_retrained_in_place_is_noticed(spanner_ckpt, tmp_path):
    """Same size, other weights (a retrained model of the same shape): the predictor refuses it."""
    second = tmp_path / "second"
    shutil.copytree(spanner_ckpt, second)
    expected = describe(str(second))
    data = bytearray((second / "model.safetensors").read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor
    (second / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not the second model the error predictor was fitted with"):
        SecondModel(str(second), LABELS, expected=expected)
