"""The linking session that llm_inference.py and local_inference.py's online mode share: the
label set, the prompt builder, the backend, reply cache and Linker, the linked output, its
scores and the console summary. Every function reads a `LinkSettings`."""
import json
import math
import os
import shlex
import sys
from contextlib import closing, contextmanager

from inference.llm.backends import FatalError, NotConfigured, check_configured, make_backend
from inference.llm.cache import ReplyCache
from inference.llm.linker import Linker, pending_spans
from inference.llm.prompt import PromptBuilder, ShotSelector, dataset_spec, generic_spec, with_descriptions
from inference.llm.settings import RECOMPUTE
from inference.reports.link_metrics import link_report, plot_sweep, status_counts, sweep
from utils.errors import DataError
from utils.jsonl import JsonlWriter, read_jsonl, resume_jsonl, rewrite_jsonl
from utils.output_lock import OutputLock
from utils.owned_output import claim_output, refuse_foreign, refuse_inputs

REQUIRED_SPAN_KEYS = ("entity", "span", "pred", "uncertainty")


def record_problem(rec):
    """What is wrong with one local-inference record, or None."""
    if not (isinstance(rec, dict) and isinstance(rec.get("entity"), list)
            and (rec.get("sentence") or rec.get("tokens"))):
        return "expected an object with 'sentence' or 'tokens' and an 'entity' list"
    n_words = len(rec["tokens"]) if isinstance(rec.get("tokens"), list) else len(str(rec.get("sentence")).split())
    for i, span in enumerate(rec["entity"]):
        if not isinstance(span, dict):
            return f"span {i} is not an object"
        missing = [key for key in REQUIRED_SPAN_KEYS if key not in span]
        if missing:
            return f"span {i} lacks {', '.join(missing)}"
        problem = span_problem(span, n_words)
        if problem:
            return f"span {i}: {problem}"
    return None


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def span_problem(span, n_words):
    """What is wrong with the values of one span, or None."""
    unc, where, pred = span["uncertainty"], span["span"], span["pred"]
    if not _number(unc) or not math.isfinite(unc):
        return f"uncertainty {unc!r} is not a finite number"
    if not (isinstance(where, list) and len(where) == 2 and all(_number(x) and x == int(x) for x in where)):
        return f"span {where!r} is not [start, end]"
    if not 0 <= where[0] <= where[1] < n_words:
        return f"span {where} lies outside the sentence of {n_words} words"
    if not isinstance(pred, str):
        return f"pred {pred!r} is not a label"
    return None


def read_records(path):
    """The local-inference JSONL, checked: the message names the line and span at fault."""
    records = read_jsonl(path, check=record_problem)
    if not records:
        raise DataError(f"{path}: no records (an empty file); expected the JSONL of local_inference.py")
    return records


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


def resolve_spec(settings, records=(), known=None):
    """--labels > --dataname > the model's labels `known` (default: those in INPUT.metrics.json)
    > labels seen in the input records."""
    known = model_labels(settings.input_file) if known is None else known
    if settings.labels:
        spec = generic_spec(read_label_list(settings.labels))
    elif settings.dataname:
        spec = dataset_spec(settings.dataname, known)
    else:
        labels = known or seen_labels(records)
        if not labels:
            raise DataError(f"{settings.input_file}: no labels found; pass --labels or --dataname")
        spec = generic_spec(labels)
    if settings.label_desc:
        with open(settings.label_desc, encoding="utf-8-sig") as f:
            spec = with_descriptions(spec, json.load(f))
    return spec


def prompt_builder(settings, spec):
    shots = (ShotSelector.from_file(settings.selectShot_dir, spec, settings.shot, settings.shot_strategy, settings.seed)
             if settings.shot > 0 else None)
    return PromptBuilder(spec, shots)


def inputs_of(settings):
    """The run's inputs, which no output may be: {flag: path}."""
    return {"--input_file": settings.input_file, "--labels": settings.labels, "--label_desc": settings.label_desc,
            "--selectShot_dir": settings.selectShot_dir}


