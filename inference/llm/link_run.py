"""Running a link: the backend, reply cache and Linker for the settings (`linking`), the
scores of the linked records, the console summary and the exit status."""

from __future__ import annotations

import os
import shlex
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

from inference.fuse.gate import Gate
from inference.fuse.run import Run
from inference.llm.backends import FatalError, NotConfigured, check_configured, make_backend
from inference.llm.cache import ReplyCache
from inference.llm.labels import local_metrics_of
from inference.llm.link_output import cache_path, inputs_of
from inference.llm.linker import Linker
from inference.reports.link_metrics import link_report, plot_sweep, status_counts, sweep
from utils.errors import DataError
from utils.cli import exit_interrupted
from utils.owned_output import refuse_inputs
from utils.secrets import redact_argv

if TYPE_CHECKING:
    from inference.llm.backends import Backend
    from inference.llm.prompt import PromptBuilder
    from inference.llm.settings import LinkSettings


def check_llm(settings: LinkSettings) -> int:
    """--check: the flags are parsed; is an LLM configured? Nothing is called or loaded."""
    s = settings
    if not s.dry_run:
        try:
            check_configured(s)
        except NotConfigured as err:
            err.refuse()
    print("settings OK")
    return 0


@contextmanager
def linking(settings: LinkSettings, prompts: PromptBuilder, writes_output: bool = True) -> Iterator[Linker]:
    """A Linker for the LLM settings, its reply cache next to --save_file.

    Leaving the block closes the cache; a fatal LLM error or Ctrl-C inside it ends the
    program with a message that says what is kept and that a rerun continues it: the records
    linked so far in SAVE_FILE, or (`writes_output` False: the preflight, which writes its
    file only at the end) the replies in the reply cache.
    """
    s = settings
    gate = load_gate(s)  # a damaged file fails before a model is loaded
    try:
        backend = make_backend(s, options=prompts.spec.option_names() if s.answer_mode == "choice" else None)
    except NotConfigured as err:
        err.refuse()
    if gate is not None:
        check_gate(s, gate, backend)
    batching = backend.batch_size > 1  # a local model takes its concurrency as batches
    cache = None
    path = cache_path(s)  # None with --no_cache
    if path is not None:
        refuse_inputs(path, {**inputs_of(s), "--save_file": s.save_file})
        cache = ReplyCache(path)
    linker = Linker(backend, prompts, cache, s.threshold, s.ask_threshold, s.max_attempts,
                    concurrency=1 if batching else s.concurrency, progress=True, gate=gate)
    kept = kept_so_far(s, writes_output)
    try:
        yield linker
    except FatalError as err:
        sys.exit(f"stopped: {err}\n{kept[0].upper()}{kept[1:]}.")
    except KeyboardInterrupt:
        exit_interrupted(f"interrupted; {kept}.")
    finally:
        if cache is not None:
            cache.close()


def kept_so_far(settings: LinkSettings, writes_output: bool) -> str:
    """What a stopped run keeps, and how to go on: the clause its last line ends with."""
    if writes_output:
        return f"the records linked so far are in {settings.save_file}; rerun to continue"
    cache = cache_path(settings)
    if cache is None:
        return "nothing was kept (--no_cache): a rerun asks every span again"
    return f"the replies received so far are in the reply cache {cache}; a rerun reuses them"


def load_gate(settings: LinkSettings) -> Optional[Gate]:
    """`--combine fuse`: the gate calibrate_link fitted (`inference.fuse.gate.Gate`); None for override."""
    if settings.combine != "fuse":
        return None
    path = settings.calibration_path
    if not os.path.isfile(path):
        raise DataError(f"{path}: no link calibration; --combine fuse needs one: run python -m "
                        "inference.llm.calibrate_link on the dev split's local output with the same LLM flags "
                        "(or give --link_calibration)")
    try:
        return Gate.load(path)
    except ValueError as err:
        raise DataError(str(err)) from None


def link_identity(settings: LinkSettings, backend: Backend) -> dict[str, Any]:
    """What a link calibration is keyed by: the LLM (as it keys the reply cache) and the prompt."""
    return {"llm": backend.identity(), "prompt": settings.prompt_fingerprint()}


