"""The linking engine: spans the local model is unsure of, re-labelled by an LLM.

Streaming API, shared by `llm_inference.py` (a whole file) and `local_inference.py` (online,
sentence by sentence):

    linker = Linker(backend, PromptBuilder(spec), cache=ReplyCache(path), threshold=0.4,
                    max_attempts=5, concurrency=8)
    for record in linker.link_records(records):  # any iterable, a generator included
        write(record)                             # linked copies, in input order, each as soon as done
    linker.link_record(record)                    # or one record, synchronously
    linker.summary()                              # counts, tokens, wall time, requests per second

`link_records` reads ahead up to `lookahead` spans so that `concurrency` requests (batches of
`backend.batch_size` prompts for a batching backend) stay in flight, and yields each record
once all of its spans are answered. Records are the local-inference JSONL lines; the yielded
copy keeps every field and adds to each span of `entity`:

    llm_status  "below_threshold" (not asked) | "linked" | "cached" (all replies from the cache)
                | "unparseable" (no reply named a label) | "failed" (no reply: errors)
    llm_raw     the last reply, or None
    llm_answer  the label the LLM chose ("O" = not an entity), or None
    llm_pred    the final label: where uncertainty > threshold and there is an answer, llm_answer
                (`--combine override`), else pred; with `--combine fuse` (a `gate`) a sent span's
                is None until every answer of the run is in (`inference.fuse.run.settle`)
    llm_error   for "failed" spans, the last error
    llm_probs   for a structured reply (`--answer_mode choice`): {label: probability}, summing
                to 1; a local model's scored options, or all on the answer a server returned

Spans whose uncertainty is above `ask_threshold` (default `threshold`; lower it to sweep
thresholds from one pass) are asked. A span gets at most `max_attempts` requests: an
unparseable reply is asked again, and so is a transient error (timeout, dropped connection,
429, 5xx, garbage), after a backoff of the server's Retry-After or `backoff * 2**n` (capped
at `max_backoff`) with jitter; a Retry-After past `max_backoff` is not waited for: the spans not
answered yet are left "failed" (pending), and a rerun asks them. A `FatalError` (bad key,
unknown model) stops the run: it is
raised from `link_records`. Every reply goes to the cache as it arrives (its first
`MAX_REPLY_CHARS` characters, in the cache and in `llm_raw` alike), and is replayed before any
new request, so a killed and restarted run asks nothing twice. A cached reply that names no
label is replayed but does not end the span: a rerun asks again, up to `max_attempts` more
times. "failed" and "unparseable" spans are `PENDING`: the entry points ask them again on a
rerun and end with a non-zero status while any are left.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generator, Iterable, Optional

from tqdm import tqdm

from inference.llm.answers import parse_reply
from inference.llm.backends import FatalError, TransientError, say_once
from inference.llm.cache import prompt_key
from inference.llm.settings import LinkSettings
from inference.records import decide
from utils.errors import ConfigError

MAX_REPLY_CHARS = 2000  # what is kept of a reply: a label takes a few words
SUMMARY_KEYS = ("spans", "asked", "linked", "cached", "unparseable", "failed", "changed", "requests",
                "cache_replies", "transient_errors", "prompt_tokens", "completion_tokens")


@dataclass(eq=False)
class _Ask:
    """One span's question and everything that came back; mutated by one worker at a time."""

    prompt: str
    key: str
    replies: list = field(default_factory=list)
    answer: Optional[str] = None
    probs: Optional[dict] = None
    attempts: int = 0
    requests: int = 0
    from_cache: int = 0
    errors: int = 0
    error: Optional[str] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    job: object = None  # the Future answering it, once submitted

    def open(self, max_attempts: int) -> bool:
        return self.answer is None and self.attempts < max_attempts

    def status(self) -> str:
        if self.answer is not None:
            return "cached" if self.requests == 0 else "linked"
        # "failed": this run reached no server for it (older replies, all unparseable, aside)
        return "unparseable" if self.requests or (self.replies and not self.errors) else "failed"


@dataclass
class _Run:
    """The state of one `link_records` call."""

    pool: ThreadPoolExecutor
    bar: tqdm
    queue: list = field(default_factory=list)  # asks not submitted yet: a partial batch
    stop: threading.Event = field(default_factory=threading.Event)
    fatal: Optional[Exception] = None  # set by the worker that met it


