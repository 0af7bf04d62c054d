"""local_inference.py end to end on tiny GloVe checkpoints trained on data/sample."""
import json
import math
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest
import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

import local_inference
from dataloaders.convert import write_spanner_json
from dataloaders.readers import Sentence, read_dataset
from dataloaders.text import tokenize
from tests.helpers import REPO, SAMPLE_DIR, to_bio
from utils.jsonl import read_jsonl

TEST_FILE = os.path.join(SAMPLE_DIR, "test.txt")
def infer(ckpt, save_file, *args):
    """Run local_inference.py; (records written, metrics file)."""
    local_inference.main(["--inference_model", ckpt, "--save_file", str(save_file), *args])
    with open(f"{save_file}.metrics.json", encoding="utf-8") as f:
        return read_jsonl(str(save_file)), json.load(f)


@pytest.fixture(scope="module")
def run_type(spanner_ckpt, ener_ckpt, tmp_path_factory):
    """`run_type(kind)`: data/sample/test.txt tagged with uncertainty `kind`, computed once."""
    runs = {}

    def run(kind):
        if kind not in runs:
            # evidential is the E-NER checkpoint's default: not naming it checks that too
            ckpt, flags = (ener_ckpt, []) if kind == "evidential" else (spanner_ckpt, ["--uncertainty_type", kind])
            save = tmp_path_factory.mktemp(kind) / "out.jsonl"
            runs[kind] = infer(ckpt, save, "--input_file", TEST_FILE, "--mc_samples", "3", *flags)
        return runs[kind]

    return run


def predicted(rec):
    return [(*ent["span"], ent["pred"]) for ent in rec["entity"] if ent["pred"] != "O" and not ent["candidate"]]


def seqeval_scores(records):
    """Precision, recall, F1 and per-label F1 from seqeval on BIO tags built from the records."""
    y_true = [to_bio(r["gold"], len(r["tokens"])) for r in records]
    y_pred = [to_bio(predicted(r), len(r["tokens"])) for r in records]
    per_label = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    return (precision_score(y_true, y_pred, zero_division=0), recall_score(y_true, y_pred, zero_division=0),
            f1_score(y_true, y_pred, zero_division=0),
            {label: row["f1-score"] for label, row in per_label.items() if "avg" not in label})


def assert_metrics_match_seqeval(records, metrics):
    precision, recall, f1, per_label = seqeval_scores(records)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == pytest.approx((precision, recall, f1))
    assert {label: s["f1"] for label, s in metrics["per_label"].items() if s["n_gold"]} == pytest.approx(per_label)


def uncertainty_bounds(kind, confidence, k):
    """Where the uncertainty of a span whose top label has probability `confidence` must lie."""
    if kind in ("confidence", "mc_dropout"):  # 1 - (mean) max probability
        return 1 - confidence, 1 - confidence
    if kind == "entropy":  # normalised entropy, the rest of the mass on one label .. spread over K - 1
        p, h = confidence, lambda x: -x * math.log(x) if x > 0 else 0.0
        return (h(p) + h(1 - p)) / math.log(k), (h(p) + h(1 - p) + (1 - p) * math.log(k - 1)) / math.log(k)
    # evidential: u = K / S and confidence = alpha_max / S, every alpha >= 1
    return 0.0, min(confidence * k, (1 - confidence) * k / (k - 1))


