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
restarted run asks the LLM nothing twice. --html REPORT.html draws the linked records as a page.

The LLM flags, label set, prompt, Linker and metrics below are also local_inference.py's online
mode (`--llm_name`), which links each sentence as the local model tags it.
"""
import argparse
import json
import os
import sys
from contextlib import closing, contextmanager

from dataloaders.readers import DataError
from inference.html_report import write_html
from inference.link_metrics import link_report, plot_sweep, sweep
from inference.linker import Linker
from inference.llm_backends import FatalError, NotConfigured, make_backend
from inference.llm_cache import ReplyCache
from inference.prompt import DATASETS, PromptBuilder, ShotSelector, dataset_spec, generic_spec, with_descriptions
from utils.jsonl import JsonlWriter, read_jsonl, resume_jsonl


def float_list(text):
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def add_link_args(p, llm_name="gpt"):
    """The LLM stage's flags, shared by this script and local_inference.py, where no default
    `llm_name` means "local only unless --llm_name is given"."""
    labels = p.add_argument_group("labels and prompt")
    labels.add_argument("--labels", help="the label set: a comma list or a labels.txt file (overrides the rest)")
    labels.add_argument("--dataname", choices=sorted(DATASETS), type=str.lower,
                        help="the paper's label set and descriptions")
    labels.add_argument("--label_desc", help='JSON {"LABEL": "description"} replacing the label descriptions')
    labels.add_argument("--shot", type=int, default=0, help="examples per label in each prompt")
    labels.add_argument("--shot_strategy", choices=("random", "similar"), default="random")
    labels.add_argument("--selectShot_dir", help="labelled file (spanner JSON or CoNLL columns) to draw examples from")
    online = "local only, unless --llm_name links each sentence online as it is tagged"
    llm = p.add_argument_group("LLM", None if llm_name else online)
    llm.add_argument("--llm_name", default=llm_name,
                     help="gpt / openai (any OpenAI-compatible server), or llama / qwen / hf (a local model)")
    llm.add_argument("--model", help="model name for the server (default gpt-3.5-turbo)")
    llm.add_argument("--base_url", help="OpenAI-compatible server URL (default: OPENAI_BASE_URL, else OpenAI)")
    llm.add_argument("--llm_ckpt", help="local Hugging Face model folder, for llama / qwen / hf")
    llm.add_argument("--temperature", type=float, default=0.3)
    llm.add_argument("--max_tokens", type=int, help="reply length cap (hf default: 32)")
    llm.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    llm.add_argument("--max_attempts", type=int, default=5, help="requests per span at most (unparseable or failed)")
    llm.add_argument("--concurrency", type=int, default=8, help="requests in flight (hf: prompts per batch)")
    link = p.add_argument_group("linking")
    link.add_argument("--threshold", type=float, default=0.4, help="spans with uncertainty above it go to the LLM")
    link.add_argument("--threshold_sweep", type=float_list, default=[],
                      help="comma list of thresholds to score from one pass of calls")
    link.add_argument("--cache", help="reply cache (JSONL); default: llm_cache.jsonl next to --save_file")
    link.add_argument("--no_cache", action="store_true", help="ask every span again")
    link.add_argument("--dry_run", action="store_true", help="call nothing; write the prompts to --prompts_file")
    link.add_argument("--prompts_file", help="for --dry_run; default: SAVE_FILE with .prompts.jsonl")
    link.add_argument("--seed", type=int, default=42, help="for shot sampling and local sampling")


def check_link_args(p, args):
    if args.shot > 0 and not args.selectShot_dir:
        p.error("--shot needs --selectShot_dir, a labelled file to draw examples from")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    io = p.add_argument_group("input and output")
    io.add_argument("--input_file", required=True, help="JSONL from local_inference.py")
    io.add_argument("--save_file", required=True, help="linked JSONL; metrics go to SAVE_FILE.metrics.json")
    io.add_argument("--html", help="also write the linked records as a self-contained HTML page here")
    io.add_argument("--plot_dir", help="draw F1 and calls against the --threshold_sweep thresholds here")
    add_link_args(p)
    args = p.parse_args(argv)
    check_link_args(p, args)
    return args


REQUIRED_SPAN_KEYS = ("entity", "span", "pred", "uncertainty")


def record_problem(rec):
    """What is wrong with one local-inference record, or None."""
    if not (isinstance(rec, dict) and isinstance(rec.get("entity"), list)
            and (rec.get("sentence") or rec.get("tokens"))):
        return "expected an object with 'sentence' or 'tokens' and an 'entity' list"
    for i, span in enumerate(rec["entity"]):
        missing = [key for key in REQUIRED_SPAN_KEYS if key not in span]
        if missing:
            return f"span {i} lacks {', '.join(missing)}"
    return None


def read_records(path):
    """The local-inference JSONL, checked: the message names the line and span at fault."""
    return read_jsonl(path, check=record_problem)


def read_label_list(value):
    """--labels: a labels.txt file (one per line) or a comma list."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    return [label.strip() for label in value.split(",") if label.strip()]


