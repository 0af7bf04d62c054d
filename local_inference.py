"""Stage one: tag every span with a trained SpanNER / E-NER checkpoint, give each entity an
uncertainty, list the spans the model is unsure of as candidates for the LLM, and measure.

    python local_inference.py --inference_model M --data_dir ../shared/data/conll03 --test_mode typos \\
        --uncertainty_type evidential --save_file results/typos.jsonl --plot_dir results/plots
    python local_inference.py --inference_model M --input_file notes.txt --save_file notes.jsonl --html notes.html

Output: one JSON line per sentence in input order (written as it goes; a rerun continues
where a killed one stopped), and SAVE_FILE.metrics.json beside it. The input is read as it is
tagged and the metrics accumulate as the records are written, so memory does not grow with the
input (a few bytes per predicted entity aside: `inference.reports.calibration.LocalScores`);
a corpus of any size streams through, --workers N side by side, or across machines with Ray
(`python -m inference.local.ray_tag`, docs/usage.md). One run at a time writes
SAVE_FILE (SAVE_FILE.lock); the settings that shape the records are kept in
SAVE_FILE.settings.json, and a rerun with others is refused unless --overwrite. Raw text (a file, or - for
stdin) is split by `dataloaders.text.tokenize`; its records keep the line as "text" and each
entity a "char_span" [start, end) with text[start:end] == entity.

Online linking: with --llm_name (and the LLM flags of llm_inference.py, the same inference/llm
code) each sentence's spans above --threshold go to the LLM as soon as the sentence is tagged, and SAVE_FILE holds what llm_inference.py would write from the local output. A rerun
continues, and the reply cache keeps it from asking anything twice; spans the LLM did not
answer are asked again, and a run that ends with failed spans exits with status 3. --dry_run writes the
prompts that would be sent to --prompts_file and nothing else.

    OPENAI_API_KEY=... python local_inference.py --inference_model M --input_file notes.txt \\
        --save_file notes.jsonl --llm_name gpt --model gpt-4o-mini --html notes.html
"""
import argparse
import dataclasses
import functools
import logging
import sys
import time
from contextlib import closing

import torch

from dataloaders.readers import FORMATS
from inference.llm.labels import prompt_builder, resolve_spec
from inference.llm.link_output import inputs_of, keep_answered, say_recomputed, settle_fused, write_prompts
from inference.llm.link_run import exit_status, link_metrics, linking, print_link_summary
from inference.llm.settings import RECOMPUTE, LinkSettings, add_link_args, check_link_args
from inference.local.tagging import (TagSettings, calibrated, fingerprint, iter_records, load_input, resume,
                                     score_records, write_records, written_records)
from inference.local.uncertainty import LEARNED, UNCERTAINTY_TYPES
from inference.reports.calibration import LocalScores
from inference.reports.outputs import write_outputs
from inference.run_files import check_local_run
from models.checkpoint import load_checkpoint
from models.quantize import QUANTIZE, quantize_model
from utils import flag_types as ft
from utils.cli import run_cli
from utils.errors import ConfigError, DataError
from utils.jsonl import iter_jsonl
from utils.output_lock import OutputLock
from utils.owned_output import start_output

log = logging.getLogger("local_inference")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--inference_model", "--checkpoint", dest="inference_model", required=True, type=ft.existing_dir,
      help="checkpoint directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data_dir", type=ft.existing_dir, help="data directory (paper layout); its test split is read")
    a("--test_mode", default=TagSettings.test_mode, choices=["ori", "typos", "oov", "ood"], help="CoNLL-2003 robustness test sets")
    source.add_argument("--input_file", type=ft.input_file, help="spanner JSON, CoNLL column file, or plain text "
                        "(one sentence per line; - for stdin)")
    a("--input_format", default=TagSettings.input_format, choices=["auto", *FORMATS],
      help="spanner: a JSON array of spanner records; jsonl: one JSON object per line, a spanner record, "
      '{"tokens": [...], "gold": [[start, end, label]]} or {"text": "raw line"}')
    a("--save_file", required=True, type=ft.output_file, help="output JSONL")
    a("--uncertainty_type", choices=(*UNCERTAINTY_TYPES, LEARNED),
      help="default: evidential for E-NER, confidence for SpanNER; learned: the checkpoint's error predictor")
    a("--mc_samples", type=ft.whole_number(1000), default=TagSettings.mc_samples, help="stochastic passes for mc_dropout")
    a("--candidate_threshold", type=ft.number, default=TagSettings.candidate_threshold,
      help="spans tagged O with uncertainty above this become LLM candidates (negative: none; default: the "
      "checkpoint's dev-calibrated one, else 0.4)")
    a("--paper_protocol", action="store_true",
      help="GOLD-INFORMED: also list every gold span, as the paper's released code does (for comparison only)")
    a("--batch_size", type=ft.whole_number(8192), default=TagSettings.batch_size)
    a("--device", default=TagSettings.device, type=ft.device, help="auto, cpu, cuda, cuda:1, ...")
    a("--workers", type=ft.whole_number(256), default=TagSettings.workers,
      help="CPU processes tagging side by side, one torch thread each (the same output in the same order; "
      "e.g. the number of cores for a large input)")
    a("--plot_dir", type=ft.output_dir, help="write a reliability diagram and a risk-coverage curve here (PNG); online with "
      "--threshold_sweep, also F1 and calls against the thresholds")
    a("--html", type=ft.output_file, help="also write the records as a self-contained HTML page here")
    a("--overwrite", action="store_true", help="start SAVE_FILE afresh instead of continuing it")
    a("--quantize", choices=QUANTIZE, default=TagSettings.quantize,
      help="int8: dynamic int8 LSTM and linear layers on the CPU (F1 and AUROC measured in docs/speed.md)")
    add_link_args(p, llm_name=None)
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_link_args(parser, args)
    if args.paper_protocol and args.combine == "fuse":
        parser.error("--paper_protocol reproduces the paper, whose rule is --combine override")
    return args