@pytest.mark.parametrize("kind", ["confidence", "entropy", "mc_dropout", "evidential"])
def test_each_uncertainty_type_writes_the_record_fields_and_honest_metrics(run_type, kind):
    records, metrics = run_type(kind)
    sentences = read_dataset(TEST_FILE)
    k = len(metrics["labels"])
    assert metrics["uncertainty_type"] == kind and metrics["labels"][0] == "O"
    assert [r["id"] for r in records] == list(range(len(sentences)))
    assert [r["tokens"] for r in records] == [s.words for s in sentences]
    assert [r["sentence"] for r in records] == [" ".join(s.words) for s in sentences]
    assert [[tuple(g) for g in r["gold"]] for r in records] == [s.entities for s in sentences]
    listed = 0
    for rec in records:
        gold = {(s, e): label for s, e, label in rec["gold"]}
        taken = set()
        for ent in rec["entity"]:
            s, e = ent["span"]
            assert ent["entity"] == " ".join(rec["tokens"][s:e + 1])
            assert ent["answer"] == gold.get((s, e), "O")
            assert ent["candidate"] == (ent["pred"] == "O")
            assert 0 <= ent["uncertainty"] <= 1 and 0 <= ent["confidence"] <= 1
            assert not ent["candidate"] or ent["uncertainty"] > metrics["candidate_threshold"]
            low, high = uncertainty_bounds(kind, ent["confidence"], k)
            assert low - 1e-5 <= ent["uncertainty"] <= high + 1e-5
            assert taken.isdisjoint(range(s, e + 1)), "listed spans overlap"
            taken |= set(range(s, e + 1))
            listed += 1
    assert listed > 0
    entities = sum(map(len, map(predicted, records)))
    assert (metrics["n_sentences"], metrics["n_entities"]) == (len(records), entities)
    assert metrics["n_candidates"] == listed - entities
    assert metrics["seconds"] > 0 and 0 <= metrics["ece"] <= 1
    assert metrics["auroc"] is None or 0 <= metrics["auroc"] <= 1
    assert_metrics_match_seqeval(records, metrics)


def test_mc_dropout_samples_with_dropout_on(run_type):
    plain = {(r["id"], *e["span"]): e["confidence"] for r in run_type("confidence")[0] for e in r["entity"]}
    sampled = {(r["id"], *e["span"]): e["confidence"] for r in run_type("mc_dropout")[0] for e in r["entity"]}
    shared = plain.keys() & sampled.keys()
    assert shared and any(abs(plain[key] - sampled[key]) > 1e-4 for key in shared)


def without(entities, *keys):
    return [{k: v for k, v in ent.items() if k not in keys} for ent in entities]


def test_candidates_are_chosen_without_reading_gold(spanner_ckpt, tmp_path):
    """Gold removed (spanner JSON with no spans) or absent (plain text): the same spans, labels
    and scores; only the gold-derived `answer` differs."""
    flags = ["--uncertainty_type", "confidence", "--candidate_threshold", "0.4"]
    with_gold, _ = infer(spanner_ckpt, tmp_path / "gold.jsonl", "--input_file", TEST_FILE, *flags)
    sentences = read_dataset(TEST_FILE)
    write_spanner_json([Sentence(s.words, []) for s in sentences], str(tmp_path / "no_gold.json"))
    (tmp_path / "text.txt").write_text("".join(" ".join(s.words) + "\n" for s in sentences), encoding="utf-8")
    no_gold, _ = infer(spanner_ckpt, tmp_path / "a.jsonl", "--input_file", str(tmp_path / "no_gold.json"), *flags)
    text, metrics = infer(spanner_ckpt, tmp_path / "b.jsonl", "--input_file", str(tmp_path / "text.txt"), *flags)
    expected = [without(r["entity"], "answer") for r in with_gold]
    assert any(ent["candidate"] for ents in expected for ent in ents)
    assert [without(r["entity"], "answer") for r in no_gold] == expected
    assert [without(r["entity"], "char_span") for r in text] == expected
    assert all(r["gold"] == [] for r in no_gold)
    assert all("gold" not in r and all("answer" not in e for e in r["entity"]) for r in text)
    assert "f1" not in metrics and metrics["n_candidates"] == sum(e["candidate"] for ents in expected for e in ents)


class Marks(HTMLParser):
    def __init__(self, page):
        super().__init__()
        self.marks = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "mark":
            self.marks.append(dict(attrs)["data-type"])