def model_labels(input_file):
    """The local model's labels, from INPUT.metrics.json beside the input, if it is there."""
    path = input_file + ".metrics.json"
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f).get("labels")
        except (ValueError, AttributeError):
            raise DataError(f"{path}: not a metrics JSON object") from None


def seen_labels(records):
    found = {span.get(key) for rec in records for span in rec["entity"] for key in ("pred", "answer")}
    found |= {label for rec in records for _, _, label in rec.get("gold") or []}
    return sorted(found - {None, "O"})


def resolve_spec(args, records=(), known=None):
    """--labels > --dataname > the model's labels `known` (default: those in INPUT.metrics.json)
    > labels seen in the input records."""
    known = model_labels(args.input_file) if known is None else known
    if args.labels:
        spec = generic_spec(read_label_list(args.labels))
    elif args.dataname:
        spec = dataset_spec(args.dataname, known)
    else:
        labels = known or seen_labels(records)
        if not labels:
            raise DataError(f"{args.input_file}: no labels found; pass --labels or --dataname")
        spec = generic_spec(labels)
    if args.label_desc:
        with open(args.label_desc, encoding="utf-8") as f:
            spec = with_descriptions(spec, json.load(f))
    return spec


def prompt_builder(args, spec):
    shots = (ShotSelector.from_file(args.selectShot_dir, spec, args.shot, args.shot_strategy, args.seed)
             if args.shot > 0 else None)
    return PromptBuilder(spec, shots)


def ask_threshold(args):
    """Spans above it are asked: the lowest threshold scored, so one pass serves the whole sweep."""
    return min([args.threshold] + args.threshold_sweep)


def write_prompts(args, records, prompts):
    """--dry_run: the prompts that would be sent, one JSON line each, to --prompts_file."""
    path = args.prompts_file or os.path.splitext(args.save_file)[0] + ".prompts.jsonl"
    threshold, count, chars = ask_threshold(args), 0, 0
    with JsonlWriter(path, append=False) as out:
        for rec in records:
            for span in rec["entity"]:
                if span["uncertainty"] > threshold:
                    prompt = prompts.build(rec, span)
                    out.write({"id": rec.get("id"), "span": span["span"], "prompt": prompt})
                    count, chars = count + 1, chars + len(prompt)
    print(f"dry run: {count} prompts, {chars} characters in all, written to {path}")


