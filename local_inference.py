"""Stage one: tag every span with a trained SpanNER / E-NER checkpoint, give each entity an
uncertainty, list the spans the model is unsure of as candidates for the LLM, and measure.

    python local_inference.py --inference_model M --data_dir ../shared/data/conll03 --test_mode typos \\
        --uncertainty_type evidential --save_file results/typos.jsonl --plot_dir results/plots
    python local_inference.py --inference_model M --input_file notes.txt --save_file notes.jsonl --html notes.html

Output: one JSON line per sentence in input order (written as it goes; a rerun continues
where a killed one stopped), and SAVE_FILE.metrics.json beside it. Raw text (a file, or - for
stdin) is split by `dataloaders.text.tokenize`; its records keep the line as "text" and each
entity a "char_span" [start, end) with text[start:end] == entity.

Online linking: with --llm_name (and the LLM flags of llm_inference.py, whose code does the
linking) each sentence's spans above --threshold go to the LLM as soon as the sentence is
tagged, and SAVE_FILE holds what llm_inference.py would write from the local output. A rerun
continues, and the reply cache keeps it from asking anything twice. --dry_run writes the
prompts that would be sent to --prompts_file and nothing else.

    OPENAI_API_KEY=... python local_inference.py --inference_model M --input_file notes.txt \\
        --save_file notes.jsonl --llm_name gpt --model gpt-4o-mini --html notes.html
"""
import argparse
import logging
import sys
import time
from contextlib import closing

import torch
from tqdm import tqdm

from dataloaders.dataset import SpanDataset
from dataloaders.readers import DataError, read_dataset, split_path
from inference.calibration import entity_outcomes, local_metrics
from inference.decode import decode_sentence
from inference.predict import check_uncertainty, predict
from inference.report_table import format_table
from inference.uncertainty import UNCERTAINTY_TYPES
from llm_inference import (add_link_args, check_link_args, link_metrics, linking, prompt_builder, report, resolve_spec,
                           write_outputs, write_prompts)
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
    a("--plot_dir", help="write a reliability diagram and a risk-coverage curve here (PNG); online with "
      "--threshold_sweep, also F1 and calls against the thresholds")
    a("--html", help="also write the records as a self-contained HTML page here")
    a("--overwrite", action="store_true", help="start SAVE_FILE afresh instead of continuing it")
    add_link_args(p, llm_name=None)
    return p


def load_input(args, labels):
    if args.input_file:
        path = "/dev/stdin" if args.input_file == "-" else args.input_file
        fmt = "text" if args.input_file == "-" and args.input_format == "auto" else args.input_format
        return read_dataset(path, fmt, labels=labels)
    if not args.data_dir:
        raise DataError("give --input_file or --data_dir")
    return read_dataset(split_path(args.data_dir, "test", args.test_mode), labels=labels)


def input_name(args):
    return args.input_file or f"{args.data_dir} ({args.test_mode})"


def sentence_record(i, sent, entities):
    rec = {"id": i, "sentence": " ".join(sent.words), "tokens": sent.words, "entity": entities}
    if sent.text is not None:  # the entity as the line writes it, spaces and all
        rec["text"] = sent.text
        for ent in entities:
            s, e = ent["span"]
            ent["char_span"] = [sent.char_spans[s][0], sent.char_spans[e][1]]
            ent["entity"] = sent.text[slice(*ent["char_span"])]
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
        dataset = SpanDataset(chunk, featurizer, labels, config["max_span_len"], input_name(args))
        entities = [None] * len(chunk)
        for j, spans, probs, unc in predict(model, dataset, config, kind, args.mc_samples, args.batch_size,
                                            device, progress=False):
            sent = chunk[j]
            entities[j] = decode_sentence(spans, probs, unc, labels, threshold, sent.entities,
                                          args.paper_protocol, sent.words)
            bar.update()
        yield from (sentence_record(lo + j, sent, ents) for j, (sent, ents) in enumerate(zip(chunk, entities)))
    bar.close()