def write_prompts(settings, records, prompts):
    """--dry_run: the prompts that would be sent, one JSON line each, to --prompts_file."""
    path = settings.prompts_file or os.path.splitext(settings.save_file)[0] + ".prompts.jsonl"
    refuse_inputs(path, {**inputs_of(settings), "--save_file": settings.save_file})
    refuse_foreign(path, "prompts file", lambda rec: "prompt" in rec)
    threshold, count, chars = settings.ask_threshold, 0, 0
    with OutputLock(path), JsonlWriter(path, append=False) as out:
        for rec in records:
            for span in rec["entity"]:
                if span["uncertainty"] > threshold:
                    prompt = prompts.build(rec, span)
                    out.write({"id": rec.get("id"), "span": span["span"], "prompt": prompt})
                    count, chars = count + 1, chars + len(prompt)
    print(f"dry run: {count} prompts, {chars} characters in all, written to {path}")


def check_llm(settings):
    """--check: the flags are parsed; is an LLM configured? Nothing is called or loaded."""
    s = settings
    if not s.dry_run:
        try:
            check_configured(s.llm_name, s.model, s.base_url, s.llm_ckpt, s.timeout)
        except NotConfigured as err:
            sys.exit(f"error: {err}")
    print("settings OK")
    return 0


@contextmanager
def linking(settings, prompts):
    """A Linker for the LLM settings, its reply cache next to --save_file.

    Leaving the block closes the cache; a fatal LLM error or Ctrl-C inside it ends the
    program with a message that the output so far is kept and a rerun continues it.
    """
    s = settings
    try:
        backend = make_backend(s.llm_name, s.model, s.base_url, s.llm_ckpt, s.temperature,
                               s.max_tokens, s.timeout, batch_size=s.concurrency, seed=s.seed,
                               options=prompts.spec.option_names() if s.answer_mode == "choice" else None)
    except NotConfigured as err:
        sys.exit(f"{err}.\nRun with --dry_run to write the prompts without calling an LLM.")
    batching = backend.batch_size > 1  # a local model takes its concurrency as batches
    cache = None
    if not s.no_cache:
        path = s.cache or os.path.join(os.path.dirname(os.path.abspath(s.save_file)), "llm_cache.jsonl")
        refuse_inputs(path, {**inputs_of(s), "--save_file": s.save_file})
        cache = ReplyCache(path)
    linker = Linker(backend, prompts, cache, s.threshold, s.ask_threshold, s.max_attempts,
                    concurrency=1 if batching else s.concurrency, progress=True)
    try:
        yield linker
    except FatalError as err:
        sys.exit(f"stopped: {err}\nThe records linked so far are in {s.save_file}; rerun to continue.")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; the records linked so far are in {s.save_file}; rerun to continue.")
    finally:
        if cache is not None:
            cache.close()


@contextmanager
def claim_link_output(settings):
    """SAVE_FILE held for this run (`utils.owned_output.claim_output`): refused when it is an
    input, another run's, not ours, or written with other settings; a new threshold starts it
    afresh, and the records are linked again from the reply cache."""
    record_settings = {"stage": "link", "input_file": settings.input_file and os.path.abspath(settings.input_file),
                       **settings.record_settings()}
    if settings.html:
        refuse_inputs(settings.html, {**inputs_of(settings), "--save_file": settings.save_file})
    with claim_output(settings.save_file, record_settings, inputs_of(settings), settings.overwrite,
                      RECOMPUTE) as changed:
        say_recomputed(settings, changed)
        yield changed


def say_recomputed(settings, changed):
    if changed:
        what = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
        print(f"{settings.save_file}: {what}; every record is linked again"
              f"{'' if settings.no_cache else ' (replies from the cache)'}")


