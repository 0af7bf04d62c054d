"""The inference fast path (`SpanNER.grid_scores` over `predict.grid_batch`, `--workers`) against a
reference: the paper's span classifier computed span by span, straight from its definition.

Same entities and candidates, the same labels, probabilities and uncertainties up to float
rounding (1e-4 at most), on data/sample with the tiny GloVe checkpoints, and for a random tiny BERT
whose span widths count subwords; `--workers N` writes the very file one worker writes."""
import os

import pytest
import torch
from torch.nn import functional as F

import local_inference
from dataloaders.dataset import SpanDataset
from dataloaders.features import BertFeaturizer
from dataloaders.readers import read_dataset
from inference.local import tagging
from inference.local.decode import decode_sentence
from inference.local.parallel import in_processes
from inference.local.predict import grid_batch, length_batches, predict
from inference.local.uncertainty import span_probabilities
from models.checkpoint import build_model, load_checkpoint
from models.config import ModelConfig, ModelType
from tests.helpers import SAMPLE_DIR
from utils.jsonl import read_jsonl

TEST_FILE = os.path.join(SAMPLE_DIR, "test.txt")
TOLERANCE = 1e-4


def reference_scores(model, dataset, index):
    """Scores [n_spans, K] of sentence `index`, one span at a time: the classifier on
    [h_start(s) ; h_end(e) ; width embedding ; ReLU(length embedding) ; morphology embeddings
    summed over the span], as the paper writes it (no folding, no grid)."""
    batch = dataset.collate([dataset[index]])
    h_start, h_end = model.encoder(batch)
    rows = []
    for j, (s, e) in enumerate(dataset.spans[index]):
        vec = torch.cat([h_start[0, s], h_end[0, e], model.width_emb.weight[batch["span_width"][0, j]],
                         F.relu(model.len_emb.weight[batch["span_len"][0, j]]),
                         model.morph_emb.weight[batch["morph"][0, s:e + 1]].sum(0)])
        rows.append(model.classifier(vec))
    return torch.stack(rows)


def reference_outputs(model, dataset, config, uncertainty_type):
    with torch.no_grad():
        return {i: span_probabilities(reference_scores(model, dataset, i), uncertainty_type, config.etrans_func)
                for i in range(len(dataset))}


def key(records):
    return [(tuple(r["span"]), r["pred"], r["candidate"]) for r in records]


def assert_same_records(fast, slow):
    assert key(fast) == key(slow)
    for a, b in zip(fast, slow):
        assert abs(a["uncertainty"] - b["uncertainty"]) <= TOLERANCE
        assert abs(a["confidence"] - b["confidence"]) <= TOLERANCE


@pytest.mark.parametrize("kind, uncertainty_type", [("ener", "evidential"), ("spanner", "confidence"),
                                                     ("spanner", "entropy")])
def test_fast_path_equals_the_span_by_span_reference(kind, uncertainty_type, ener_ckpt, spanner_ckpt):
    model, featurizer, config = load_checkpoint(ener_ckpt if kind == "ener" else spanner_ckpt)
    sentences = read_dataset(TEST_FILE)
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    slow = reference_outputs(model, dataset, config, uncertainty_type)
    fast = list(predict(model, dataset, config, uncertainty_type, mc_samples=1, batch_size=16, progress=False))
    assert sorted(i for i, *_ in fast) == list(range(len(sentences)))
    threshold = 0.05  # low enough that many O spans become candidates
    n_entities = n_candidates = 0
    for i, spans, probs, unc in fast:
        ref_probs, ref_unc = slow[i]
        assert spans == dataset.spans[i]
        assert (probs - ref_probs).abs().max() <= TOLERANCE and (unc - ref_unc).abs().max() <= TOLERANCE
        sent = sentences[i]
        decoded = decode_sentence(spans, probs, unc, config.labels, threshold, sent.entities, words=sent.words)
        reference = decode_sentence(spans, ref_probs, ref_unc, config.labels, threshold, sent.entities,
                                    words=sent.words)
        assert_same_records(decoded, reference)
        n_entities += sum(not r["candidate"] for r in reference)
        n_candidates += sum(r["candidate"] for r in reference)
    assert n_entities and n_candidates, "the comparison covers entities and candidates"


def test_local_inference_writes_the_reference_entities(ener_ckpt, tmp_path):
    """End to end: the records local_inference.py writes hold the reference path's entities."""
    save = tmp_path / "out.jsonl"
    local_inference.main(["--inference_model", ener_ckpt, "--input_file", TEST_FILE, "--save_file", str(save),
                          "--candidate_threshold", "0.05"])
    model, featurizer, config = load_checkpoint(ener_ckpt)
    sentences = read_dataset(TEST_FILE)
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    slow = reference_outputs(model, dataset, config, "evidential")
    records = read_jsonl(str(save))
    assert [r["id"] for r in records] == list(range(len(sentences)))
    for rec, sent in zip(records, sentences):
        probs, unc = slow[rec["id"]]
        reference = decode_sentence(dataset.spans[rec["id"]], probs, unc, config.labels, 0.05, sent.entities,
                                    words=sent.words)
        assert_same_records(rec["entity"], reference)