def local_report(args, config, records, seconds, n_new):
    """The local model's metrics (and plots) for `records`, `n_new` of them tagged in `seconds`
    (the LLM's time included, online); the table goes to the console."""
    labelled = all("gold" in r for r in records) and records
    preds = [r["entity"] for r in records]
    golds = [[tuple(g) for g in r["gold"]] for r in records] if labelled else None
    metrics = local_metrics(preds, golds)
    metrics.update(labels=config["labels"], uncertainty_type=args.uncertainty_type, checkpoint=args.inference_model,
                   input=input_name(args), paper_protocol=args.paper_protocol,
                   candidate_threshold=args.candidate_threshold, seconds=round(seconds, 2),
                   sentences_per_second=round(n_new / seconds, 1) if seconds else None)
    print(format_table(metrics))
    if args.plot_dir and labelled:
        from inference.plots import plot_reliability, plot_risk_coverage

        conf, unc, correct = entity_outcomes(preds, golds)
        plot_reliability(conf, correct, f"{args.plot_dir}/reliability.png")
        plot_risk_coverage(unc, ~correct, f"{args.plot_dir}/risk_coverage.png")
    return metrics


def finish(args, config, records, seconds, n_new, linker=None):
    """SAVE_FILE.metrics.json, the plots and the page; online, the link report with the local
    metrics under "local_inference" (and the labels on top, where llm_inference.py reads them)."""
    metrics = local_report(args, config, records, seconds, n_new)
    if linker is not None:
        metrics = {**link_metrics(args, records, linker), "labels": config["labels"], "local_inference": metrics}
        report(metrics)
    write_outputs(args, records, metrics)
    return metrics


def resume(args, sentences, online):
    """The records a killed run of the same command already wrote (none with --overwrite)."""
    done = [] if args.overwrite else resume_jsonl(args.save_file)
    if [r.get("tokens") for r in done] != [s.words for s in sentences[:len(done)]]:
        raise DataError(f"{args.save_file} holds output for other input; use --overwrite or another --save_file")
    if any(("llm_pred" in ent) != online for r in done for ent in r["entity"]):
        raise DataError(f"{args.save_file} holds {'local' if online else 'linked'} output; "
                        "use --overwrite or another --save_file")
    if done:
        log.info("%s: continuing after %d sentences already written", args.save_file, len(done))
    return done


def write_records(args, records, done):
    """Append `records` to SAVE_FILE as they come, after the `done` ones, and to `done`."""
    with JsonlWriter(args.save_file, append=bool(done)) as out:
        for rec in records:
            out.write(rec)
            done.append(rec)


def run(args):
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model, featurizer, config = load_checkpoint(args.inference_model, device)
    args.uncertainty_type = check_uncertainty(config, args.uncertainty_type)  # fail before reading the input
    sentences = load_input(args, config["labels"])
    if args.paper_protocol and any(s.entities is None for s in sentences):
        raise DataError(f"{input_name(args)}: --paper_protocol lists the gold spans, so it needs labelled input")
    online = args.llm_name is not None or args.dry_run
    prompts = prompt_builder(args, resolve_spec(args, known=config["labels"])) if online else None
    if args.dry_run:
        return write_prompts(args, iter_records(model, featurizer, config, sentences, args, device), prompts)
    done = resume(args, sentences, online)
    start, before = time.time(), len(done)
    records = iter_records(model, featurizer, config, sentences, args, device, start=before)
    if not online:
        write_records(args, records, done)
        return finish(args, config, done, time.time() - start, len(done) - before)
    # closing: an error or Ctrl-C landing outside the generator stops the LLM workers all the same
    with linking(args, prompts) as linker, closing(linker.link_records(records)) as linked:
        write_records(args, linked, done)
    return finish(args, config, done, time.time() - start, len(done) - before, linker)


def main(argv=None):
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")  # others' INFO (a line per request) stays off
    log.setLevel(logging.INFO)
    parser = build_parser()
    args = parser.parse_args(argv)
    check_link_args(parser, args)
    try:
        return run(args)
    except (DataError, FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
