"""The LLM stage's flags (shared by llm_inference.py and local_inference.py's online mode) and
`LinkSettings`, the typed settings built once from them."""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from inference.llm.prompt import DATASETS
from utils import flag_types as ft
from utils.file_digest import file_digest


def _abspath(path: Optional[str]) -> Optional[str]:
    return os.path.abspath(path) if path else None


@dataclass(frozen=True)
class LinkSettings:
    """Everything a linking run reads, from the flags of `add_link_args` plus the run's
    input and output (`input_file` is None when local_inference.py reads a --data_dir)."""
    save_file: str
    input_file: Optional[str] = None
    html: Optional[str] = None
    plot_dir: Optional[str] = None
    labels: Optional[str] = None
    dataname: Optional[str] = None
    label_desc: Optional[str] = None
    shot: int = 0
    shot_strategy: str = "random"
    selectShot_dir: Optional[str] = None
    llm_name: Optional[str] = None
    model: str = "gpt-3.5-turbo"  # the model name on an OpenAI-compatible server
    base_url: Optional[str] = None
    llm_ckpt: Optional[str] = None
    temperature: float = 0.3
    max_tokens: Optional[int] = None
    answer_mode: str = "free"
    timeout: float = 60.0
    max_attempts: int = 5
    concurrency: int = 8
    threshold: float = 0.4
    budget: Optional[float] = None  # share of listed spans to send; sets `threshold` (see inference/budget.py)
    threshold_sweep: list = field(default_factory=list)
    combine: str = "override"  # or "fuse" (inference/fuse/)
    link_calibration: Optional[str] = None  # --combine fuse: default link_calibration.json beside SAVE_FILE
    cache: Optional[str] = None
    no_cache: bool = False
    dry_run: bool = False
    prompts_file: Optional[str] = None
    seed: int = 42
    overwrite: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LinkSettings:
        """The settings from parsed flags (attributes this class does not know are left out)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})

    @property
    def online(self) -> bool:
        """Whether local_inference.py links (or, with --dry_run, writes prompts) as it tags."""
        return self.llm_name is not None or self.dry_run

    @property
    def local_llm(self) -> bool:
        """Whether --llm_name names an in-process model (no server, no --model): `backends.BACKENDS`."""
        from inference.llm.backends import registered

        entry = registered(self.llm_name) if self.llm_name else None
        return bool(entry and entry.local)

    @property
    def ask_threshold(self) -> float:
        """Spans above it are asked: the lowest threshold scored, so one pass serves the whole sweep."""
        return min([self.threshold] + self.threshold_sweep)

    def fingerprint(self) -> dict[str, Any]:
        """What shapes the linked records, kept beside the output (`utils.owned_output`): the
        label set and prompt, the LLM and its decoding, the thresholds (the only ones a rerun
        may change: `RECOMPUTE`). The server's address is not one (a server may move between
        runs), but it keys the reply cache."""
        return {**self.prompt_fingerprint(), "seed": self.seed, "llm_name": self.llm_name and self.llm_name.lower(),
                "model": None if self.local_llm else self.model,
                "llm_ckpt": _abspath(self.llm_ckpt),  # not the server's address: it may move between runs
                "temperature": self.temperature, "max_tokens": self.max_tokens,
                "threshold": self.threshold, "ask_threshold": self.ask_threshold, "combine": self.combine,
                "link_calibration": self.calibration_digest()}

    def prompt_fingerprint(self) -> dict[str, Any]:
        """What shapes the prompt and how its answer is read: a link calibration holds for these."""
        return {"labels": _abspath(self.labels) if self.labels and os.path.isfile(self.labels) else self.labels,
                "dataname": self.dataname, "label_desc": _abspath(self.label_desc), "shot": self.shot,
                "shot_strategy": self.shot_strategy if self.shot else None,
                "selectShot_dir": _abspath(self.selectShot_dir) if self.shot else None,
                "shot_seed": self.seed if self.shot else None, "answer_mode": self.answer_mode}

    def calibration_digest(self) -> Optional[str]:
        """`--combine fuse`: the link calibration's content digest (a refitted one relinks from the cache)."""
        if self.combine != "fuse":
            return None
        return file_digest(self.calibration_path) if os.path.isfile(self.calibration_path) else "missing"

    @property
    def calibration_path(self) -> str:
        """The link calibration `--combine fuse` reads."""
        return self.link_calibration or os.path.join(os.path.dirname(os.path.abspath(self.save_file)),
                                                     LINK_CALIBRATION)


# upper bounds of the size flags, checked when parsed (an absurd size never reaches a request or a batch)
MAX_SHOT = 64  # examples per label in one prompt
MAX_TOKENS = 32_768  # reply length cap
MAX_ATTEMPTS = 100  # requests per span
MAX_CONCURRENCY = 1024  # requests in flight, or prompts per batch of a local model
COMBINE = ("override", "fuse")  # the paper's rule; a dev-fitted gate that may keep the local label
LINK_CALIBRATION = "link_calibration.json"  # written by python -m inference.llm.calibrate_link
RECOMPUTE = ("threshold", "ask_threshold", "combine", "link_calibration")  # a rerun rewrites every record from the reply cache


def llm_name_type(text: str) -> str:
    """--llm_name, checked when parsed against the one list of names, `backends.BACKENDS`."""
    from inference.llm.backends import known_names, registered

    if registered(text) is None:
        raise argparse.ArgumentTypeError(f"unknown LLM {text!r} ({known_names()})")
    return text