@pytest.fixture(scope="module")
def tiny_bert_model(tiny_bert_dir):
    """A random SpanNER on the tiny BERT, in eval mode, with windows of 16 subwords."""
    torch.manual_seed(0)
    config = ModelConfig(labels=["O", "LOC", "MISC", "ORG", "PER"], model_type=ModelType.ENER, encoder="bert",
                         bert_config_dir=tiny_bert_dir)
    model, featurizer, config = build_model(config)
    return model.eval(), BertFeaturizer(featurizer.tok, max_length=16), config


def test_grid_batch_holds_the_span_features_of_the_span_list(tiny_bert_model):
    """Subword widths vary per span under BERT: the grid's width buckets and lengths are the
    collated span list's, entry for entry, and its valid entries are the spans in order."""
    _, featurizer, config = tiny_bert_model
    sentences = read_dataset(TEST_FILE)[:40]
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    for indices in length_batches(dataset, 8):
        grid = grid_batch(dataset, indices, config.max_span_len)
        listed = dataset.collate([dataset[i] for i in indices])
        valid = grid["span_valid"]
        for row, i in enumerate(indices):
            n = len(dataset.spans[i])
            starts, offsets = valid[row].nonzero(as_tuple=True)
            assert list(zip(starts.tolist(), (starts + offsets).tolist())) == dataset.spans[i]
            assert torch.equal(grid["span_width"][row][valid[row]], listed["span_width"][row, :n])
            assert torch.equal(grid["span_len"][row][valid[row]], listed["span_len"][row, :n])
        assert torch.equal(grid["morph"], listed["morph"])


def test_bert_widths_take_the_per_entry_pair_rows(tiny_bert_model):
    model, featurizer, config = tiny_bert_model
    sentences = read_dataset(TEST_FILE)[:24]
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    assert any(n > 1 for f in dataset.feats for n in f["n_sub"]), "some words are several subwords"
    slow = reference_outputs(model, dataset, config, "evidential")
    for i, spans, probs, unc in predict(model, dataset, config, "evidential", mc_samples=1, batch_size=8,
                                        progress=False):
        assert (probs - slow[i][0]).abs().max() <= TOLERANCE and (unc - slow[i][1]).abs().max() <= TOLERANCE


def test_grid_scores_refuses_training_mode(tiny_bert_model):
    model, featurizer, config = tiny_bert_model
    dataset = SpanDataset(read_dataset(TEST_FILE)[:2], featurizer, config.labels, config.max_span_len)
    model.train()
    try:
        with pytest.raises(RuntimeError, match="inference"):
            model.grid_scores(grid_batch(dataset, [0, 1], config.max_span_len))
    finally:
        model.eval()


def test_workers_write_the_file_one_worker_writes(ener_ckpt, tmp_path, monkeypatch):
    """Chunks of 16 sentences shared out to 3 processes: the same bytes, in input order."""
    monkeypatch.setattr(tagging, "CHUNK", 16)
    used = []

    def counted(fn, items, workers):
        used.append(workers)
        return in_processes(fn, items, workers)

    monkeypatch.setattr(tagging, "in_processes", counted)
    outputs = {}
    for workers in (1, 3):
        save = tmp_path / f"w{workers}.jsonl"
        metrics = local_inference.main(["--inference_model", ener_ckpt, "--input_file", TEST_FILE,
                                        "--save_file", str(save), "--candidate_threshold", "0.05",
                                        "--workers", str(workers)])
        outputs[workers] = save.read_bytes()
        assert metrics["n_sentences"] == 100
    assert used == [3], "the three-worker run went through the process pool"
    assert outputs[3] == outputs[1]
    assert [r["id"] for r in read_jsonl(str(tmp_path / "w3.jsonl"))] == list(range(100))


def test_in_processes_keeps_the_input_order():
    out = list(in_processes(lambda x: (x * x, os.getpid()), range(40), 3))
    assert [v for v, _ in out] == [x * x for x in range(40)]
    assert os.getpid() not in {pid for _, pid in out}


def test_workers_must_be_positive(ener_ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        local_inference.main(["--inference_model", ener_ckpt, "--input_file", TEST_FILE,
                              "--save_file", str(tmp_path / "o.jsonl"), "--workers", "0"])
    assert err.value.code == 2 and "--workers" in capsys.readouterr().err
