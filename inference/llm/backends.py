"""LLM backends: a chat prompt in, the reply text out.

A backend is one small class: subclass `Backend`, set `name`, describe the model and its
decoding settings in `identity()` (the cache key), and implement `complete(prompt)`, or
`complete_batch(prompts)` when the model is faster on batches (then set `batch_size`).
Raise `TransientError` for what a retry may fix (the linker backs off and retries) and
`FatalError` for what it cannot (bad key, unknown model); the linker stops on the latter.

- `OpenAIBackend`: any OpenAI-compatible `/v1/chat/completions` server through the official
  `openai` SDK (OpenAI, vLLM, Ollama, llama.cpp's server, LM Studio ...).
- `HFBackend`: a local Hugging Face causal LM (a folder, or a `.gguf` file), batched
  left-padded generation through the tokenizer's own chat template, on GPU when there is one.

With `options` (the prompt's option names, `--answer_mode choice`) both answer with one of them
as a JSON reply `{"answer": OPTION}`: the OpenAI backend asks the server for structured output
(`response_format` with a JSON schema whose `answer` is an enum of the options) and falls back
to free replies, saying so once, where the server rejects or ignores it; the HF backend scores
every option (`choose`) and adds their probabilities, `"probs"`.
"""

from __future__ import annotations

import email.utils
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NoReturn, Optional, Sequence

from inference.llm.answers import is_structured
from inference.llm.logprobs import InvalidLogprob, option_probs, reply_tokens
from inference.llm.settings import LinkSettings
from utils.errors import ConfigError
from utils.secrets import redact, redact_url, url_secrets

HF_SYSTEM_PROMPT = "You are a helpful assistant."  # as the paper's Llama / Qwen calls
DEFAULT_MAX_TOKENS = 64  # free generation: a label takes a few tokens; --max_tokens for more
HF_MAX_TOKENS = 32  # a local model's free generation
TOP_LOGPROBS = 20  # alternatives per token asked of a server in choice mode (OpenAI's maximum)