def finish(settings, link, config, scores, seconds, n_new, linker=None, rescorer=None):
    """SAVE_FILE.metrics.json, the plots and the page; online, the link scores with the local
    metrics under "local_inference" (and the labels on top, where llm_inference.py reads them).
    `scores`: the `LocalScores` of every record of SAVE_FILE; the reports read SAVE_FILE itself,
    a record at a time."""
    metrics = score_records(settings, config, scores, seconds, n_new)
    if rescorer is not None and rescorer.temperature is not None and "ece" in metrics:
        metrics.update(temperature=rescorer.temperature, ece_calibrated=scores.calibrated_ece())
    records = functools.partial(iter_jsonl, settings.save_file)
    if linker is not None:
        fused = settle_fused(settings.save_file, linker.gate, link.threshold)
        metrics = {**link_metrics(link, records, linker, fused), "labels": config.labels, "local_inference": metrics}
        print_link_summary(metrics)
    write_outputs(settings.save_file, records(), metrics, settings.html)
    return metrics


def run(settings, link):
    """Tag the input with the checkpoint; online (`link.online`), link each sentence as it comes."""
    check_local_run(settings, link)  # every output against every input, before any is opened
    if link.dry_run:
        return tag(settings, link)
    with OutputLock(settings.save_file):  # one run per output, refused at once
        return tag(settings, link)


def tag(settings, link):
    device = ("cuda" if torch.cuda.is_available() else "cpu") if settings.device == "auto" else settings.device
    if settings.workers > 1 and device != "cpu":
        raise DataError(f"--workers {settings.workers} runs on the CPU: give --device cpu, or one worker on {device}")
    model, featurizer, config = load_checkpoint(settings.inference_model, device)
    if settings.quantize != "none" and device != "cpu":
        raise ConfigError(f"--quantize {settings.quantize} runs on the CPU: give --device cpu")
    model = quantize_model(model, settings.quantize)
    # fail before reading the input
    settings, calibration, rescorer = calibrated(settings, config, featurizer, device)
    if link.online and link.budget is not None:  # the threshold that sends FRACTION of the dev spans
        link = dataclasses.replace(link, threshold=calibration.budget_threshold(
            settings.uncertainty_type, link.budget, settings.inference_model))
    sentences = load_input(settings, config.labels)
    records = lambda rest, start, skip: iter_records(model, featurizer, config, rest, settings, device,  # noqa: E731
                                                     start=start, skip=skip, rescorer=rescorer)
    run = tag_only if not link.online else tag_and_link
    return run(settings, link, config, sentences, records, rescorer)


def tag_only(settings, link, config, sentences, records, rescorer):
    """Stage one alone: the local records into SAVE_FILE as they come, continuing a killed
    run's; nothing is held but a chunk of sentences and the metrics' accumulators."""
    inputs = {**inputs_of(link), "--input_file": settings.input_file}
    start_output(settings.save_file, {**fingerprint(settings, config), "online": False}, inputs, settings.overwrite)
    scores = LocalScores()
    done, first, rest = resume(settings, written_records(settings.save_file), sentences, scores.add_record)
    start = time.time()
    n_new = write_records(settings.save_file, records(rest, first, done - first), done > 0, scores.add_record)
    scores.flush()  # the last waiting entities inside the timed run
    return finish(settings, link, config, scores, time.time() - start, n_new, rescorer=rescorer)


def tag_and_link(settings, link, config, sentences, records, rescorer):
    """Both stages, online: each sentence's uncertain spans go to the LLM as soon as it is tagged."""
    prompts = prompt_builder(link, resolve_spec(link, known=config.labels))
    if link.dry_run:
        return write_prompts(link, records(sentences, 0, 0), prompts)
    inputs = {**inputs_of(link), "--input_file": settings.input_file}
    with linking(link, prompts) as linker:  # the LLM ready before the output is started (or emptied)
        say_recomputed(link, start_output(settings.save_file, {**fingerprint(settings, config), "online": True,
                                                               **link.fingerprint()},
                                          inputs, settings.overwrite, RECOMPUTE))
        done = list(written_records(settings.save_file))  # held until keep_answered reads a stream
        keep_answered(settings.save_file, done)
        scores = LocalScores()
        n_done, first, rest = resume(settings, done, sentences, scores.add_record)
        del done
        start = time.time()
        # closing: an error or Ctrl-C landing outside the generator stops the LLM workers all the same
        with closing(linker.link_records(records(rest, first, n_done - first))) as linked:
            n_new = write_records(settings.save_file, linked, n_done > 0, scores.add_record)
        scores.flush()
    return finish(settings, link, config, scores, time.time() - start, n_new, linker, rescorer)


def main(argv=None):
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")  # others' INFO (a line per request) stays off
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    metrics = run_cli(run, TagSettings.from_args(args), LinkSettings.from_args(args))
    status = exit_status(metrics, "local_inference.py", argv)
    if status:
        sys.exit(status)
    return metrics


if __name__ == "__main__":
    main()
