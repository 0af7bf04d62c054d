"""Stage two of LinkNER: spans the local model is unsure of, re-labelled by an LLM.

Reads the JSONL that local_inference.py wrote, asks an LLM the type of every span whose
uncertainty is above --threshold, and writes the linked records (every input field kept, plus
llm_pred / llm_raw / llm_answer / llm_status per span) and SAVE_FILE.metrics.json.

    # OpenAI, or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio)
    OPENAI_API_KEY=... python llm_inference.py --input_file out/test.jsonl \\
        --save_file out/test.linked.jsonl --dataname conll03 --llm_name gpt --model gpt-3.5-turbo
    python llm_inference.py ... --llm_name openai --base_url http://localhost:8000/v1 --model Qwen2.5-7B-Instruct
    # a local Hugging Face chat model
    python llm_inference.py ... --llm_name qwen --llm_ckpt /models/Qwen2.5-7B-Instruct
    # no LLM: write the prompts that would be sent
    python llm_inference.py ... --dry_run

Output lines are written as they complete. Rerunning the same command on a partial output
continues after the last complete line, and with the reply cache (on by default) a killed and
restarted run asks the LLM nothing twice. Spans the LLM did not answer (failed, unparseable)
are pending: a rerun asks them again, and a run that ends with failed spans exits with status 3.
One run at a time writes SAVE_FILE (SAVE_FILE.lock); the settings that shape its records are
kept in SAVE_FILE.settings.json, and a rerun with others is refused (a new --threshold
relinks every record from the cache). --html REPORT.html draws the linked records as a page.

The same linking code (inference/llm/) is local_inference.py's online mode (`--llm_name`),
which links each sentence as the local model tags it.
"""
import argparse
import dataclasses
import functools
import sys

from inference.budget import streamed_threshold
from inference.llm.labels import prompt_builder, resolve_spec
from inference.llm.link_output import claim_link_output, inputs_of, link_file, settle_fused, write_prompts
from inference.llm.link_run import check_llm, exit_status, link_metrics, linking, print_link_summary
from inference.records import count_records, iter_records
from inference.llm.settings import LinkSettings, add_link_args, check_link_args
from inference.reports.outputs import write_outputs
from inference.run_files import check_link_run
from utils import flag_types as ft
from utils.cli import run_cli
from utils.jsonl import iter_jsonl
from utils.owned_output import discard_output


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    io = p.add_argument_group("input and output")
    io.add_argument("--input_file", required=True, help="JSONL from local_inference.py")
    io.add_argument("--save_file", required=True, type=ft.output_file, help="linked JSONL; metrics go to SAVE_FILE.metrics.json")
    io.add_argument("--html", type=ft.output_file, help="also write the linked records as a self-contained HTML page here")
    io.add_argument("--plot_dir", type=ft.output_dir, help="draw F1 and calls against the --threshold_sweep thresholds here")
    io.add_argument("--overwrite", action="store_true", help="start SAVE_FILE afresh instead of continuing it")
    io.add_argument("--check", action="store_true",
                    help="check the flags and the LLM configuration, then stop (the input need not exist yet)")
    add_link_args(p)
    args = p.parse_args(argv)
    check_link_args(p, args)
    return args


def run(settings):
    """Link the local records of settings.input_file, read as a stream (a pass to check them and,
    for --budget, a few to find its threshold, then one to link); the metrics (None for a dry run)."""
    records = functools.partial(iter_records, settings.input_file)  # each call reads the file anew
    passes: list[int] = []  # records read by each pass: the budget's first one checks and counts them all

    def uncertainties():
        passes.append(0)
        for rec in records():
            passes[-1] += 1
            yield [s["uncertainty"] for s in rec["entity"]]

    if settings.budget is not None:  # the threshold that sends the most uncertain FRACTION of these spans
        threshold = streamed_threshold(uncertainties, settings.budget)
        settings = dataclasses.replace(settings, threshold=settings.threshold if threshold is None else threshold)
    total = passes[0] if passes and passes[0] else count_records(settings.input_file)  # else a check pass
    prompts = prompt_builder(settings, resolve_spec(settings, records()))
    check_link_run(settings)  # every output against every input, and the LLM set up, before any is opened
    if settings.dry_run:
        if settings.overwrite:  # what SAVE_FILE held belongs to an older input
            discard_output(settings.save_file, inputs_of(settings))
        return write_prompts(settings, records(), prompts)
    # the LLM, its cache and gate are ready before the output is claimed (and, if it must, emptied)
    with linking(settings, prompts) as linker, claim_link_output(settings):  # held until the metrics are written
        link_file(settings, records, total, linker)
        fused = settle_fused(settings.save_file, linker.gate, settings.threshold)
        linked = functools.partial(iter_jsonl, settings.save_file)
        metrics = link_metrics(settings, linked, linker, fused)
        write_outputs(settings.save_file, linked(), metrics, settings.html)
    print_link_summary(metrics)
    return metrics


def main(argv=None):
    args = parse_args(argv)
    if args.check:
        return run_cli(check_llm, LinkSettings.from_args(args))
    metrics = run_cli(run, LinkSettings.from_args(args))
    status = exit_status(metrics, "llm_inference.py", argv)
    if status:
        sys.exit(status)
    return metrics


if __name__ == "__main__":
    main()
