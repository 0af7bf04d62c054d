"""The linked output a run owns: refused when it is one of the run's inputs or another run's,
continued after the records a previous run wrote and answered, cut before the first record with
a pending span, and (for --dry_run) the prompts file. The output's settings hold the digest of
the local JSONL it links: a local output regenerated since (by another model) is refused, never
"continued" as if it were the one linked before (--overwrite links it afresh, from the cache)."""

from __future__ import annotations

import json
import os
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NoReturn, Optional

from inference.fuse.gate import Gate
from inference.fuse.run import Run, settle
from inference.llm.settings import RECOMPUTE, LinkSettings
from inference.records import pending_spans, read_records
from utils.errors import DataError
from utils.file_digest import file_digest
from utils.jsonl import JsonlWriter, complete_lines, resume_jsonl, rewrite_jsonl
from utils.output_lock import OutputLock
from utils.owned_output import check_settings, claim_output, recorded_settings, refuse_foreign, refuse_inputs

if TYPE_CHECKING:
    from inference.llm.linker import Linker
    from inference.llm.prompt import PromptBuilder


def inputs_of(settings: LinkSettings) -> dict[str, Optional[str]]:
    """The run's inputs, which no output may be: {flag: path}."""
    return {"--input_file": settings.input_file, "--labels": settings.labels, "--label_desc": settings.label_desc,
            "--selectShot_dir": settings.selectShot_dir}


def cache_path(settings: LinkSettings) -> Optional[str]:
    """The reply cache: --cache, else llm_cache.jsonl beside SAVE_FILE; None with --no_cache."""
    if settings.no_cache:
        return None
    return settings.cache or os.path.join(os.path.dirname(os.path.abspath(settings.save_file)), "llm_cache.jsonl")


def prompts_path(settings: LinkSettings) -> str:
    """--dry_run's output: --prompts_file, else SAVE_FILE with .prompts.jsonl."""
    return settings.prompts_file or os.path.splitext(settings.save_file)[0] + ".prompts.jsonl"


def write_prompts(settings: LinkSettings, records: Iterable[dict], prompts: PromptBuilder) -> None:
    """--dry_run: the prompts that would be sent, one JSON line each, to --prompts_file."""
    path = prompts_path(settings)
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


def link_fingerprint(settings: LinkSettings) -> dict:
    """What shapes the linked records, kept beside SAVE_FILE: the input (its path and digest)
    and the LLM stage's settings."""
    return {"stage": "link", "input_file": settings.input_file and os.path.abspath(settings.input_file),
            INPUT_DIGEST: file_digest(settings.input_file), **settings.fingerprint()}


def check_link_output(settings: LinkSettings) -> tuple[dict, tuple]:
    """Read-only, before any output is touched: the refusals `claim_link_output` would make
    (another input's output, other settings); (fingerprint, recomputable settings)."""
    fingerprint = link_fingerprint(settings)
    linked = (recorded_settings(settings.save_file) or {}).get(INPUT_DIGEST)
    if linked not in (None, fingerprint[INPUT_DIGEST]) and not settings.overwrite:
        refuse_changed_input(settings)
    recompute = (*RECOMPUTE, INPUT_DIGEST) if linked is None else RECOMPUTE  # older outputs: relinked
    check_settings(settings.save_file, json.loads(json.dumps(fingerprint)), settings.overwrite, recompute)
    return fingerprint, recompute


@contextmanager
def claim_link_output(settings: LinkSettings) -> Iterator[dict[str, tuple[Any, Any]]]:
    """SAVE_FILE held for this run (`utils.owned_output.claim_output`): refused when it is an
    input, another run's, not ours, or written with other settings; a new threshold starts it
    afresh, and the records are linked again from the reply cache. An output of another version
    of the input (its digest) is refused; one from before digests were recorded is relinked."""
    fingerprint, recompute = check_link_output(settings)  # --html: checked with every output (run_files)
    with claim_output(settings.save_file, fingerprint, inputs_of(settings), settings.overwrite,
                      recompute) as changed:
        say_recomputed(settings, changed)
        yield changed


INPUT_DIGEST = "input_digest"  # the content of the local JSONL an output links


def refuse_changed_input(settings: LinkSettings) -> NoReturn:
    """SAVE_FILE links another version of --input_file: a DataError naming the first record
    that is not the input's, or, when every one is (the same sentences, tagged again, by
    another model perhaps), saying that its records would keep the old local predictions."""
    done = []
    for line in complete_lines(settings.save_file, repair=False):  # not ours to repair before the lock
        try:
            done.append(json.loads(line))
        except ValueError:
            break
    same_records(settings, done, [{"id": rec.get("id")} for rec in read_records(settings.input_file)])
    raise DataError(f"{settings.save_file}: links an earlier version of {settings.input_file}, which changed since "
                    "(tagged again, by another model?); continuing would keep the old local predictions: use "
                    "--overwrite to link it afresh (replies already paid for come from the cache), or choose "
                    "another --save_file")


def same_records(settings: LinkSettings, done: list, records: list) -> None:
    """A DataError at the first record of `done` (linked before) that is not the same record of
    `records` (the input)."""
    for i, rec in enumerate(done):
        if not isinstance(rec, dict) or i >= len(records) or rec.get("id") != records[i].get("id"):
            rec_id = rec.get("id") if isinstance(rec, dict) else None
            raise DataError(f"{settings.save_file}: line {i + 1} (id {rec_id!r}) is not record {i + 1} of "
                            f"{settings.input_file}; use --overwrite or choose another --save_file")


def say_recomputed(settings: LinkSettings, changed: dict[str, tuple[Any, Any]]) -> None:
    if changed:
        what = ", ".join(f"{settings.input_file}'s digest was not recorded" if key == INPUT_DIGEST
                         else f"{key} {old} -> {new}" for key, (old, new) in changed.items())
        print(f"{settings.save_file}: {what}; every record is linked again"
              f"{'' if settings.no_cache else ' (replies from the cache)'}")


def keep_answered(save_file: str, done: list[dict]) -> int:
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


def resume_point(settings: LinkSettings, records: list[dict]) -> int:
    """How many records a previous run already wrote and answered; they must be the input's first ones."""
    save_file = settings.save_file
    done = resume_jsonl(save_file, check=lambda rec: None if isinstance(rec, dict) else "not a linked record")
    same_records(settings, done, records)
    keep = keep_answered(save_file, done)
    if keep:
        print(f"{save_file}: {keep} of {len(records)} records already linked; continuing")
    return keep


def link_file(settings: LinkSettings, records: list[dict], linker: Linker) -> None:
    """Link `records` into SAVE_FILE, after the ones a previous run already wrote."""
    done = resume_point(settings, records)
    # closing: an error or Ctrl-C landing outside the generator stops its workers all the same
    with JsonlWriter(settings.save_file) as out, closing(linker.link_records(records[done:])) as linked:
        for rec in linked:
            out.write(rec)


def settle_fused(save_file: str, linked: list[dict], gate: Optional[Gate], threshold: float) -> Optional[Run]:
    """With --combine fuse, once every answer is in: each sent span's final label (`llm_pred`),
    decided once by the gate adapted to the run (`inference.fuse.run.settle`). SAVE_FILE is
    replaced, atomically, when a label changed. `linked` is updated in place."""
    if gate is None:
        return None
    run, changed = settle(linked, gate, threshold)
    if changed:
        rewrite_jsonl(save_file, linked)
    return run
