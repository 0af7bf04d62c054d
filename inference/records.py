"""The linked record format, which both stages write and read: one JSON object per sentence
with "sentence" or "tokens", an "entity" list of spans ({"span": [start, end], "pred",
"uncertainty", ...}) and, when labelled, "gold". The LLM stage adds llm_status / llm_raw /
llm_answer / llm_pred (and llm_probs) to each span (see inference/llm/linker.py).

This module owns the format: validation (`record_problem`, `read_records`), the linked label
(`decide`, given the policy as a function) and the spans still to answer (`pending_spans`)."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Optional
from utils.errors import DataError
from utils.jsonl import iter_jsonl

PENDING = ("failed", "unparseable")  # spans a rerun asks again


def pending_spans(record: dict) -> int:
    """How many spans of a linked record are still to be answered."""
    return sum(span.get("llm_status") in PENDING for span in record.get("entity", []))


def decide(span: dict, threshold: float, choose: Optional[Callable[[dict], str]] = None) -> str:
    """The linked label of a span: above the threshold and answered, the LLM's answer (the
    paper's rule) or `choose(span)`; else the local label."""
    answer = span.get("llm_answer")
    if answer is None or not span["uncertainty"] > threshold:
        return span["pred"]
    return answer if choose is None else choose(span)


REQUIRED_SPAN_KEYS = ("entity", "span", "pred", "uncertainty")


def record_problem(rec: Any) -> Optional[str]:
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


def span_problem(span: dict, n_words: int) -> Optional[str]:
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


def iter_records(path: str) -> Iterator[dict]:
    """The local-inference JSONL, one checked record at a time: the message names the line and
    span at fault."""
    return iter_jsonl(path, check=record_problem)


def read_records(path: str) -> list[dict]:
    """Every record of the local-inference JSONL, checked (`iter_records`)."""
    records = list(iter_records(path))
    if not records:
        raise DataError(f"{path}: no records (an empty file); expected the JSONL of local_inference.py")
    return records


def count_records(path: str) -> int:
    """How many records the local-inference JSONL holds, each checked, none kept."""
    n = sum(1 for _ in iter_records(path))
    if not n:
        raise DataError(f"{path}: no records (an empty file); expected the JSONL of local_inference.py")
    return n