def keep_answered(save_file, done):
    """How many of the `done` records stay: those before the first one with a pending span
    (failed or unparseable), which a rerun asks again. The file is cut there."""
    keep = next((i for i, rec in enumerate(done) if pending_spans(rec)), len(done))
    if keep < len(done):
        n = sum(pending_spans(rec) for rec in done[keep:])
        print(f"{save_file}: {n} spans were left unanswered (failed or unparseable); asking them again "
              f"from record {keep + 1} on")
        rewrite_jsonl(save_file, done[:keep])
        del done[keep:]
    return keep


def resume_point(settings, records):
    """How many records a previous run already wrote and answered; they must be the input's first ones."""
    save_file = settings.save_file
    done = resume_jsonl(save_file, check=lambda rec: None if isinstance(rec, dict) else "not a linked record")
    for i, rec in enumerate(done):
        if i >= len(records) or rec.get("id") != records[i].get("id"):
            raise DataError(f"{save_file}: line {i + 1} (id {rec.get('id')!r}) is not record {i + 1} of "
                            f"{settings.input_file}; use --overwrite or choose another --save_file")
    keep = keep_answered(save_file, done)
    if keep:
        print(f"{save_file}: {keep} of {len(records)} records already linked; continuing")
    return keep


def link_file(settings, records, linker):
    """Link `records` into SAVE_FILE, after the ones a previous run already wrote."""
    done = resume_point(settings, records)
    # closing: an error or Ctrl-C landing outside the generator stops its workers all the same
    with JsonlWriter(settings.save_file) as out, closing(linker.link_records(records[done:])) as linked:
        for rec in linked:
            out.write(rec)


def link_metrics(settings, linked, linker):
    """Scores before and after linking at --threshold, the sweep, and the LLM's counts."""
    metrics = link_report(linked, settings.threshold, per_label=True)
    if settings.budget is not None:
        listed = sum(len(rec["entity"]) for rec in linked)
        metrics.update(budget=settings.budget, listed=listed, sent_share=metrics["sent"] / listed if listed else 0.0)
    if settings.threshold_sweep:
        metrics["sweep"] = sweep(linked, settings.threshold_sweep)
        if settings.plot_dir:
            os.makedirs(settings.plot_dir, exist_ok=True)
            metrics["plot"] = plot_sweep(metrics["sweep"], os.path.join(settings.plot_dir, "threshold_sweep.png"))
    # the spans' outcome over the whole output; requests, tokens and time are this run's
    metrics["llm"] = {**linker.summary(), **status_counts(linked), "backend": linker.identity}
    return metrics


def exit_status(metrics, script, argv=None):
    """0, or 3 when spans failed (no answer from the LLM): the last line then says how many
    and the command that asks them again."""
    llm = (metrics or {}).get("llm") or {}
    command = shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])
    if llm.get("unparseable"):
        print(f"{llm['unparseable']} spans got no reply that names a label; a rerun asks them again: {command}")
    if llm.get("failed"):
        print(f"error: {llm['failed']} spans failed (no answer from the LLM) and are kept as pending; "
              f"rerun to ask them: {command}", file=sys.stderr)
        return 3
    return 0


def print_link_summary(metrics):
    """The console lines of a linking run: the LLM's counts, and the F1 before and after."""
    llm = metrics["llm"]
    print(f"LLM: {llm['asked']} spans asked in the output: {llm['linked']} linked, {llm['cached']} from the cache, "
          f"{llm['unparseable']} unparseable, {llm['failed']} failed; this run: {llm['requests']} requests, "
          f"tokens {llm['prompt_tokens']} prompt + "
          f"{llm['completion_tokens']} completion; {llm['wall_s']} s, {llm['requests_per_s']} requests/s")
    if "linked" in metrics:
        local, linked = metrics["local"], metrics["linked"]
        print(f"F1 local {local['f1']:.4f} -> linked {linked['f1']:.4f} (P {linked['precision']:.4f}, "
              f"R {linked['recall']:.4f}); {metrics['changed']} labels changed: {metrics['fixed']} fixed, "
              f"{metrics['broken']} broken")