def add_link_args(p: argparse.ArgumentParser, llm_name: Optional[str] = "gpt", run: bool = True) -> None:
    """The LLM stage's flags, shared by llm_inference.py and local_inference.py, where no default
    `llm_name` means "local only unless --llm_name is given". `run=False` leaves out the flags
    only a linking run reads (which spans it sends, how it combines, dry runs): the preflight's."""
    labels = p.add_argument_group("labels and prompt")
    labels.add_argument("--labels", help="the label set: a comma list or a labels.txt file (overrides the rest)")
    labels.add_argument("--dataname", choices=sorted(DATASETS), type=str.lower,
                        help="the paper's label set and descriptions")
    labels.add_argument("--label_desc", type=ft.json_labels,
                        help='JSON {"LABEL": "description"} replacing the label descriptions')
    labels.add_argument("--shot", type=ft.whole_number(MAX_SHOT, low=0), default=LinkSettings.shot, help="examples per label in each prompt")
    labels.add_argument("--shot_strategy", choices=("random", "similar"), default=LinkSettings.shot_strategy)
    labels.add_argument("--selectShot_dir", type=ft.existing_file, help="labelled file (spanner JSON or CoNLL columns) to draw examples from")
    online = "local only, unless --llm_name links each sentence online as it is tagged"
    llm = p.add_argument_group("LLM", None if llm_name else online)
    from inference.llm.backends import BACKENDS

    servers, local = ([n for n, e in BACKENDS.items() if e.local == is_local] for is_local in (False, True))
    llm.add_argument("--llm_name", default=llm_name, type=llm_name_type,
                     help=f"{' / '.join(servers)} (a server), or {' / '.join(local)} (a local model)")
    llm.add_argument("--model", default=LinkSettings.model, help="model name for the server (gpt / openai)")
    llm.add_argument("--base_url", help="OpenAI-compatible server URL (default: OPENAI_BASE_URL, else OpenAI)")
    llm.add_argument("--llm_ckpt", type=ft.existing_path, help="local Hugging Face model folder or .gguf file, for llama / qwen / hf")
    llm.add_argument("--temperature", type=ft.nonnegative_float, default=LinkSettings.temperature)
    llm.add_argument("--max_tokens", type=ft.whole_number(MAX_TOKENS), help="reply length cap (default: 64 tokens from a server, 32 from a local model)")
    llm.add_argument("--answer_mode", choices=("free", "choice"), default=LinkSettings.answer_mode,
                     help="free: the paper's free-text reply, parsed; choice: one of the options, by scoring "
                          "them (llama / qwen / hf) or by structured output (openai)")
    llm.add_argument("--timeout", type=ft.positive_float, default=LinkSettings.timeout, help="seconds per request")
    llm.add_argument("--max_attempts", type=ft.whole_number(MAX_ATTEMPTS), default=LinkSettings.max_attempts, help="requests per span at most (unparseable or failed)")
    llm.add_argument("--concurrency", type=ft.whole_number(MAX_CONCURRENCY), default=LinkSettings.concurrency, help="requests in flight (hf: prompts per batch)")
    link = p.add_argument_group("linking")
    link.add_argument("--cache", type=ft.output_file, help="reply cache (JSONL); default: llm_cache.jsonl next to --save_file")
    link.add_argument("--no_cache", action="store_true", help="ask every span again")
    link.add_argument("--seed", type=int, default=LinkSettings.seed, help="for shot sampling and local sampling")
    if not run:
        return
    link.add_argument("--threshold", type=ft.number, default=LinkSettings.threshold, action=NoteGiven,
                      help="spans with uncertainty above it go to the LLM")
    link.add_argument("--budget", type=ft.number, metavar="FRACTION",
                      help="send the most uncertain FRACTION of the listed spans, e.g. 0.1 (replaces --threshold; "
                      "online: the threshold that sends FRACTION on the checkpoint's dev split)")
    link.add_argument("--combine", choices=COMBINE, default=LinkSettings.combine,
                      help="override: the LLM's answer replaces the local label (the paper's rule); fuse: a gate "
                      "fitted on dev (python -m inference.llm.calibrate_link) takes it only where dev says it pays")
    link.add_argument("--link_calibration", type=ft.existing_file,
                      help=f"for --combine fuse: the file calibrate_link wrote (default: {LINK_CALIBRATION} beside "
                      "--save_file)")
    link.add_argument("--threshold_sweep", type=ft.number_list, default=[],
                      help="comma list of thresholds to score from one pass of calls")
    link.add_argument("--dry_run", action="store_true", help="call nothing; write the prompts to --prompts_file")
    link.add_argument("--prompts_file", type=ft.output_file, help="for --dry_run; default: SAVE_FILE with .prompts.jsonl")


class NoteGiven(argparse.Action):
    """Stores the flag's value and notes that it was given (`given_DEST`), not defaulted."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, f"given_{self.dest}", True)


def check_link_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    budget = getattr(args, "budget", None)  # the preflight has no --budget
    if budget is not None and not 0.0 < budget <= 1.0:
        p.error(f"--budget is the share of listed spans to send, in (0, 1]; got {budget}")
    if budget is not None and getattr(args, "given_threshold", False):
        p.error("--budget and --threshold both choose the spans sent to the LLM; give one of them")
    if budget is not None and not (args.llm_name or args.dry_run):
        p.error("--budget chooses the spans sent to the LLM: it needs --llm_name (or --dry_run)")
    if args.shot > 0 and not args.selectShot_dir:
        p.error("--shot needs --selectShot_dir, a labelled file to draw examples from")
