"""Stage one: tag every span with a trained SpanNER / E-NER checkpoint, give each entity an
uncertainty, list the spans the model is unsure of as candidates for the LLM, and measure.

    python local_inference.py --inference_model M --data_dir ../shared/data/conll03 --test_mode typos \\
        --uncertainty_type evidential --save_file results/typos.jsonl --plot_dir results/plots
    python local_inference.py --inference_model M --input_file notes.txt --save_file notes.jsonl --html notes.html

Output: one JSON line per sentence in input order (written as it goes; a rerun continues
where a killed one stopped), and SAVE_FILE.metrics.json beside it. One run at a time writes
SAVE_FILE (SAVE_FILE.lock); the settings that shape the records are kept in
SAVE_FILE.settings.json, and a rerun with others is refused unless --overwrite. Raw text (a file, or - for
stdin) is split by `dataloaders.text.tokenize`; its records keep the line as "text" and each
entity a "char_span" [start, end) with text[start:end] == entity.

Online linking: with --llm_name (and the LLM flags of llm_inference.py, whose linking session,
inference/llm/session.py, does the linking) each sentence's spans above --threshold go to the LLM as soon as the sentence is
tagged, and SAVE_FILE holds what llm_inference.py would write from the local output. A rerun
continues, and the reply cache keeps it from asking anything twice; spans the LLM did not
answer are asked again, and a run that ends with failed spans exits with status 3. --dry_run writes the
prompts that would be sent to --prompts_file and nothing else.

    OPENAI_API_KEY=... python local_inference.py --inference_model M --input_file notes.txt \\
        --save_file notes.jsonl --llm_name gpt --model gpt-4o-mini --html notes.html
"""
import argparse
import dataclasses
import logging
import sys
import time
from contextlib import closing

import torch

from inference.llm.session import (exit_status, inputs_of, keep_answered, link_metrics, linking, print_link_summary,
                                   prompt_builder, resolve_spec, say_recomputed, write_prompts)
from inference.llm.settings import RECOMPUTE, LinkSettings, add_link_args, check_link_args
from inference.local.predict import check_uncertainty
from inference.local.tagging import (TagSettings, iter_records, load_input, record_settings, score_records,
                                     write_records, written_records)
from inference.local.dev_calibration import DevCalibration
from inference.local.rescoring import Rescorer
from inference.local.uncertainty import LEARNED, UNCERTAINTY_TYPES
from inference.reports.calibration import calibrated_ece
from inference.reports.outputs import write_outputs
from models.checkpoint import load_checkpoint
from utils import flag_types as t
from utils.cli import run_cli
from utils.errors import DataError
from utils.output_lock import OutputLock
from utils.owned_output import refuse_inputs, start_output

log = logging.getLogger("local_inference")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--inference_model", "--checkpoint", dest="inference_model", required=True, type=t.existing_dir,
      help="checkpoint directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data_dir", type=t.existing_dir, help="data directory (paper layout); its test split is read")
    a("--test_mode", default=TagSettings.test_mode, choices=["ori", "typos", "oov", "ood"], help="CoNLL-2003 robustness test sets")
    source.add_argument("--input_file", type=t.input_file, help="spanner JSON, CoNLL column file, or plain text "
                        "(one sentence per line; - for stdin)")
    a("--input_format", default=TagSettings.input_format, choices=["auto", "spanner", "column", "text"])
    a("--save_file", required=True, type=t.output_file, help="output JSONL")
    a("--uncertainty_type", choices=(*UNCERTAINTY_TYPES, LEARNED),
      help="default: evidential for E-NER, confidence for SpanNER; learned: the checkpoint's error predictor")
    a("--mc_samples", type=t.positive_int, default=TagSettings.mc_samples, help="stochastic passes for mc_dropout")
    a("--candidate_threshold", type=t.number, default=TagSettings.candidate_threshold,
      help="spans tagged O with uncertainty above this become LLM candidates (negative: none; default: the "
      "checkpoint's dev-calibrated one, else 0.4)")
    a("--paper_protocol", action="store_true",
      help="GOLD-INFORMED: also list every gold span, as the paper's released code does (for comparison only)")
    a("--batch_size", type=t.positive_int, default=TagSettings.batch_size)
    a("--device", default=TagSettings.device, type=t.device, help="auto, cpu, cuda, cuda:1, ...")
    a("--plot_dir", type=t.output_dir, help="write a reliability diagram and a risk-coverage curve here (PNG); online with "
      "--threshold_sweep, also F1 and calls against the thresholds")
    a("--html", type=t.output_file, help="also write the records as a self-contained HTML page here")
    a("--overwrite", action="store_true", help="start SAVE_FILE afresh instead of continuing it")
    add_link_args(p, llm_name=None)
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    check_link_args(parser, args)
    return args