class TransientError(RuntimeError):
    """A failure worth retrying; `retry_after` is the server's requested wait in seconds."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(RuntimeError):
    """A failure no retry fixes; the run stops."""


class NotConfigured(RuntimeError):
    """No LLM to call: the message says what to set."""

    def refuse(self) -> NoReturn:
        """Stop the run with one line: what to set, and the dry run that needs nothing."""
        sys.exit(f"error: {self}; or give --dry_run to write the prompts without calling an LLM")


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Backend:
    name = "base"
    batch_size = 1

    def identity(self) -> dict[str, Any]:
        """Model and decoding settings: what changes the replies, and so keys the cache."""
        raise NotImplementedError

    def complete(self, prompt: str) -> Completion:
        raise NotImplementedError

    def complete_batch(self, prompts: list[str]) -> list[Completion]:
        return [self.complete(p) for p in prompts]


def retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        try:
            if value is not None:
                return float(value) / scale
        except (TypeError, ValueError):
            pass
    date = headers.get("retry-after")
    try:
        if date is not None:
            return max(0.0, email.utils.parsedate_to_datetime(date).timestamp() - time.time())
    except (TypeError, ValueError):
        pass
    return None


def choice_schema(options: Sequence[str]) -> dict[str, Any]:
    """The `response_format` restricting a reply to `{"answer": one of options}`."""
    return {"type": "json_schema", "json_schema": {
        "name": "entity_type", "strict": True,
        "schema": {"type": "object", "properties": {"answer": {"type": "string", "enum": list(options)}},
                   "required": ["answer"], "additionalProperties": False}}}


_SAID = threading.Lock()  # worker threads share the sets `say_once` reads


def say_once(flags: set[str], key: str, message: str) -> None:
    """Print `message` to stderr the first time `key` is seen in the set `flags` (thread-safe)."""
    with _SAID:
        if key in flags:
            return
        flags.add(key)
    print(f"warning: {message}", file=sys.stderr)


class OpenAIBackend(Backend):
    """Chat completions with one user message, the prompt, as in the paper's GPT calls."""

    name = "openai"
    RETRY_STATUS = {408, 409, 429}  # and every 5xx
    REJECT_STATUS = {400, 422}  # what servers answer to a response_format they do not take

    def __init__(self, model=LinkSettings.model, base_url=None, temperature=LinkSettings.temperature,
                 max_tokens=None, timeout=LinkSettings.timeout, options=None):
        import openai

        self._openai = openai
        self._key = os.environ.get("OPENAI_API_KEY")
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.shown_url = redact_url(self.base_url)  # what messages, metrics and the cache key name
        self._secrets = [self._key, *url_secrets(self.base_url)]
        if not self._key and not self.base_url:
            raise NotConfigured("no LLM configured: set OPENAI_API_KEY for OpenAI, or --base_url / OPENAI_BASE_URL "
                                "for an OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio)")
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.options = list(options) if options else None
        self.structured = self.options is not None  # until the server rejects response_format
        self.logprobs = self.options is not None  # until the server rejects or ignores logprobs
        self._said, self._lock = set(), threading.Lock()
        # Local servers ignore the key, but the SDK insists on one. Retries are the linker's job.
        self.client = openai.OpenAI(api_key=self._key or "unused", base_url=self.base_url,
                                    timeout=timeout, max_retries=0)

    def identity(self) -> dict[str, Any]:  # the server too: another one may serve another model under the same name
        out = {"backend": self.name, "model": self.model, "temperature": self.temperature,
               "max_tokens": self.max_tokens, "base_url": self.shown_url}
        if self.options:
            out.update(choice=self.options, top_logprobs=TOP_LOGPROBS)
        return out

    def complete(self, prompt: str) -> Completion:
        extra = {} if self.max_tokens is None else {"max_tokens": self.max_tokens}
        structured, logprobs = self.structured, self.structured and self.logprobs
        if structured:
            extra["response_format"] = choice_schema(self.options)
        if logprobs:  # the option's probabilities, from the token that names it
            extra.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        try:
            reply = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}],
                temperature=self.temperature, **extra)
        except self._openai.APIStatusError as err:
            message = self._redact(f"HTTP {err.status_code} from {self.shown_url or 'OpenAI'}: {err.message}")
            if logprobs and err.status_code in self.REJECT_STATUS:  # try again without them first
                with self._lock:
                    self.logprobs = False
                    say_once(self._said, "no_logprobs", f"the server rejected a request with logprobs ({message}); "
                             "asking without them: each answer counts as certain (llm_probs all on it)")
                return self.complete(prompt)
            if structured and err.status_code in self.REJECT_STATUS:
                with self._lock:
                    self.structured = False
                    say_once(self._said, "rejected", f"the server rejected structured output ({message}); "
                             "asking for free replies instead (--answer_mode free)")
                return self.complete(prompt)
            if err.status_code in self.RETRY_STATUS or err.status_code >= 500:
                raise TransientError(message, retry_after(err.response.headers)) from None
            raise FatalError(message) from None
        except self._openai.APIConnectionError as err:  # timeouts included
            raise TransientError(self._redact(f"{err.message} ({self.shown_url or 'OpenAI'})")) from None
        except ValueError:  # a body announced as JSON that is not
            raise TransientError("malformed JSON in the reply") from None
        completion = self._completion(reply)
        if structured and not is_structured(completion.text, self.options):
            with self._lock:
                say_once(self._said, "ignored", "the server ignored the structured-output request (the reply "
                         f"{completion.text[:60]!r} is not {{\"answer\": OPTION}}); parsing replies as free text")
        elif logprobs:
            completion.text = self._with_probs(reply, completion.text)
        return completion

    def _with_probs(self, reply, text):
        """The structured reply with the options' probabilities added from its log-probabilities,
        or as it is (said once) when the server returned none that name an option, or one out of range."""
        try:
            probs = option_probs(reply_tokens(reply.choices[0]) or (), self.options)
        except InvalidLogprob as err:
            with self._lock:
                say_once(self._said, "bad_logprobs", f"the server returned an invalid {err} (not a number from -inf "
                         "to 0); such replies count as without probabilities (llm_probs all on the answer)")
            return text
        if probs is None:
            with self._lock:
                say_once(self._said, "no_logprobs", "the server returned no log-probabilities that name an option; "
                         "each answer counts as certain (llm_probs all on it)")
            return text
        return json.dumps({"answer": json.loads(text)["answer"], "probs": probs})

    def _completion(self, reply):
        try:
            text = reply.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise TransientError(self._redact(f"malformed reply: {str(reply)[:200]!r}")) from None
        if text is None:  # no reply at all (a filtered or refused one): not an answer, asked again, else pending
            reason = getattr(reply.choices[0], "finish_reason", None)
            raise TransientError(f"a reply without content (content: null, finish_reason {reason!r})")
        usage = getattr(reply, "usage", None)
        return Completion(text or "", getattr(usage, "prompt_tokens", 0) or 0,
                          getattr(usage, "completion_tokens", 0) or 0)

    def _redact(self, message):
        return redact(message, self._secrets)