class Linker:
    def __init__(self, backend, prompts, cache=None, threshold=LinkSettings.threshold, ask_threshold=None,
                 max_attempts=LinkSettings.max_attempts, concurrency=1, backoff=0.5, max_backoff=30.0,
                 lookahead=None, progress=False, gate=None):
        self.gate = gate  # --combine fuse: inference.fuse.gate.Gate, which settles the labels at the end
        self.ask_threshold = threshold if ask_threshold is None else ask_threshold
        if self.ask_threshold > threshold:
            raise ConfigError(f"ask_threshold {self.ask_threshold} is above threshold {threshold}")
        if max_attempts < 1 or concurrency < 1:
            raise ConfigError("max_attempts and concurrency must be at least 1")
        self.backend, self.prompts, self.cache = backend, prompts, cache
        self.threshold, self.max_attempts, self.concurrency = threshold, max_attempts, concurrency
        self.backoff, self.max_backoff, self.progress = backoff, max_backoff, progress
        self.lookahead = lookahead or 4 * concurrency * backend.batch_size
        self.identity = backend.identity()
        self.counts = Counter()
        self.wall = 0.0
        self._said, self._refused = set(), None  # warnings given once; why the server is not asked now

    def link_record(self, record: dict) -> dict:
        return next(self.link_records([record]))

    def link_records(self, records: Iterable[dict]) -> Generator[dict, None, None]:
        run = _Run(ThreadPoolExecutor(self.concurrency, thread_name_prefix="llm"),
                   tqdm(total=0, unit="span", desc="LLM", disable=not self.progress))
        pending: deque[tuple[dict, list[tuple[dict, _Ask]]]] = deque()  # records and their asks, in order
        backlog, batch = 0, self.backend.batch_size
        started = time.perf_counter()
        try:
            for record in records:
                record, asks = self._prepare(record)
                pending.append((record, asks))
                run.queue += [ask for _, ask in asks]
                backlog += len(asks)
                run.bar.total += len(asks)
                while len(run.queue) >= batch:
                    self._submit(run, run.queue[:batch])
                    del run.queue[:batch]
                while pending and (backlog > self.lookahead or self._done(pending[0])):
                    backlog -= len(pending[0][1])
                    yield self._finish(run, *pending.popleft())
            while pending:
                yield self._finish(run, *pending.popleft())
        finally:
            run.stop.set()  # on an error or Ctrl-C: workers stop after their current request,
            run.pool.shutdown(cancel_futures=True)  # whose reply still reaches the cache
            run.bar.close()
            self.wall += time.perf_counter() - started

    def summary(self) -> dict[str, Any]:
        out = {key: self.counts[key] for key in SUMMARY_KEYS}
        out["wall_s"] = round(self.wall, 3)
        out["requests_per_s"] = round(self.counts["requests"] / self.wall, 2) if self.wall else 0.0
        return out

    # -- main thread --------------------------------------------------------------------

    def _prepare(self, record):
        """A copy of the record to fill in, and its (span, _Ask) pairs to send."""
        record = {**record, "entity": [dict(span) for span in record.get("entity", [])]}
        asks = []
        for span in record["entity"]:
            self.counts["spans"] += 1
            if span["uncertainty"] > self.ask_threshold:
                prompt = self.prompts.build(record, span)
                asks.append((span, _Ask(prompt, prompt_key(self.identity, prompt))))
            else:
                span.update(llm_status="below_threshold", llm_raw=None, llm_answer=None, llm_pred=span["pred"])
        return record, asks

    def _submit(self, run, asks):
        job = run.pool.submit(self._answer, asks, run)
        for ask in asks:
            ask.job = job

    @staticmethod
    def _done(entry):
        return all(ask.job is not None and ask.job.done() for _, ask in entry[1])

    def _finish(self, run, record, asks):
        """Wait for the record's answers and write them into its spans."""
        if any(ask.job is None for _, ask in asks):  # its spans sit in a partial batch
            self._submit(run, list(run.queue))
            run.queue.clear()
        wait({ask.job for _, ask in asks})
        if run.fatal is not None:
            raise run.fatal
        for _, ask in asks:
            ask.job.result()  # re-raises a worker's unexpected error
        for span, ask in asks:
            self._apply(span, ask)
        run.bar.update(len(asks))
        run.bar.set_postfix(cached=self.counts["cached"], unparseable=self.counts["unparseable"],
                            failed=self.counts["failed"], refresh=False)
        return record

    def _apply(self, span, ask):
        status = ask.status()
        span.update(llm_status=status, llm_raw=ask.replies[-1] if ask.replies else None, llm_answer=ask.answer)
        if status == "failed":
            span["llm_error"] = ask.error
        if ask.probs is not None:
            span["llm_probs"] = ask.probs
        later = self.gate is not None and ask.answer is not None and span["uncertainty"] > self.threshold
        span["llm_pred"] = None if later else decide(span, self.threshold)
        self.counts.update({"asked": 1, status: 1, "changed": span["llm_pred"] not in (None, span["pred"]),
                            "requests": ask.requests + ask.errors,  # every request sent, failed ones too
                            "cache_replies": ask.from_cache,
                            "transient_errors": ask.errors, "prompt_tokens": ask.prompt_tokens,
                            "completion_tokens": ask.completion_tokens})

    # -- worker threads -----------------------------------------------------------------

    def _answer(self, asks, run):
        """Ask until every span has an answer or has used its attempts, replaying the cache first."""
        failures = 0
        while not run.stop.is_set():
            for ask in asks:
                self._replay(ask)
            asks = [ask for ask in asks if ask.open(self.max_attempts)]
            if not asks:
                return
            if self._refused is not None:  # the server asked for a longer wait than max_backoff
                for ask in asks:
                    ask.attempts, ask.error = self.max_attempts, ask.error or self._refused
                return
            try:
                replies = self.backend.complete_batch([ask.prompt for ask in asks])
            except TransientError as err:
                failures += 1
                for ask in asks:
                    ask.attempts, ask.errors, ask.error = ask.attempts + 1, ask.errors + 1, str(err)
                delay = self._delay(failures, err.retry_after)
                if delay is None:  # pending: a rerun asks again
                    self._refused = f"{err} (the server asked to wait {err.retry_after:.0f} s: left for a rerun)"
                elif any(ask.open(self.max_attempts) for ask in asks):
                    run.stop.wait(delay)
                continue
            except FatalError as err:
                run.fatal = err
                run.stop.set()
                return
            for ask, reply in zip(asks, replies):
                text = reply.text[:MAX_REPLY_CHARS]
                if self.cache is not None:
                    self.cache.put(ask.key, len(ask.replies), text)
                self._take(ask, text)
                ask.attempts += 1
                ask.requests += 1
                ask.prompt_tokens += reply.prompt_tokens
                ask.completion_tokens += reply.completion_tokens

    def _replay(self, ask):
        """Every cached reply until one names a label; those that name none cost no attempt of
        this run, so an unparseable reply is never final for good."""
        while self.cache is not None and ask.answer is None:
            reply = self.cache.get(ask.key, len(ask.replies))
            if reply is None:
                return
            self._take(ask, reply[:MAX_REPLY_CHARS])
            ask.from_cache += 1

    def _take(self, ask, reply):
        ask.replies.append(reply)
        ask.answer, ask.probs = parse_reply(reply, self.prompts.spec)

    def _delay(self, failures, retry_after):
        """Seconds before the next try: the server's Retry-After (said once) up to `max_backoff`,
        else a jittered exponential backoff; None when the server asks for longer: the spans not
        answered yet are then left pending for a rerun, and the server is not asked again."""
        if retry_after is not None:
            if retry_after > self.max_backoff:
                say_once(self._said, "refused", f"the server asks to wait {retry_after:.0f} s before retrying "
                         f"(Retry-After), more than {self.max_backoff:.0f} s: the spans not answered yet are left "
                         "pending; rerun later to ask them")
                return None
            say_once(self._said, "wait", f"the server asks to wait {retry_after:.1f} s before retrying "
                     "(Retry-After); waiting")
            return retry_after
        return min(self.max_backoff, self.backoff * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
