"""The linked output a run owns: refused when it is one of the run's inputs or another run's,
continued after the records a previous run wrote and answered, cut before the first record with
a pending span, and (for --dry_run) the prompts file."""
import os
from contextlib import closing, contextmanager

from inference.llm.settings import RECOMPUTE
from inference.records import pending_spans
from utils.errors import DataError
from utils.jsonl import JsonlWriter, resume_jsonl, rewrite_jsonl
from utils.output_lock import OutputLock
from utils.owned_output import claim_output, refuse_foreign, refuse_inputs


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


@contextmanager
def claim_link_output(settings):
    """SAVE_FILE held for this run (`utils.owned_output.claim_output`): refused when it is an
    input, another run's, not ours, or written with other settings; a new threshold starts it
    afresh, and the records are linked again from the reply cache."""
    fingerprint = {"stage": "link", "input_file": settings.input_file and os.path.abspath(settings.input_file),
                   **settings.fingerprint()}
    if settings.html:
        refuse_inputs(settings.html, {**inputs_of(settings), "--save_file": settings.save_file})
    with claim_output(settings.save_file, fingerprint, inputs_of(settings), settings.overwrite,
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
