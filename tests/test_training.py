"""Stage one end to end on CPU: SpanNER and E-NER, GloVe and a tiny random BERT, learn 30
sentences by heart (train = dev); checkpoints reload to the same scores without pickle."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

import train_ener
import train_spanner
from dataloaders.dataset import SpanDataset
from dataloaders.readers import read_dataset
from inference.local.decode import decode_sentence
from inference.local.predict import predict
from inference.local.tagging import TagSettings
from inference.reports.metrics import entity_scores
from models.checkpoint import build_model, load_checkpoint
from models.config import ModelConfig
from tests.helpers import REPO, SAMPLE_DIR, ctrl_c_works, train_recorded

pytestmark = [pytest.mark.filterwarnings("ignore:.*does not have many workers"),
              pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated")]


MAIN = {"spanner": train_spanner.main, "ener": train_ener.main}
LABELS = ["O", "LOC", "MISC", "ORG", "PER"]
# Small and without dropout, so 30 sentences are learnt by heart in a few seconds.
FAST = ["--batch_size", "5", "--warmup_proportion", "0", "--model_dropout", "0", "--tokenLen_emb_dim", "8",
        "--spanLen_emb_dim", "8", "--morph_emb_dim", "8", "--accelerator", "cpu", "--lr", "1e-2"]
ENCODER = {"glove": ["--encoder", "glove", "--lstm_hidden", "64", "--lstm_layers", "1", "--glove_dropout", "0"],
           "bert": ["--encoder", "bert", "--bert_dropout", "0"]}  # + --bert_config_dir


@pytest.fixture(scope="module")
def data_dir(write_data_dir, sample_sentences):
    return write_data_dir(sample_sentences[:30], name="train30")


def encoder_args(encoder, bert_dir):
    return ENCODER[encoder] + (["--bert_config_dir", bert_dir] if encoder == "bert" else [])


@pytest.fixture(scope="module")
def overfit(data_dir, tiny_bert_dir, tmp_path_factory):
    """`overfit(model_type, encoder)` -> Run, trained once per module."""
    runs = {}

    def get(model_type, encoder):
        if (model_type, encoder) not in runs:
            out = str(tmp_path_factory.mktemp(f"{model_type}_{encoder}"))
            argv = ["--data_dir", data_dir, "--model_save_dir", out, "--iteration", "20", "--early_stop", "5",
                    *FAST, *encoder_args(encoder, tiny_bert_dir)]
            runs[model_type, encoder] = train_recorded(MAIN[model_type], argv)
        return runs[model_type, encoder]

    return get


COMBOS = [("spanner", "glove"), ("ener", "glove"), ("spanner", "bert"), ("ener", "bert")]


@pytest.mark.slow
@pytest.mark.parametrize("model_type, encoder", COMBOS)
def test_learns_train_set_by_heart(overfit, model_type, encoder):
    run = overfit(model_type, encoder)
    assert run.summary["best_dev_f1"] >= 0.95, run.summary
    assert not run.eval_modules, "dropout must be on while training"

    def mean(epoch):
        return sum(loss for e, loss in run.losses if e == epoch) / sum(e == epoch for e, _ in run.losses)

    last = run.losses[-1][0]
    assert mean(last) < 0.2 * mean(0), f"loss fell only from {mean(0):.3f} to {mean(last):.3f}"
    with open(os.path.join(run.path, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert config["dev_f1"] == run.summary["best_dev_f1"]
    assert (config["model_type"], config["encoder"], config["labels"]) == (model_type, encoder, LABELS)


@pytest.mark.slow
@pytest.mark.parametrize("model_type, encoder", [("spanner", "glove"), ("ener", "bert")])
def test_checkpoint_is_config_json_and_safetensors(overfit, model_type, encoder):
    run = overfit(model_type, encoder)
    files = set(os.listdir(run.path))
    assert {"config.json", "model.safetensors", "calibration.json"} <= files  # dev calibration: plain JSON too
    extra = files - {"config.json", "model.safetensors", "calibration.json", "error_predictor.json"}
    if encoder == "glove":
        assert not extra
    else:  # the tokenizer, as text files in their own folder
        tokenizer_files = os.listdir(os.path.join(run.path, "tokenizer"))
        assert extra == {"tokenizer"} and "tokenizer_config.json" in tokenizer_files, extra
        assert all(f.endswith((".json", ".txt")) for f in tokenizer_files), tokenizer_files
    weights = load_file(os.path.join(run.path, "model.safetensors"))
    state = run.model.state_dict()
    assert weights.keys() == state.keys() and all(torch.equal(weights[k], state[k]) for k in state)
    assert "glove" not in state, "the GloVe table is read from the installed package, not stored"


def no_pickle(*args, **kwargs):
    raise AssertionError("checkpoint loading must not unpickle")


@pytest.mark.slow
@pytest.mark.parametrize("model_type, encoder", [("spanner", "glove"), ("ener", "bert")])
def test_reload_gives_identical_scores(overfit, data_dir, model_type, encoder, monkeypatch):
    run = overfit(model_type, encoder)
    with monkeypatch.context() as mp:
        for module, name in [(pickle, "load"), (pickle, "loads"), (torch, "load")]:
            mp.setattr(module, name, no_pickle)
        model, featurizer, config = load_checkpoint(run.path)
    assert not model.training
    sentences = read_dataset(os.path.join(data_dir, "dev.txt"))
    words = [s.words for s in sentences]
    assert featurizer.encode_all(words) == run.featurizer.encode_all(words)
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    batch = dataset.collate([dataset[i] for i in range(8)])
    with torch.no_grad():
        assert torch.equal(model(batch), run.model(batch))
    live, loaded = (list(predict(m, dataset, config, mc_samples=TagSettings.mc_samples, batch_size=TagSettings.batch_size,
                                 progress=False)) for m in (run.model, model))
    for (i, spans, probs, unc), (j, spans2, probs2, unc2) in zip(live, loaded, strict=True):
        assert (i, spans) == (j, spans2) and torch.equal(probs, probs2) and torch.equal(unc, unc2)
    # Decoded as in training, the reloaded model scores the dev F1 stored with it.
    preds = {i: [(*r["span"], r["pred"]) for r in decode_sentence(spans, probs, unc, config.labels)]
             for i, spans, probs, unc in loaded}
    f1 = entity_scores([preds[i] for i in range(len(sentences))], [s.entities for s in sentences])["f1"]
    assert f1 == pytest.approx(config.dev_f1, abs=1e-6)


@pytest.mark.slow
def test_same_seed_same_result(data_dir, tmp_path):
    def run(seed, name):
        argv = ["--data_dir", data_dir, "--model_save_dir", str(tmp_path / name), "--iteration", "4",
                "--seed", str(seed), *FAST, *ENCODER["glove"]]
        return train_spanner.main(argv)["best_dev_f1"], load_file(str(tmp_path / name / "model.safetensors"))

    (f1_a, w_a), (f1_b, w_b), (_, w_c) = run(7, "a"), run(7, "b"), run(8, "c")
    assert f1_a == f1_b and f1_a > 0
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    assert not all(torch.equal(w_a[k], w_c[k]) for k in w_a), "another seed should give other weights"


def test_factorised_span_mlp_equals_the_concatenated_one(sample_sentences):
    torch.manual_seed(0)
    config = ModelConfig(encoder="glove", labels=LABELS, lstm_hidden=8, width_dim=4, len_dim=6, morph_dim=5,
                         max_span_len=4)
    model, featurizer, _ = build_model(config, sentences=sample_sentences[:5])
    model.eval()
    dataset = SpanDataset(sample_sentences[:5], featurizer, LABELS, max_span_len=4)
    batch = dataset.collate([dataset[i] for i in range(5)])
    with torch.no_grad():
        h_start, h_end = model.encoder(batch)

        def gather(h, idx):
            return h.gather(1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))

        starts, ends = batch["spans"][..., 0], batch["spans"][..., 1]
        morph = model.morph_emb(batch["morph"])
        span_morph = torch.stack([torch.stack([morph[b, s:e + 1].sum(0) for s, e in row.tolist()])
                                  for b, row in enumerate(batch["spans"])])
        rep = torch.cat([gather(h_start, starts), gather(h_end, ends), model.width_emb(batch["span_width"]),
                         F.relu(model.len_emb(batch["span_len"])), span_morph], -1)
        assert torch.allclose(model(batch), model.classifier(rep), atol=1e-5)


# Command line

def cli(script, argv, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, os.path.join(REPO, script), *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("script, model_type", [("train_spanner.py", "spanner"), ("train_ener.py", "ener")])
def test_cli_max_steps_leaves_a_checkpoint(data_dir, tmp_path, script, model_type):
    out = tmp_path / "model"
    proc = cli(script, ["--data_dir", data_dir, "--model_save_dir", str(out), "--max_steps", "2",
                        "--batch_size", "2", *ENCODER["glove"], "--lstm_hidden", "8"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.listdir(tmp_path) == ["model"], "training writes nothing outside --model_save_dir"
    _, _, config = load_checkpoint(str(out))
    assert (config.model_type, config.step) == (model_type, 2)
    assert ("with_uc" in config.to_dict()) == (model_type == "ener")


@pytest.mark.parametrize("argv, message", [
    (["--data_dir", "{data}", "--encoder", "bert"], "error: --encoder bert needs --bert_config_dir"),
    (["--data_dir", "{data}", "--bert_config_dir", "{tmp}/no_bert"],
     "error: --bert_config_dir {tmp}/no_bert: no such directory"),
    (["--data_dir", "{bad}"], "error: {bad}/train.txt: sentence at line 1: tag 'MISC' is not O or a B-/I-/E-/S- tag"),
    (["--data_dir", "{text}"], "error: {text}/train.txt: no labelled sentences"),
    (["--data_dir", "{gpe}"], "error: {gpe}/train.txt: labels GPE are missing from {gpe}/labels.txt"),
])
def test_clear_errors(data_dir, tmp_path, argv, message):
    files = {"bad/train.txt": "EU B-ORG\nrejects O\nGerman MISC\n", "text/train.txt": "EU rejects German call .\n",
             "gpe/train.txt": "Paris B-GPE\n", "gpe/labels.txt": "LOC\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")

    def fill(s):
        return s.format(tmp=tmp_path, data=data_dir, **{d: tmp_path / d for d in ("bad", "text", "gpe")})

    for main in MAIN.values():
        with pytest.raises(SystemExit) as err:
            main([fill(a) for a in argv] + ["--model_save_dir", str(tmp_path / "m")])
        # A string exit code is printed as is: one line, no traceback.
        assert isinstance(err.value.code, str) and err.value.code.startswith(fill(message))
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv, message", [
    (["--data_dir", "{tmp}/missing"], "argument --data_dir: {tmp}/missing: no such directory"),
    (["--data_dir", "{data}", "--model_save_dir", "{tmp}/file"], "argument --model_save_dir: {tmp}/file: is a file"),
    (["--data_dir", "{data}", "--batch_size", "0"], "argument --batch_size: expected a whole number from 1 to"),
    (["--data_dir", "{data}", "--max_spanLen", "0"], "argument --max_spanLen: expected a whole number from 1 to"),
    (["--data_dir", "{data}", "--lr", "nan"], "argument --lr: expected a number above 0"),
    (["--data_dir", "{data}", "--model_dropout", "1.5"], "argument --model_dropout: expected a number from 0 to below 1"),
])
def test_bad_flag_values_are_usage_errors_before_any_work(data_dir, tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("not a directory")
    fill = lambda s: s.format(tmp=tmp_path, data=data_dir)  # noqa: E731
    for main in MAIN.values():
        with pytest.raises(SystemExit) as err:
            main([fill(a) for a in argv] + ([] if "--model_save_dir" in argv else ["--model_save_dir", str(tmp_path / "m")]))
        assert err.value.code == 2 and fill(message) in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_a_latin1_training_file_is_one_line_and_a_bom_is_no_part_of_a_word(tmp_path):
    (tmp_path / "latin").mkdir()
    (tmp_path / "latin" / "train.txt").write_bytes("Zürich B-LOC\nis O\n".encode("latin-1"))
    (tmp_path / "latin" / "dev.txt").write_bytes("Zürich B-LOC\n".encode("latin-1"))
    with pytest.raises(SystemExit) as exit_:  # a string: printed as is, one line, exit status 1
        train_spanner.main(["--data_dir", str(tmp_path / "latin"), "--model_save_dir", str(tmp_path / "m"),
                            *ENCODER["glove"]])
    assert exit_.value.code.startswith(f"error: {tmp_path}/latin/train.txt: not UTF-8 text")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfEU B-ORG\nrejects O\n")
    assert read_dataset(str(bom))[0].words == ["EU", "rejects"]


@pytest.mark.slow
def test_an_interrupted_training_run_resumes_where_it_stopped(tmp_path):
    """Ctrl-C once an epoch's resume checkpoint exists; --resume then continues from its step
    (restored with weights_only) and, finished, leaves only the checkpoint files."""
    out = str(tmp_path / "model")
    args = ["--data_dir", SAMPLE_DIR, "--model_save_dir", out, "--encoder", "glove", "--lstm_hidden", "16",
            "--batch_size", "16", "--iteration", "500"]
    last = os.path.join(out, "resume", "last.ckpt")
    proc = subprocess.Popen([sys.executable, "train_ener.py", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_works)
    try:
        deadline, size = time.monotonic() + 120, -1
        while proc.poll() is None and time.monotonic() < deadline:  # until the file exists and stops growing
            time.sleep(0.05)
            if os.path.isfile(last) and os.path.getsize(last) == size > 0:
                break
            size = os.path.getsize(last) if os.path.isfile(last) else -1
        proc.send_signal(signal.SIGINT)
        assert "continue with the same command and --resume" in proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    state = torch.load(last, weights_only=True)
    summary = train_ener.main([*args, "--resume", "--max_steps", str(state["global_step"] + 5)])
    assert summary["steps"] == state["global_step"] + 5, "training went on from the saved step"
    assert {"config.json", "model.safetensors", "calibration.json"} <= set(os.listdir(out)) <= {
        "config.json", "model.safetensors", "calibration.json", "error_predictor.json"}  # resume/ is gone
    with pytest.raises(SystemExit, match="nothing to continue"):
        train_ener.main([*args, "--resume"])