def test_plain_text_keeps_character_offsets(spanner_ckpt, tmp_path):
    lines = ["Anna Berg moved from São  Paulo to Zürich, Switzerland.", "", "  (EU)   rejects\t\"German\" call!  ",
             "Peter's café in Ærø: 1,000 visitors — on 1996-08-22."]
    (tmp_path / "notes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    records, metrics = infer(spanner_ckpt, tmp_path / "notes.jsonl", "--input_file", str(tmp_path / "notes.txt"),
                             "--candidate_threshold", "0", "--html", str(tmp_path / "notes.html"))
    texts = [line for line in lines if line.strip()]
    assert [r["text"] for r in records] == texts
    assert [r["tokens"] for r in records] == [tokenize(line)[0] for line in texts]
    assert sum(len(r["entity"]) for r in records) > 10
    for rec in records:
        covered = set()
        for ent in rec["entity"]:
            start, end = ent["char_span"]
            assert rec["text"][start:end] == ent["entity"]
            s, e = ent["span"]
            assert "".join(ent["entity"].split()) == "".join(rec["tokens"][s:e + 1])
            covered |= set(range(start, end))
        # with every unsure span a candidate, the spans tile the line: all its characters are checked
        assert {i for i, c in enumerate(rec["text"]) if not c.isspace()} <= covered
    assert "f1" not in metrics and metrics["n_sentences"] == 3
    shown = [e["pred"] for r in records for e in r["entity"] if not e["candidate"]]
    with open(tmp_path / "notes.html", encoding="utf-8") as f:
        assert Marks(f.read()).marks == shown


def test_evidential_on_a_softmax_checkpoint_is_a_clear_error(spanner_ckpt, tmp_path):
    with pytest.raises(SystemExit, match="evidential uncertainty needs an E-NER checkpoint"):
        infer(spanner_ckpt, tmp_path / "x.jsonl", "--input_file", TEST_FILE, "--uncertainty_type", "evidential")


def test_paper_protocol_lists_every_gold_span_marked_gold_informed(run_type, spanner_ckpt, tmp_path):
    plain, plain_metrics = run_type("confidence")
    records, metrics = infer(spanner_ckpt, tmp_path / "paper.jsonl", "--input_file", TEST_FILE, "--paper_protocol",
                             "--uncertainty_type", "confidence")
    informed = [e for r in records for e in r["entity"] if e.get("gold_informed")]
    assert informed and all(e["candidate"] and e["answer"] != "O" for e in informed)
    assert metrics["n_gold_informed"] == len(informed) and metrics["paper_protocol"] is True
    for rec in records:
        assert {tuple(g[:2]) for g in rec["gold"]} <= {tuple(e["span"]) for e in rec["entity"]}
    assert not any(e.get("gold_informed") for r in plain for e in r["entity"])
    # gold-informed spans are handed to the LLM, never counted as local predictions
    assert (metrics["f1"], metrics["n_entities"]) == (plain_metrics["f1"], plain_metrics["n_entities"])
    (tmp_path / "notes.txt").write_text("no gold here\n")
    with pytest.raises(SystemExit, match="--paper_protocol lists the gold spans, so it needs labelled input"):
        infer(spanner_ckpt, tmp_path / "x.jsonl", "--input_file", str(tmp_path / "notes.txt"), "--paper_protocol")


def test_a_killed_run_is_continued_to_the_same_file(spanner_ckpt, tmp_path):
    fresh = tmp_path / "fresh.jsonl"
    # one sentence per batch: batches formed from the remaining sentences would otherwise
    # differ from a fresh run's, and with them the float rounding (by ~1e-7)
    args = ["--input_file", TEST_FILE, "--uncertainty_type", "confidence", "--batch_size", "1"]
    infer(spanner_ckpt, fresh, *args)
    lines = fresh.read_text(encoding="utf-8").splitlines(keepends=True)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(lines[:3]) + lines[3][:25], encoding="utf-8")  # killed while writing line 4
    settings = (tmp_path / "fresh.jsonl.settings.json").read_text()  # written before the first record
    (tmp_path / "partial.jsonl.settings.json").write_text(settings)
    with pytest.warns(UserWarning, match="partial last line"):
        records, metrics = infer(spanner_ckpt, partial, *args)
    assert partial.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8")
    assert metrics["n_sentences"] == len(records) == len(lines)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": 0, "tokens": ["Something", "else"], "entity": []}) + "\n")
    with pytest.raises(SystemExit, match="other.jsonl: exists and is not known to be this program's output"):
        infer(spanner_ckpt, other, *args)
    (tmp_path / "other.jsonl.settings.json").write_text(settings)
    with pytest.raises(SystemExit, match="holds output for other input"):
        infer(spanner_ckpt, other, *args)


