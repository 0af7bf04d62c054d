"""What each inference run reads and writes, by flag, checked once before any output is opened
for writing, --overwrite or not (`utils.owned_output.refuse_overlaps`): no output may be a file
the run reads (the input, the --data_dir split, a checkpoint file, a label or example file, the
reply cache) or another output; an existing cache, prompts file, page or plot must be ours to
append to or replace; and a run that will call an LLM must have one configured. Only then may
`--overwrite` empty anything.

    check_local_run(tag_settings, link_settings)   # local_inference.py
    check_link_run(link_settings)                  # llm_inference.py
"""
import json
import os
from typing import Optional

from dataloaders.readers import STDIN, split_path
from inference.llm.backends import NotConfigured, check_configured
from inference.llm.cache import ENTRY_KEYS
from inference.llm.link_output import cache_path, check_link_output, inputs_of, prompts_path
from inference.llm.settings import LinkSettings
from inference.local.learned.error_predictor import predictor_path
from inference.local.tagging import TagSettings
from models.checkpoint import checkpoint_files
from utils.errors import DataError
from utils.owned_output import HTML_PAGE, KEPT, METRICS, SIDECAR, refuse_foreign, refuse_overlaps, refuse_unlike

Pairs = list[tuple[str, Optional[str]]]  # (flag, path); a None path: the flag is not given
PLOTS = ("reliability.png", "risk_coverage.png")  # local_inference.py --plot_dir (inference/local/tagging.py)
SWEEP_PLOT = "threshold_sweep.png"  # --threshold_sweep with --plot_dir (inference/llm/link_run.py)


def output_family(save_file: str) -> Pairs:
    """SAVE_FILE and what is written beside it: metrics, settings, the rewrite's temporary file,
    and the three set aside while a run that starts them afresh has not finished (NAME.kept)."""
    own = (save_file, save_file + METRICS, save_file + SIDECAR)
    return [("--save_file", path) for path in (*own, save_file + ".part", *(name + KEPT for name in own))]


def checkpoint_inputs(path: str, flag: str = "--inference_model") -> Pairs:
    """The checkpoint's files, and those of the second model its error predictor reads."""
    files: Pairs = [(flag, f) for f in checkpoint_files(path)]
    try:
        with open(predictor_path(path), encoding="utf-8") as f:
            second = (json.load(f).get("second_model") or {}).get("path")
    except (OSError, ValueError, AttributeError):
        second = None
    if second and os.path.isdir(second):
        files += [(f"{flag} (second model)", f) for f in checkpoint_files(second)]
    return files


def link_inputs(settings: LinkSettings) -> Pairs:
    """The files the LLM stage reads (the reply cache aside: it is written too)."""
    files = list(inputs_of(settings).items())
    if settings.llm_ckpt and settings.local_llm:
        if os.path.isdir(settings.llm_ckpt):
            files += [("--llm_ckpt", os.path.join(base, name))
                      for base, _, names in os.walk(settings.llm_ckpt) for name in names]
        else:
            files.append(("--llm_ckpt", settings.llm_ckpt))
    if settings.combine == "fuse":
        files.append(("--link_calibration", settings.calibration_path))
    return files


def link_outputs(settings: LinkSettings, plots: tuple = ()) -> Pairs:
    """The files a linking run writes: for a dry run the prompts file (and, with --overwrite,
    the older output it discards); else SAVE_FILE and its family, the page, the cache, the plots."""
    s = settings
    if s.dry_run:
        return [("--prompts_file", prompts_path(s)), *(output_family(s.save_file) if s.overwrite else [])]
    sweep = (SWEEP_PLOT,) if s.threshold_sweep else ()
    return [*output_family(s.save_file), ("--html", s.html), ("--cache", cache_path(s)),
            *(("--plot_dir", os.path.join(s.plot_dir, name)) for name in (*plots, *sweep) if s.plot_dir)]


def check_outputs(outputs: Pairs, inputs: Pairs) -> None:
    """No output is an input or another output; an existing cache, prompts file, page or plot
    is ours (else a DataError naming it, and nothing is written)."""
    refuse_overlaps(outputs, inputs)
    for flag, path in outputs:
        if not path:
            continue
        if flag == "--cache":
            refuse_foreign(path, "reply cache", lambda entry: ENTRY_KEYS <= entry.keys())
        elif flag == "--prompts_file":
            refuse_foreign(path, "prompts file", lambda rec: "prompt" in rec)
        elif flag == "--html":
            refuse_unlike(path, *HTML_PAGE)
        elif flag == "--plot_dir":
            refuse_unlike(path, "a PNG image", (b"\x89PNG",))


def check_llm_configured(settings: LinkSettings) -> None:
    """A run that will call an LLM stops here, before touching its output, when none is set up."""
    if settings.dry_run:
        return
    try:
        check_configured(settings)
    except NotConfigured as err:
        err.refuse()


def check_link_run(settings: LinkSettings) -> None:
    """llm_inference.py: its outputs against its inputs (the local JSONL and its metrics
    included), and the LLM's configuration."""
    inputs = link_inputs(settings)
    if settings.input_file:
        inputs.append(("--input_file", settings.input_file + ".metrics.json"))  # the labels are read there
    check_outputs(link_outputs(settings), inputs)
    check_llm_configured(settings)
    if not settings.dry_run:
        check_link_output(settings)  # another input's output, other settings: refused before a model loads


def local_input(settings: TagSettings) -> Pairs:
    """The file local_inference.py tags: --input_file, or the --data_dir test split."""
    if settings.input_file:
        return [] if settings.input_file == STDIN else [("--input_file", settings.input_file)]
    if not settings.data_dir:  # neither: reading says so, in its turn
        return []
    try:
        return [("--data_dir", split_path(settings.data_dir, "test", settings.test_mode))]
    except DataError:  # reading it says so, in its turn
        return []


def check_local_run(settings: TagSettings, link: LinkSettings) -> None:
    """local_inference.py: its outputs (local, online or a dry run's prompts) against the
    checkpoint's files, the input and, online, the LLM stage's inputs and configuration."""
    inputs = checkpoint_inputs(settings.inference_model) + local_input(settings)
    if link.online:
        outputs = link_outputs(link, PLOTS if settings.plot_dir and not link.dry_run else ())
        if link.dry_run:
            outputs = [pair for pair in outputs if pair[0] == "--prompts_file"]  # SAVE_FILE is not touched
        inputs += link_inputs(link)
    else:
        outputs = [*output_family(settings.save_file), ("--html", settings.html),
                   *(("--plot_dir", os.path.join(settings.plot_dir, name)) for name in PLOTS if settings.plot_dir)]
    check_outputs(outputs, inputs)
    if link.online:
        check_llm_configured(link)
