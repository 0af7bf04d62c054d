"""Stage one: tag every span with a trained SpanNER / E-NER checkpoint, give each entity an
uncertainty, list the spans the model is unsure of as candidates for the LLM, and measure.

    python local_inference.py --inference_model M --data_dir ../shared/data/conll03 --test_mode typos \
        --uncertainty_type evidential --save_file results/typos.jsonl --plot_dir results/plots
    python local_inference.py --inference_model M --input_file notes.txt --save_file notes.jsonl

Output: one JSON line per sentence in input order (written as it goes; a rerun continues
where a killed one stopped), and SAVE_FILE.metrics.json beside it.
"""
import argparse
import json
import logging
import sys
import time

import torch
from tqdm import tqdm

from dataloaders.dataset import SpanDataset
from dataloaders.readers import DataError, read_dataset, split_path
from inference.calibration import entity_outcomes, local_metrics
from inference.decode import decode_sentence
from inference.predict import default_uncertainty, predict
from inference.report_table import format_table
from inference.uncertainty import UNCERTAINTY_TYPES
from models.checkpoint import load_checkpoint
from utils.jsonl import JsonlWriter, resume_jsonl

log = logging.getLogger("local_inference")
CHUNK = 2048  # sentences decoded and written per step (batched by length inside)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--inference_model", "--checkpoint", dest="inference_model", required=True, help="checkpoint directory")
    a("--data_dir", help="data directory (paper layout); its test split is read")
    a("--test_mode", default="ori", choices=["ori", "typos", "oov", "ood"], help="CoNLL-2003 robustness test sets")
    a("--input_file", help="spanner JSON, CoNLL column file, or plain text (one sentence per line; - for stdin)")
    a("--input_format", default="auto", choices=["auto", "spanner", "column", "text"])
    a("--save_file", required=True, help="output JSONL")
    a("--uncertainty_type", choices=UNCERTAINTY_TYPES, help="default: evidential for E-NER, confidence for SpanNER")
    a("--mc_samples", type=int, default=10, help="stochastic passes for mc_dropout")
    a("--candidate_threshold", type=float, default=0.4,
      help="spans tagged O with uncertainty above this become LLM candidates (negative: none)")
    a("--paper_protocol", action="store_true",
      help="GOLD-INFORMED: also list every gold span, as the paper's released code does (for comparison only)")
    a("--batch_size", type=int, default=64)
    a("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    a("--plot_dir", help="write a reliability diagram and a risk-coverage curve here (PNG)")
    a("--overwrite", action="store_true", help="start SAVE_FILE afresh instead of continuing it")
    return p


def load_input(args, labels):
    if args.input_file:
        path = "/dev/stdin" if args.input_file == "-" else args.input_file
        fmt = "text" if args.input_file == "-" and args.input_format == "auto" else args.input_format
        return read_dataset(path, fmt, labels=labels)
    if not args.data_dir:
        raise DataError("give --input_file or --data_dir")
    return read_dataset(split_path(args.data_dir, "test", args.test_mode), labels=labels)


def sentence_record(i, sent, entities):
    rec = {"id": i, "sentence": " ".join(sent.words), "tokens": sent.words, "entity": entities}
    if sent.text is not None:
        rec["text"] = sent.text
        for ent in entities:
            s, e = ent["span"]
            ent["char_span"] = [sent.char_spans[s][0], sent.char_spans[e][1]]
    if sent.entities is not None:
        rec["gold"] = [list(g) for g in sent.entities]
    return rec


def iter_records(model, featurizer, config, sentences, args, device, start=0):
    """Records for sentences[start:], in input order, decoded chunk by chunk."""
    labels, kind = config["labels"], args.uncertainty_type
    threshold = args.candidate_threshold if args.candidate_threshold >= 0 else None
    bar = tqdm(total=len(sentences), initial=start, desc="local inference", unit="sent")
    for lo in range(start, len(sentences), CHUNK):
        chunk = sentences[lo:lo + CHUNK]
        dataset = SpanDataset(chunk, featurizer, labels, config["max_span_len"], args.save_file)
        entities = [None] * len(chunk)
        for j, spans, probs, unc in predict(model, dataset, config, kind, args.mc_samples, args.batch_size,
                                            device, progress=False):
            sent = chunk[j]
            entities[j] = decode_sentence(spans, probs, unc, labels, threshold, sent.entities,
                                          args.paper_protocol, sent.words)
            bar.update()
        yield from (sentence_record(lo + j, sent, ents) for j, (sent, ents) in enumerate(zip(chunk, entities)))
    bar.close()


def write_metrics(args, config, records, seconds):
    labelled = all("gold" in r for r in records) and records
    preds = [r["entity"] for r in records]
    golds = [[tuple(g) for g in r["gold"]] for r in records] if labelled else None
    metrics = local_metrics(preds, golds)
    metrics.update(labels=config["labels"], uncertainty_type=args.uncertainty_type, checkpoint=args.inference_model,
                   input=args.input_file or f"{args.data_dir} ({args.test_mode})", paper_protocol=args.paper_protocol,
                   candidate_threshold=args.candidate_threshold, seconds=round(seconds, 2),
                   sentences_per_second=round(len(records) / seconds, 1) if seconds else None)
    with open(args.save_file + ".metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    print(format_table(metrics))
    if args.plot_dir and labelled:
        from inference.plots import plot_reliability, plot_risk_coverage

        conf, unc, correct = entity_outcomes(preds, golds)
        plot_reliability(conf, correct, f"{args.plot_dir}/reliability.png")
        plot_risk_coverage(unc, ~correct, f"{args.plot_dir}/risk_coverage.png")
    return metrics


def run(args):
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model, featurizer, config = load_checkpoint(args.inference_model, device)
    args.uncertainty_type = args.uncertainty_type or default_uncertainty(config)
    if args.uncertainty_type == "evidential" and config["model_type"] != "ener":
        raise DataError(f"{args.inference_model}: evidential uncertainty needs an E-NER checkpoint (train_ener.py); "
                        "this SpanNER checkpoint supports confidence, entropy and mc_dropout")
    sentences = load_input(args, config["labels"])
    done = [] if args.overwrite else resume_jsonl(args.save_file)
    if [r["tokens"] for r in done] != [s.words for s in sentences[:len(done)]]:
        raise DataError(f"{args.save_file} holds output for other input; use --overwrite or another --save_file")
    if done:
        log.info("%s: continuing after %d sentences already written", args.save_file, len(done))
    start = time.time()
    with JsonlWriter(args.save_file, append=bool(done)) as out:
        for rec in iter_records(model, featurizer, config, sentences, args, device, start=len(done)):
            out.write(rec)
            done.append(rec)
    return write_metrics(args, config, done, time.time() - start)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (DataError, FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