def test_plot_dir_gets_a_reliability_diagram_and_a_risk_coverage_curve(spanner_ckpt, tmp_path):
    infer(spanner_ckpt, tmp_path / "out.jsonl", "--input_file", TEST_FILE, "--plot_dir", str(tmp_path / "plots"))
    for name in ("reliability.png", "risk_coverage.png"):
        with open(tmp_path / "plots" / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.filterwarnings("ignore:.*longer than max_spanLen")
def test_conll03_test_set_f1_equals_seqeval(shared_data, spanner_ckpt, tmp_path):
    """The real CoNLL-2003 test set through a GloVe checkpoint (tiny, trained on the sample)."""
    data_dir = os.path.join(shared_data, "conll03")
    records, metrics = infer(spanner_ckpt, tmp_path / "conll03.jsonl", "--data_dir", data_dir,
                             "--batch_size", "256")
    sentences = read_dataset(os.path.join(data_dir, "spanner.test"))
    assert len(records) == metrics["n_sentences"] == len(sentences) > 3000
    assert [[tuple(g) for g in r["gold"]] for r in records] == [s.entities for s in sentences]
    assert metrics["n_entities"] > 0
    assert_metrics_match_seqeval(records, metrics)


# -- outputs, reruns and standard input, through the real command in a subprocess ----------

def local_cli(*args, stdin=None, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "local_inference.py", *args], cwd=REPO, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_text_piped_into_input_file_dash_is_tagged(spanner_ckpt, tmp_path):
    text = "Peter Smith flew to Brussels.\n\nThe EU met in Zürich .\n"
    run = local_cli("--inference_model", spanner_ckpt, "--input_file", "-", "--save_file", str(tmp_path / "o.jsonl"),
                    stdin=text)
    assert run.returncode == 0, run.stderr
    records = read_jsonl(str(tmp_path / "o.jsonl"))
    assert [r["text"] for r in records] == ["Peter Smith flew to Brussels.", "The EU met in Zürich ."]


def test_predict_sh_reads_a_pipe(spanner_ckpt, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_CKPT")}
    env.update(PYTHON=sys.executable, OMP_NUM_THREADS="1", MODEL_SAVE_DIR=spanner_ckpt, INPUT_FILE="-",
               SAVE_FILE=str(tmp_path / "p.jsonl"))
    run = subprocess.run(["bash", os.path.join(REPO, "scripts", "predict.sh")], cwd=tmp_path, env=env,
                         input="Angela Merkel visited Zürich.\n", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert [r["text"] for r in read_jsonl(str(tmp_path / "p.jsonl"))] == ["Angela Merkel visited Zürich."]


def test_a_rerun_with_other_settings_is_refused_naming_them(spanner_ckpt, tmp_path):
    save = tmp_path / "o.jsonl"
    _, first = infer(spanner_ckpt, save, "--input_file", TEST_FILE)  # the checkpoint's default candidate threshold
    before = save.read_bytes()
    with pytest.raises(SystemExit) as exit_:
        infer(spanner_ckpt, save, "--input_file", TEST_FILE, "--candidate_threshold", "0.2",
              "--uncertainty_type", "entropy")
    assert exit_.value.code.startswith(
        f"error: {save} was written with other settings: candidate_threshold {json.dumps(first['candidate_threshold'])} "
        "(now 0.2); "
        'uncertainty_type "confidence" (now "entropy"). Rerun with --overwrite')
    assert save.read_bytes() == before
    records, metrics = infer(spanner_ckpt, save, "--input_file", TEST_FILE, "--candidate_threshold", "0.2",
                             "--overwrite")
    assert metrics["candidate_threshold"] == 0.2 and len(records) == 100


@pytest.mark.parametrize("flags, problem", [
    (["--data_dir", SAMPLE_DIR, "--input_file", TEST_FILE], "argument --input_file: not allowed with argument --data_dir"),
    (["--input_file", TEST_FILE, "--mc_samples", "0"], "argument --mc_samples: expected a whole number from 1 to"),
    (["--input_file", TEST_FILE, "--batch_size", "-1"], "argument --batch_size: expected a whole number from 1 to"),
    (["--input_file", TEST_FILE, "--candidate_threshold", "nan"], "argument --candidate_threshold: expected a number"),
    (["--input_file", "missing.txt"], "argument --input_file: missing.txt: no such file"),
    (["--input_file", TEST_FILE, "--llm_name", "gpt5x", "--shot", "-3"], "argument --shot: expected a whole number from 0 to 64, got '-3'"),
    (["--input_file", TEST_FILE, "--llm_name", "claude"], "argument --llm_name: unknown LLM 'claude'"),
])
def test_bad_flag_values_are_usage_errors(spanner_ckpt, tmp_path, capsys, flags, problem):
    with pytest.raises(SystemExit) as exit_:
        local_inference.main(["--inference_model", spanner_ckpt, "--save_file", str(tmp_path / "o.jsonl"), *flags])
    assert exit_.value.code == 2 and problem in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_is_a_usage_error(spanner_ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        local_inference.main(["--inference_model", spanner_ckpt, "--save_file", str(tmp_path / "o.jsonl"),
                              "--input_file", TEST_FILE, "--device", "cuda"])
    assert exit_.value.code == 2 and "cuda: no CUDA GPU is available here" in capsys.readouterr().err


def damaged(ckpt, tmp_path, how):
    bad = tmp_path / "ckpt"
    shutil.copytree(ckpt, bad)
    if how == "weights":
        data = (bad / "model.safetensors").read_bytes()
        (bad / "model.safetensors").write_bytes(data[:len(data) // 2])
    elif how == "config":
        text = (bad / "config.json").read_text()
        (bad / "config.json").write_text(text[:len(text) // 2])
    else:  # a label more than the weights have
        config = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**config, "labels": config["labels"] + ["EXTRA"]}))
    return bad


@pytest.mark.parametrize("how, problem", [
    ("weights", "model.safetensors: unreadable weights, the file is damaged or truncated"),
    ("config", "config.json: not a readable model config"),
    ("labels", "model.safetensors: the weights do not match"),
])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(spanner_ckpt, tmp_path, how, problem):
    bad = damaged(spanner_ckpt, tmp_path, how)
    with pytest.raises(SystemExit) as exit_:  # a string: printed as is, one line, exit status 1
        local_inference.main(["--inference_model", str(bad), "--input_file", TEST_FILE,
                              "--save_file", str(tmp_path / "o.jsonl")])
    message = exit_.value.code
    assert isinstance(message, str) and message.startswith(f"error: {bad}/") and problem in message
    assert "\n" not in message and not (tmp_path / "o.jsonl").exists()


def test_weights_are_written_with_the_usual_permissions(spanner_ckpt):
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(os.path.join(spanner_ckpt, "model.safetensors")).st_mode & 0o777 == 0o666 & ~umask


def test_the_output_may_not_be_the_input(spanner_ckpt, tmp_path):
    source = tmp_path / "test.txt"
    shutil.copy(TEST_FILE, source)
    before = source.read_bytes()
    for flags in (["--save_file", str(source)], ["--save_file", str(tmp_path / "o.jsonl"), "--html", str(source)],
                  ["--save_file", str(source), "--overwrite"]):
        with pytest.raises(SystemExit) as exit_:
            local_inference.main(["--inference_model", spanner_ckpt, "--input_file", str(source), *flags])
        assert exit_.value.code.startswith(f"error: {source}: is also the input (--input_file)")
    assert source.read_bytes() == before
