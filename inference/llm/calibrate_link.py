"""The linking preflight: will this LLM raise F1, at which budget, and the `fuse` gate for it.

    python -m inference.llm.calibrate_link --input_file results/dev.jsonl --dataname conll03 \\
        --llm_name hf --llm_ckpt /models/Qwen2.5-7B-Instruct --answer_mode choice --sample 500

It sends the labelled DEV split's spans a 50 % budget would send (or `--sample N` of them) to
the LLM, through the reply cache. It prints the LLM's accuracy, the expected F1 per budget with
override and with fuse (out of fold), what fuse does there, and a recommendation. The gate goes
to --out (default: link_calibration.json beside the input), keyed by the LLM and the prompt.
Spans that got no answer leave no file and exit 3: rerun to ask them.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import random
import sys

from inference.fuse.fit import fit_gate
from inference.reports.dev_gain import BUDGETS, Answered, budget_thresholds, describe, gold_label, verdict
from inference.fuse.gate import FORMAT, Gate
from inference.llm.labels import local_metrics_of, prompt_builder, resolve_spec
from inference.llm.link_run import link_identity, linking
from inference.llm.settings import LINK_CALIBRATION, LinkSettings, add_link_args, check_link_args
from inference.records import read_records
from utils import flag_types as ft
from utils.cli import run_cli
from utils.errors import DataError
from utils.owned_output import refuse_inputs
from utils.versioned_json import format_of, is_older

FAILED_STATUS = 3


@dataclasses.dataclass(frozen=True)
class CalibrationSettings:
    """The preflight's own flags (the LLM's are `LinkSettings`)."""

    input_file: str
    out: str
    sample: int | None = None


def parse_args(argv: list[str] | None = None) -> tuple[CalibrationSettings, LinkSettings]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input_file", required=True, type=ft.existing_file,
                   help="local_inference.py's JSONL of the labelled dev split")
    p.add_argument("--sample", type=ft.whole_number(10_000_000), help="send a random N of the spans (default: all of them)")
    p.add_argument("--out", type=ft.output_file, help=f"the link calibration (default: {LINK_CALIBRATION} beside "
                   "--input_file)")
    add_link_args(p, run=False)  # no flag of the linking run's own: the preflight scores every budget
    args = p.parse_args(argv)
    check_link_args(p, args)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.input_file)), LINK_CALIBRATION)
    calibration = CalibrationSettings(args.input_file, out, args.sample)
    args.save_file = out  # the reply cache goes beside it
    return calibration, LinkSettings.from_args(args)


def refuse_foreign(path: str) -> None:
    """Never replace a file that is not a whole link calibration (a damaged one is left to look at)."""
    if os.path.exists(path) and not is_older(format_of(path), FORMAT):  # an older version of its own output is replaced
        try:
            Gate.load(path)
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: exists and is not a readable link calibration ({str(err).split(': ', 1)[-1]}); "
                            "remove it or choose another --out") from None


def ask(records: list[dict], threshold: float, settings: LinkSettings, n: int | None
        ) -> tuple[list[Answered], int, dict, dict]:
    """Send the spans above `threshold`, all or a seeded random `n` of them; (their answers, how
    many there are in all, the Linker's counts, the LLM's identity)."""
    pool = [(i, j) for i, rec in enumerate(records) for j, sp in enumerate(rec["entity"]) if sp["uncertainty"] > threshold]
    if not pool:
        raise DataError(f"{settings.input_file}: no listed spans to send")
    chosen = sorted(random.Random(settings.seed).sample(pool, n)) if n is not None and n < len(pool) else pool
    asked = [{**records[i], "entity": [records[i]["entity"][j] for _, j in group]}
             for i, group in itertools.groupby(chosen, key=lambda pair: pair[0])]
    send_all = dataclasses.replace(settings, threshold=-math.inf, combine="override")
    prompts = prompt_builder(send_all, resolve_spec(send_all, records))
    with linking(send_all, prompts, writes_output=False) as linker:  # --out is written at the end
        linked = list(linker.link_records(asked))
        identity = link_identity(settings, linker.backend)
    answered = [Answered(span, gold_label(rec, span)) for rec in linked for span in rec["entity"]]
    return answered, len(pool), linker.summary(), identity


def calibrate(calibration: CalibrationSettings, settings: LinkSettings) -> dict:
    records = read_records(calibration.input_file)
    unlabelled = sum("gold" not in rec for rec in records)
    if unlabelled:
        raise DataError(f"{calibration.input_file}: {unlabelled} records have no gold labels; the preflight needs the "
                        "local output of a labelled dev split")
    refuse_inputs(calibration.out, {"--input_file": calibration.input_file})
    refuse_foreign(calibration.out)
    if not any(rec["entity"] for rec in records):
        raise DataError(f"{settings.input_file}: no listed spans to send")
    thresholds = budget_thresholds(records)
    answered, pool, counts, identity = ask(records, thresholds[max(BUDGETS)], settings, calibration.sample)
    failed = [a for a in answered if a.span.get("llm_status") == "failed"]
    if failed:
        print(f"error: {len(failed)} of {len(answered)} spans got no answer from the LLM; nothing written. Rerun to "
              "ask them (the replies so far are in the cache).", file=sys.stderr)
        sys.exit(FAILED_STATUS)
    with_answer = [a for a in answered if a.span.get("llm_answer") is not None]
    gate, info = fit_gate(records, with_answer, thresholds, identity, seed=settings.seed)
    table = info.pop("out_of_fold")
    budget, combine, lines = verdict(table, info.get("why"))
    tagged_by = local_metrics_of(calibration.input_file).get("checkpoint")
    gate.report = report = {
        "input_file": os.path.abspath(calibration.input_file), "sent": len(answered), "pool": pool,
        "local_model": tagged_by and os.path.abspath(tagged_by), "answered": len(with_answer),
        "llm_accuracy": sum(a.span["llm_answer"] == a.gold for a in with_answer) / len(answered),
        "local_accuracy": sum(a.span["pred"] == a.gold for a in answered) / len(answered),
        "local_f1": table[0]["local_f1"], "budgets": table, "recommended_budget": budget,
        "recommended_combine": combine, "gate": info,
        "llm_counts": {k: counts[k] for k in ("requests", "cached", "unparseable", "failed")}}
    gate.save(calibration.out)
    print("\n".join([f"{len(answered)} dev spans sent (of the {pool} a 50 % budget sends): the LLM is right on "
                     f"{report['llm_accuracy']:.1%} of them, the local model on {report['local_accuracy']:.1%} "
                     f"({len(answered) - len(with_answer)} got no parseable answer)", *describe(table, gate.choice),
                     "fuse F1 out of fold (the gate fitted on the other folds); F1 is on the dev split, expected "
                     "from the spans sent" + (" (a sample, scaled up)" if calibration.sample else ""), *lines,
                     f"link calibration written to {calibration.out}"]))
    return report


def main(argv: list[str] | None = None) -> dict:
    calibration, settings = parse_args(argv)
    return run_cli(calibrate, calibration, settings)


if __name__ == "__main__":
    main()