def finish(settings, link, config, records, seconds, n_new, linker=None, rescorer=None):
    """SAVE_FILE.metrics.json, the plots and the page; online, the link scores with the local
    metrics under "local_inference" (and the labels on top, where llm_inference.py reads them)."""
    metrics = score_records(settings, config, records, seconds, n_new)
    if rescorer is not None and rescorer.temperature is not None and "ece" in metrics:
        golds = [[tuple(g) for g in r["gold"]] for r in records]
        metrics.update(temperature=rescorer.temperature,
                       ece_calibrated=calibrated_ece([r["entity"] for r in records], golds))
    if linker is not None:
        metrics = {**link_metrics(link, records, linker), "labels": config.labels, "local_inference": metrics}
        print_link_summary(metrics)
    write_outputs(settings.save_file, records, metrics, settings.html)
    return metrics


def calibrated_settings(settings, link, config, featurizer, device="cpu"):
    """The uncertainty type, the candidate threshold (the checkpoint's dev default when not
    given) and, for an online --budget, the threshold it implies on dev; and the `Rescorer`."""
    calibration = DevCalibration.load(settings.inference_model)
    unc = check_uncertainty(config, settings.uncertainty_type)
    candidate = settings.candidate_threshold
    settings = dataclasses.replace(settings, uncertainty_type=unc, candidate_threshold=(
        calibration.candidate_default(unc) if candidate is None else candidate))
    if link.online and link.budget is not None:
        link = dataclasses.replace(link, threshold=calibration.budget_threshold(unc, link.budget, settings.inference_model))
    return settings, link, Rescorer(settings.inference_model, config, featurizer, unc, calibration, device)


def run(settings, link):
    """Tag the input with the checkpoint; online (`link.online`), link each sentence as it comes."""
    if link.dry_run:
        return tag(settings, link)
    with OutputLock(settings.save_file):  # one run per output, refused at once
        return tag(settings, link)


def tag(settings, link):
    device = ("cuda" if torch.cuda.is_available() else "cpu") if settings.device == "auto" else settings.device
    model, featurizer, config = load_checkpoint(settings.inference_model, device)
    # fail before reading the input
    settings, link, rescorer = calibrated_settings(settings, link, config, featurizer, device)
    sentences = load_input(settings, config.labels)
    if settings.paper_protocol and any(s.entities is None for s in sentences):
        raise DataError(f"{settings.input_name}: --paper_protocol lists the gold spans, so it needs labelled input")
    prompts = prompt_builder(link, resolve_spec(link, known=config.labels)) if link.online else None
    if link.dry_run:
        return write_prompts(link, iter_records(model, featurizer, config, sentences, settings, device,
                                                rescorer=rescorer), prompts)
    inputs = {**inputs_of(link), "--input_file": settings.input_file}
    if settings.html:
        refuse_inputs(settings.html, {**inputs, "--save_file": settings.save_file})
    shaping = {**record_settings(settings, config), "online": link.online,
               **(link.record_settings() if link.online else {})}
    say_recomputed(link, start_output(settings.save_file, shaping, inputs, settings.overwrite,
                                      RECOMPUTE if link.online else ()))
    done = written_records(settings, sentences)
    if link.online:
        keep_answered(settings.save_file, done)
    start, before = time.time(), len(done)
    records = iter_records(model, featurizer, config, sentences, settings, device, start=before, rescorer=rescorer)
    if not link.online:
        write_records(settings.save_file, records, done)
        return finish(settings, link, config, done, time.time() - start, len(done) - before, rescorer=rescorer)
    # closing: an error or Ctrl-C landing outside the generator stops the LLM workers all the same
    with linking(link, prompts) as linker, closing(linker.link_records(records)) as linked:
        write_records(settings.save_file, linked, done)
    return finish(settings, link, config, done, time.time() - start, len(done) - before, linker, rescorer)


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