def check_gate(settings: LinkSettings, gate: Gate, backend: Backend) -> None:
    """Refuse a link calibration fitted for another LLM or prompt, naming what differs."""
    ours = link_identity(settings, backend)
    theirs = gate.identity
    differ = [key for part in ("llm", "prompt") for key in sorted(set(ours[part]) | set(theirs.get(part) or {}))
              if ours[part].get(key) != (theirs.get(part) or {}).get(key)]
    if differ:
        raise DataError(f"{settings.calibration_path}: fitted for another LLM or prompt ({', '.join(differ)} "
                        "differ); rerun python -m inference.llm.calibrate_link with these LLM flags")
    fitted_on = gate.report.get("local_model")
    tagged_by = local_metrics_of(settings.input_file).get("checkpoint") if settings.input_file else None
    if fitted_on and tagged_by and os.path.abspath(tagged_by) != fitted_on:
        print(f"warning: {settings.calibration_path}: fitted on the dev output of {fitted_on}, but "
              f"{settings.input_file} was tagged by {os.path.abspath(tagged_by)}: its uncertainties may mean other "
              "things; rerun python -m inference.llm.calibrate_link on that model's dev output", file=sys.stderr)


def link_metrics(settings: LinkSettings, records: Callable[[], Iterable[dict]], linker: Linker,
                 fused: Optional[Run] = None) -> dict[str, Any]:
    """Scores of the linked records as written (`records()` reads them anew, for each report),
    the sweep, the LLM's counts and what a fuse run measured (`fused`)."""
    metrics = link_report(records(), settings.threshold, per_label=True)
    metrics["combine"] = settings.combine
    if fused is not None:
        metrics.update(fused.metrics())
    counts = status_counts(records())  # the spans' outcome over the whole output
    if settings.budget is not None:
        listed = counts["spans"]
        metrics.update(budget=settings.budget, listed=listed, sent_share=metrics["sent"] / listed if listed else 0.0)
    if settings.threshold_sweep:
        metrics["sweep"] = sweep(records, settings.threshold_sweep)
        if settings.plot_dir:
            os.makedirs(settings.plot_dir, exist_ok=True)
            metrics["plot"] = plot_sweep(metrics["sweep"], os.path.join(settings.plot_dir, "threshold_sweep.png"))
    # requests, tokens and time are this run's
    metrics["llm"] = {**linker.summary(), **counts, "backend": linker.identity}
    return metrics


def exit_status(metrics: Optional[dict[str, Any]], script: str, argv: Optional[list[str]] = None) -> int:
    """0, or 3 when spans failed (no answer from the LLM): the last line then says how many
    and the command that asks them again."""
    llm = (metrics or {}).get("llm") or {}
    given = sys.argv[1:] if argv is None else argv
    # the rerun continues this output: never --overwrite again, and never a password
    command = shlex.join(["python", script, *redact_argv([a for a in given if a != "--overwrite"])])
    if llm.get("unparseable"):
        print(f"{llm['unparseable']} spans got no reply that names a label; a rerun asks them again: {command}")
    if llm.get("failed"):
        print(f"error: {llm['failed']} spans failed (no answer from the LLM) and are kept as pending; "
              f"rerun to ask them: {command}", file=sys.stderr)
        return 3
    return 0


def print_link_summary(metrics: dict[str, Any]) -> None:
    """The console lines of a linking run: the LLM's counts, and the F1 before and after."""
    llm = metrics["llm"]
    print(f"LLM: {llm['asked']} spans asked in the output: {llm['linked']} linked, {llm['cached']} from the cache, "
          f"{llm['unparseable']} unparseable, {llm['failed']} failed; this run: {llm['requests']} requests, "
          f"tokens {llm['prompt_tokens']} prompt + "
          f"{llm['completion_tokens']} completion; {llm['wall_s']} s, {llm['requests_per_s']} requests/s")
    if "budget" in metrics:  # online, the threshold came from dev's uncertainties: the share can differ
        print(f"budget {metrics['budget']:.1%}: {metrics['sent']} of {metrics['listed']} listed spans sent "
              f"({metrics['sent_share']:.1%})" + ("" if abs(metrics["sent_share"] - metrics["budget"]) < 0.01 else
              "; the threshold was set on the dev split's uncertainties, and this input's differ: "
              "llm_inference.py on the local output sends the share asked for"))
    if "linked" in metrics:
        local, linked = metrics["local"], metrics["linked"]
        print(f"F1 local {local['f1']:.4f} -> linked {linked['f1']:.4f} (P {linked['precision']:.4f}, "
              f"R {linked['recall']:.4f}); {metrics['changed']} labels changed: {metrics['fixed']} fixed, "
              f"{metrics['broken']} broken")