@contextmanager
def linking(args, prompts):
    """A Linker for the LLM flags in `args`, its reply cache next to --save_file.

    Leaving the block closes the cache; a fatal LLM error or Ctrl-C inside it ends the
    program with a message that the output so far is kept and a rerun continues it.
    """
    try:
        backend = make_backend(args.llm_name, args.model, args.base_url, args.llm_ckpt, args.temperature,
                               args.max_tokens, args.timeout, batch_size=args.concurrency, seed=args.seed)
    except NotConfigured as err:
        sys.exit(f"{err}.\nRun with --dry_run to write the prompts without calling an LLM.")
    batching = backend.batch_size > 1  # a local model takes its concurrency as batches
    cache = None if args.no_cache else ReplyCache(
        args.cache or os.path.join(os.path.dirname(os.path.abspath(args.save_file)), "llm_cache.jsonl"))
    linker = Linker(backend, prompts, cache, args.threshold, ask_threshold(args), args.max_attempts,
                    concurrency=1 if batching else args.concurrency, progress=True)
    try:
        yield linker
    except FatalError as err:
        sys.exit(f"stopped: {err}\nThe records linked so far are in {args.save_file}; rerun to continue.")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; the records linked so far are in {args.save_file}; rerun to continue.")
    finally:
        if cache is not None:
            cache.close()


def resume_point(args, records):
    """How many records a previous run already wrote; they must be the input's first ones."""
    done = resume_jsonl(args.save_file, check=lambda rec: None if isinstance(rec, dict) else "not a linked record")
    for i, rec in enumerate(done):
        if i >= len(records) or rec.get("id") != records[i].get("id"):
            raise DataError(f"{args.save_file}: line {i + 1} (id {rec.get('id')!r}) is not record {i + 1} of "
                            f"{args.input_file}; delete it or choose another --save_file")
    if done:
        print(f"{args.save_file}: {len(done)} of {len(records)} records already linked; continuing")
    return len(done)


def link_file(args, records, linker):
    done = resume_point(args, records)
    # closing: an error or Ctrl-C landing outside the generator stops its workers all the same
    with JsonlWriter(args.save_file) as out, closing(linker.link_records(records[done:])) as linked:
        for rec in linked:
            out.write(rec)


def link_metrics(args, linked, linker):
    """Scores before and after linking at --threshold, the sweep, and the LLM's counts."""
    metrics = link_report(linked, args.threshold, per_label=True)
    if args.threshold_sweep:
        metrics["sweep"] = sweep(linked, args.threshold_sweep)
        if args.plot_dir:
            os.makedirs(args.plot_dir, exist_ok=True)
            metrics["plot"] = plot_sweep(metrics["sweep"], os.path.join(args.plot_dir, "threshold_sweep.png"))
    metrics["llm"] = {**linker.summary(), "backend": linker.identity}
    return metrics


def write_outputs(args, records, metrics):
    """SAVE_FILE.metrics.json, and with --html the page of the final `records`."""
    with open(args.save_file + ".metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    if args.html:
        write_html(records, args.html, title=os.path.basename(args.save_file))


def report(metrics):
    llm = metrics["llm"]
    print(f"LLM: {llm['asked']} spans asked, {llm['requests']} requests, {llm['cached']} answered from the cache, "
          f"{llm['unparseable']} unparseable, {llm['failed']} failed; tokens {llm['prompt_tokens']} prompt + "
          f"{llm['completion_tokens']} completion; {llm['wall_s']} s, {llm['requests_per_s']} requests/s")
    if "linked" in metrics:
        local, linked = metrics["local"], metrics["linked"]
        print(f"F1 local {local['f1']:.4f} -> linked {linked['f1']:.4f} (P {linked['precision']:.4f}, "
              f"R {linked['recall']:.4f}); {metrics['changed']} labels changed: {metrics['fixed']} fixed, "
              f"{metrics['broken']} broken")


def main(argv=None):
    args = parse_args(argv)
    records = read_records(args.input_file)
    prompts = prompt_builder(args, resolve_spec(args, records))
    if args.dry_run:
        return write_prompts(args, records, prompts)
    with linking(args, prompts) as linker:
        link_file(args, records, linker)
    linked = read_jsonl(args.save_file)
    metrics = link_metrics(args, linked, linker)
    write_outputs(args, linked, metrics)
    report(metrics)
    return metrics


if __name__ == "__main__":
    main()
