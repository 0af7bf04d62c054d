"""A real OpenAI-compatible `/v1/chat/completions` server on 127.0.0.1, for tests and benchmarks.

    with LLMServer(answer=lambda prompt: "Location", latency=0.1) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        server.prompts, server.answered, server.max_in_flight

Each request takes the next action of `script` (while there is one), else `Reply(answer(prompt))`.
Actions: `Reply(text, delay)` (a slow reply with `delay` past the client's timeout), `Fail(status,
retry_after)` (429, 500, ...), `Drop()` (the connection is closed with no response) and
`Garbage(body, content_type)`. With `api_key` set, requests bearing another key get a 401 whose
message quotes the key they sent, as some servers do. `hold_after(n)` answers n more requests and
holds later ones until `release()`; a held or slow request whose client has gone is not answered.

Structured output (`response_format`, recorded in `formats`) is handled as `structured` says:
"ignore" (the default; answers free text, as `transformers serve` does), "honour" (a JSON schema
whose `answer` is an enum gets `{"answer": OPTION}`: `answer(prompt)` when it is one of the enum,
else the first option, as constrained decoding would force) or "reject" (HTTP 400, as servers
without structured output do).

Log-probabilities: with `logprobs` (a function prompt -> {OPTION: probability}, or None for a
reply without them) a structured reply to a request asking for `logprobs` carries them as OpenAI
returns them: the reply's tokens `{"`, `answer`, `":`, ` "`, the option's first three letters,
the rest, `"}`, and at the option's first token the `top_logprobs` of each option's first three
letters under that distribution (at most the request's `top_logprobs`, likeliest first).
"""
import math
import json
import re
import select
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

ENTITY = re.compile(r"Select the entity type of (.*) in this context, and only need to output the entity type: ")


def entity_of(prompt):
    """The span a LinkNER prompt asks about (the last one, after any examples)."""
    found = ENTITY.findall(prompt)
    return found[-1] if found else None


@dataclass
class Reply:
    text: str
    delay: float = 0.0


@dataclass
class Fail:
    status: int
    retry_after: Optional[float] = None
    message: str = "scripted failure"


@dataclass
class Drop:
    pass


@dataclass
class Garbage:
    body: bytes = b"<html>502 Bad Gateway</html>"
    content_type: str = "text/html"


class LLMServer:
    def __init__(self, answer=None, latency=0.0, script=(), api_key=None, structured="ignore", port=0,
                 logprobs=None):
        if structured not in ("ignore", "honour", "reject"):
            raise ValueError(f"structured must be ignore, honour or reject, not {structured!r}")
        self.answer = answer or (lambda prompt: "Non-entity")
        self.latency, self.api_key, self.structured = latency, api_key, structured
        self.logprobs = logprobs
        self.formats = []  # the response_format of every request (None when it had none)
        self.script = deque(script)
        self.prompts = []  # every prompt received, in arrival order
        self.times = []  # arrival time of each
        self.answered = Counter()  # prompt -> replies delivered with status 200
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._allowance = None  # replies left before holding, None = no hold
        self._open = threading.Event()
        self._open.set()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)  # port 0: any free one
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 128
        self._httpd.llm = self
        self._thread = None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def hold_after(self, n):
        with self._lock:
            self._allowance = n
            self._open.clear()

    def release(self):
        with self._lock:
            self._allowance = None
            self._open.set()

    def _arrive(self, prompt):
        with self._lock:
            self.prompts.append(prompt)
            self.times.append(time.monotonic())
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.popleft() if self.script else Reply(self.answer(prompt))

    def _may_answer(self):
        """Wait while held; True once this request may be answered."""
        with self._lock:
            if self._allowance is None:
                return True
            if self._allowance > 0:
                self._allowance -= 1
                return True
        return self._open.wait(timeout=60)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    disable_nagle_algorithm = True  # else headers and body, sent apart, wait on delayed ACKs

    def log_message(self, *args):
        pass

    def do_POST(self):
        llm = self.server.llm
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        prompt = body["messages"][-1]["content"]
        with llm._lock:
            llm.formats.append(body.get("response_format"))
        if body.get("response_format") and llm.structured == "reject":
            return self._json(400, {"error": {"message": "response_format is not supported by this server",
                                              "type": "invalid_request_error"}})
        action = llm._arrive(prompt)
        try:
            self._serve(llm, body, prompt, action)
        finally:
            with llm._lock:
                llm.in_flight -= 1

    def _serve(self, llm, body, prompt, action):
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if llm.api_key is not None and key != llm.api_key:
            return self._json(401, {"error": {"message": f"Incorrect API key provided: {key}",
                                              "type": "invalid_request_error", "code": "invalid_api_key"}})
        time.sleep(llm.latency + getattr(action, "delay", 0.0))
        if not llm._may_answer() or self._client_gone():
            self.close_connection = True
            return None
        if isinstance(action, Drop):
            self.close_connection = True
            return None
        if isinstance(action, Fail):
            headers = {} if action.retry_after is None else {"Retry-After": str(action.retry_after)}
            return self._json(action.status, {"error": {"message": action.message}}, headers)
        if isinstance(action, Garbage):
            return self._send(200, action.body, action.content_type)
        text = _structured(body, action.text) if llm.structured == "honour" else action.text
        completion = _completion(body, text)
        if body.get("logprobs") and llm.logprobs is not None and llm.structured == "honour" and text.startswith("{"):
            completion["choices"][0]["logprobs"] = _logprobs(text, llm.logprobs(prompt), body.get("top_logprobs") or 0)
        self._json(200, completion)
        with llm._lock:  # counted once the reply is out
            llm.answered[prompt] += 1
        return None

    def _client_gone(self):
        """The client closed the connection (timed out, or was killed) while we waited."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _json(self, status, payload, headers=None):
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status, body, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _structured(body, text):
    """`text` as the JSON object a json_schema response_format with an enum `answer` asks for."""
    try:
        options = body["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"]
    except (KeyError, TypeError):
        return text
    chosen = next((o for o in options if o.lower() == text.strip().lower()), options[0])
    return json.dumps({"answer": chosen})


def _logprobs(text, distribution, top):
    """The `logprobs` of a structured reply `text` whose option token has `distribution`'s top
    alternatives (None: the server sends none)."""
    if distribution is None:
        return None
    name = json.loads(text)["answer"]
    pieces = ['{"', "answer", '":', ' "', name[:3], name[3:], '"}']
    ranked = sorted(distribution.items(), key=lambda kv: -kv[1])[:top]
    alternatives = [{"token": option[:3], "logprob": math.log(p) if p > 0 else -1e9, "bytes": None}
                    for option, p in ranked]
    content = []
    for i, piece in enumerate(pieces):
        own = math.log(distribution.get(name, 1.0) or 1e-9) if i == 4 else 0.0
        content.append({"token": piece, "logprob": own, "bytes": None,
                        "top_logprobs": alternatives if i == 4 else [{"token": piece, "logprob": 0.0, "bytes": None}]})
    return {"content": content}


def _completion(body, text):
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "test"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                      "total_tokens": prompt_tokens + len(text.split())}}