class HFBackend(Backend):
    """A local causal LM (a folder or a `.gguf` file); `batch_size` prompts per `generate` call,
    or with `options` each prompt's options scored (`inference/llm/choice.py`)."""

    name = "hf"

    def __init__(self, ckpt, temperature=LinkSettings.temperature, max_tokens=HF_MAX_TOKENS,
                 batch_size=LinkSettings.concurrency, device=None, seed=None, options=None):
        if not ckpt:
            raise NotConfigured(needs_ckpt("hf (llama, qwen)"))
        import torch

        from inference.llm.gguf import load_causal_lm, load_tokenizer

        self._torch = torch
        if seed is not None:
            torch.manual_seed(seed)
        self.ckpt, self.temperature, self.max_tokens, self.batch_size = ckpt, temperature, max_tokens, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(ckpt, padding_side="left")
        if not self.tokenizer.chat_template:
            raise FatalError(f"{ckpt}: the tokenizer has no chat template; use an instruction-tuned model")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = load_causal_lm(ckpt, dtype=dtype).to(self.device).eval()
        self.options = list(options) if options else None
        if self.options:
            from inference.llm.choice import OptionScorer

            self.scorer = OptionScorer(self.model, self.tokenizer, self.options)

    def identity(self) -> dict[str, Any]:
        out = {"backend": self.name, "model": os.path.abspath(self.ckpt), "temperature": self.temperature,
               "max_tokens": self.max_tokens, "system": HF_SYSTEM_PROMPT}
        if self.options:  # scored, not generated: decoding settings play no part
            out.update(temperature=None, max_tokens=None, choice=self.options)
        return out

    @staticmethod
    def chat(prompt: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": HF_SYSTEM_PROMPT}, {"role": "user", "content": prompt}]

    def complete_batch(self, prompts: list[str]) -> list[Completion]:
        if self.options:
            return [self.choose(p) for p in prompts]
        chats = [self.chat(p) for p in prompts]
        texts = self.tokenizer.apply_chat_template(chats, tokenize=False, add_generation_prompt=True)
        # The chat template already holds the special tokens the model expects.
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        greedy = self.temperature <= 0
        sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": self.temperature}
        with self._torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new = out[:, inputs["input_ids"].shape[1]:]
        replies = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        n_prompt = inputs["attention_mask"].sum(dim=1).tolist()
        n_new = (new != self.tokenizer.pad_token_id).sum(dim=1).tolist()
        return [Completion(text, p, c) for text, p, c in zip(replies, n_prompt, n_new)]

    def choose(self, prompt: str) -> Completion:
        """The likeliest option as `{"answer": OPTION, "probs": {OPTION: p}}`; completion tokens
        count the option tokens scored."""
        scored = self.scorer.score(self.chat(prompt))
        best = max(range(len(self.options)), key=scored.probs.__getitem__)
        reply = {"answer": self.options[best],
                 "probs": dict(zip(self.options, scored.probs))}
        return Completion(json.dumps(reply), scored.prompt_tokens, scored.option_tokens)


def needs_ckpt(llm_name: str) -> str:
    return f"no LLM configured: --llm_name {llm_name} needs --llm_ckpt, a local model folder or .gguf file"


def check_configured(settings: LinkSettings) -> None:
    """NotConfigured when `--llm_name` lacks what it needs; loads and calls nothing (a local
    model needs --llm_ckpt; the OpenAI client only reads its key and URL when built)."""
    if settings.llm_name is not None and settings.local_llm:  # a local model is named
        if not settings.llm_ckpt:
            raise NotConfigured(needs_ckpt(settings.llm_name))
    else:
        make_backend(settings)


@dataclass(frozen=True)
class Registered:
    """One `--llm_name`: `make(settings, options)` builds its backend; `local` marks an
    in-process model (it needs --llm_ckpt, and --model does not key its replies)."""
    make: Callable[[LinkSettings, Optional[Sequence[str]]], Backend]
    local: bool = False


def _server(s: LinkSettings, options: Optional[Sequence[str]]) -> Backend:
    return OpenAIBackend(s.model, s.base_url, s.temperature, s.max_tokens or DEFAULT_MAX_TOKENS, s.timeout, options)


def _hf(s: LinkSettings, options: Optional[Sequence[str]]) -> Backend:
    return HFBackend(s.llm_ckpt, s.temperature, s.max_tokens or HF_MAX_TOKENS, s.concurrency, seed=s.seed,
                     options=options)


# The one list of backend names: `--llm_name` accepts exactly these (settings.llm_name_type),
# and `make_backend` builds from them. A new backend is one entry here.
BACKENDS: dict[str, Registered] = {
    "gpt": Registered(_server),  # and every name starting with gpt (gpt-4o ...)
    "openai": Registered(_server),  # any OpenAI-compatible server
    "llama": Registered(_hf, local=True),
    "qwen": Registered(_hf, local=True),
    "hf": Registered(_hf, local=True),
}
PREFIXED = ("gpt",)  # names that also stand for every name starting with them


def registered(llm_name: Optional[str]) -> Optional[Registered]:
    """The entry of BACKENDS that `llm_name` names (any case), or None (also for no name)."""
    if llm_name is None:
        return None
    name = llm_name.lower()
    prefix = next((p for p in PREFIXED if name.startswith(p)), None)
    return BACKENDS.get(name) or (BACKENDS.get(prefix) if prefix else None)


def known_names() -> str:
    """The registered names, for messages and --help."""
    return ", ".join(BACKENDS)


def make_backend(settings: LinkSettings, options: Optional[Sequence[str]] = None) -> Backend:
    """The backend that `settings.llm_name` names in BACKENDS; with `options` (the option names)
    it answers in choice mode."""
    entry = registered(settings.llm_name)
    if entry is None:
        raise ConfigError(f"unknown --llm_name {settings.llm_name!r} ({known_names()})")
    return entry.make(settings, options)
