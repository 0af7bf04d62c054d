"""The linked output a run owns: refused when it is one of the run's inputs or another run's,
continued after the records a previous run wrote and answered, cut before the first record with
a pending span, and (for --dry_run) the prompts file. The output's settings hold the digest of
the local JSONL it links: a local output regenerated since (by another model) is refused, never
"continued" as if it were the one linked before (--overwrite links it afresh, from the cache)."""

from __future__ import annotations

import json
import os
from contextlib import closing, contextmanager
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NoReturn, Optional

from inference.fuse.gate import Gate
from inference.fuse.run import Run, adapt, sent_answered, settle_record
from inference.llm.settings import RECOMPUTE, LinkSettings
from inference.records import iter_records, pending_spans
from utils.errors import DataError
from utils.file_digest import file_digest
from utils.jsonl import JsonlWriter, complete_lines, cut_partial_line, iter_jsonl, offset_records, rewrite_jsonl
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
    assert settings.input_file is not None  # a linked file's run: --input_file is required
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
    of the input (its digest) is refused; one from before digests were recorded is relinked. A
    run that starts it afresh replaces the output there only once its own spans are all
    answered (`all_answered`)."""
    fingerprint, recompute = check_link_output(settings)  # --html: checked with every output (run_files)
    with claim_output(settings.save_file, fingerprint, inputs_of(settings), settings.overwrite,
                      recompute, finished=all_answered) as changed:
        say_recomputed(settings, changed)
        yield changed


INPUT_DIGEST = "input_digest"  # the content of the local JSONL an output links


def all_answered(save_file: str) -> bool:
    """Whether no span of SAVE_FILE is pending (failed or unparseable): only then does a run that
    started it afresh (--overwrite, a new threshold) replace the output that was there."""
    return not any(pending_spans(rec) for rec in iter_jsonl(save_file))


def refuse_changed_input(settings: LinkSettings) -> NoReturn:
    """SAVE_FILE links another version of --input_file: a DataError naming the first record
    that is not the input's, or, when every one is (the same sentences, tagged again, by
    another model perhaps), saying that its records would keep the old local predictions."""
    assert settings.input_file is not None  # a linked file's run: --input_file is required
    inputs = iter_records(settings.input_file)
    for i, line in enumerate(complete_lines(settings.save_file, repair=False)):  # not ours to repair yet
        try:
            done = json.loads(line)
        except ValueError:
            break
        same_record(settings, i, done, next(inputs, None))
    raise DataError(f"{settings.save_file}: links an earlier version of {settings.input_file}, which changed since "
                    "(tagged again, by another model?); continuing would keep the old local predictions: use "
                    "--overwrite to link it afresh (replies already paid for come from the cache), or choose "
                    "another --save_file")


def same_record(settings: LinkSettings, i: int, done: Any, record: Optional[dict]) -> None:
    """A DataError when `done`, line i + 1 of SAVE_FILE, is not `record`, the input's (i + 1)-th."""
    if not isinstance(done, dict) or record is None or done.get("id") != record.get("id"):
        rec_id = done.get("id") if isinstance(done, dict) else None
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


def resume_point(settings: LinkSettings, records: Iterable[dict], total: int) -> int:
    """How many records a previous run already wrote and answered, read one at a time: they
    must be the first of the input's `records` (`total` in all). SAVE_FILE is cut before the
    first record with a pending span (failed or unparseable), which a rerun asks again."""
    save_file = settings.save_file
    if not os.path.isfile(save_file):
        return 0
    cut_partial_line(save_file)
    inputs, keep, cut, pending = iter(records), 0, None, 0
    for i, (offset, rec) in enumerate(offset_records(save_file)):
        same_record(settings, i, rec, next(inputs, None))
        if cut is None and pending_spans(rec):
            cut = offset
        if cut is None:
            keep += 1
        pending += pending_spans(rec)
    if cut is not None:
        print(f"{save_file}: {pending} spans were left unanswered (failed or unparseable); asking them again "
              f"from record {keep + 1} on")
        os.truncate(save_file, cut)
    if keep:
        print(f"{save_file}: {keep} of {total} records already linked; continuing")
    return keep


def link_file(settings: LinkSettings, records: Callable[[], Iterator[dict]], total: int, linker: Linker) -> None:
    """Link the input's records (`records()` reads them anew) into SAVE_FILE as they come, after
    the ones a previous run already wrote."""
    done = resume_point(settings, records(), total)
    # closing: an error or Ctrl-C landing outside the generator stops its workers all the same
    with JsonlWriter(settings.save_file) as out, closing(linker.link_records(islice(records(), done, None))) as linked:
        for rec in linked:
            out.write(rec)


def settle_fused(save_file: str, gate: Optional[Gate], threshold: float) -> Optional[Run]:
    """With --combine fuse, once every answer is in: each sent span's final label (`llm_pred`),
    decided once by the gate adapted to the run (`inference.fuse.run`), SAVE_FILE read a record
    at a time. It is replaced, atomically, when a label changed."""
    if gate is None:
        return None
    run = adapt(gate, lambda: sent_answered(iter_jsonl(save_file), threshold), threshold)
    changed = False
    with JsonlWriter(save_file + ".part", append=False) as out:
        for rec in iter_jsonl(save_file):
            changed |= settle_record(rec, run, threshold)
            out.write(rec)
    if changed:
        os.replace(save_file + ".part", save_file)
    else:
        os.remove(save_file + ".part")
    return run
