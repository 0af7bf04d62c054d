"""What reading BERT inputs in windows costs: F1 and speed of one checkpoint on one labelled file
with windows of several sizes (`--bert_max_length` at training time; 512 = one window per
sentence on CoNLL-2003).

    python bench/windows.py --model bench/runs/conll03_bert_ener --data ../shared/data/conll03/spanner.test \\
        --lengths 512,128,32 --out windows.json
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dataloaders.dataset import SpanDataset  # noqa: E402
from dataloaders.features import BertFeaturizer  # noqa: E402
from dataloaders.readers import read_dataset  # noqa: E402
from inference.local.decode import decode_sentence  # noqa: E402
from inference.local.predict import predict  # noqa: E402
from inference.local.tagging import TagSettings  # noqa: E402
from inference.reports.metrics import entity_scores  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from utils import flag_types as ft  # noqa: E402
from utils.cli import run_cli  # noqa: E402


def measure(model, tokenizer, config, sentences, max_length):
    featurizer = BertFeaturizer(tokenizer, max_length)
    start = time.time()
    dataset = SpanDataset(sentences, featurizer, config.labels, config.max_span_len)
    preds = [None] * len(sentences)
    for i, spans, probs, unc in predict(model, dataset, config, mc_samples=TagSettings.mc_samples,
                                        batch_size=TagSettings.batch_size, progress=False):
        preds[i] = [(*r["span"], r["pred"]) for r in decode_sentence(spans, probs, unc, config.labels)]
    seconds = time.time() - start
    windowed = [i for i, f in enumerate(dataset.feats) if len(f["rows"]) > 1]
    scores = entity_scores(preds, [s.entities for s in sentences])
    part = entity_scores([preds[i] for i in windowed], [sentences[i].entities for i in windowed]) if windowed else None
    return {"max_length": max_length, "f1": scores["f1"], "windowed_sentences": len(windowed),
            "windowed_f1": part and part["f1"], "sentences_per_second": round(len(sentences) / seconds, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a BERT-encoder checkpoint directory")
    p.add_argument("--data", required=True, help="a labelled file (spanner JSON or CoNLL columns)")
    p.add_argument("--lengths", default="512,128,32", type=sizes, help="window sizes in subwords")
    p.add_argument("--out", required=True)
    run_cli(windows, p.parse_args())


def sizes(text):
    """--lengths: a comma list of window sizes."""
    return [ft.whole_number(8192)(n) for n in text.split(",")]


def windows(args):
    model, featurizer, config = load_checkpoint(args.model)
    sentences = read_dataset(args.data, labels=config.labels)
    rows = [measure(model, featurizer.tok, config, sentences, n) for n in args.lengths]
    with open(args.out, "w") as f:
        json.dump({"trained_with": config.bert_max_length, "sentences": len(sentences), "rows": rows}, f, indent=2)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
