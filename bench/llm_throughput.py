"""LLM linking throughput: requests per second at several concurrencies against a local server.

The server (tests/support/loopback_server.py) answers every request after `latency` seconds, like a remote
API; the linker runs with the OpenAI backend and no cache, so every span is one request.

    python bench/llm_throughput.py [--n_requests 64] [--latency 0.1] [--concurrencies 1,16]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from inference.llm.linker import Linker  # noqa: E402
from inference.llm.backends import OpenAIBackend  # noqa: E402
from inference.llm.prompt import DATASETS, PromptBuilder  # noqa: E402
from tests.support.loopback_server import LLMServer  # noqa: E402
from utils import flag_types as ft  # noqa: E402


def _records(n):
    return [{"id": i, "sentence": f"Talks in Brussels on day {i}",
             "entity": [{"entity": "Brussels", "span": [2, 2], "pred": "ORG", "uncertainty": 0.9}]}
            for i in range(n)]


def run(n_requests=64, latency=0.1, concurrencies=(1, 16)):
    """{"latency", "n_requests", "runs": {concurrency: {"wall_s", "requests_per_s"}}, "speedup"}."""
    runs = {}
    with LLMServer(answer=lambda prompt: "Location", latency=latency) as server:
        backend = OpenAIBackend(model="bench", base_url=server.base_url, timeout=30)
        for concurrency in concurrencies:
            linker = Linker(backend, PromptBuilder(DATASETS["conll03"]), threshold=0.4, concurrency=concurrency)
            linked = list(linker.link_records(_records(n_requests)))
            assert all(rec["entity"][0]["llm_pred"] == "LOC" for rec in linked)
            summary = linker.summary()
            runs[concurrency] = {"wall_s": summary["wall_s"], "requests_per_s": summary["requests_per_s"],
                                 "max_in_flight": server.max_in_flight}
            server.max_in_flight = 0
    slowest, fastest = runs[min(concurrencies)], runs[max(concurrencies)]
    return {"latency": latency, "n_requests": n_requests, "runs": runs,
            "speedup": round(fastest["requests_per_s"] / slowest["requests_per_s"], 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n_requests", type=ft.whole_number(100_000), default=64)
    p.add_argument("--latency", type=ft.nonnegative_float, default=0.1)
    p.add_argument("--concurrencies", default=(1, 16), help="comma list",
                   type=lambda text: tuple(ft.whole_number(1024)(c) for c in text.split(",")))
    args = p.parse_args()
    concurrencies = args.concurrencies
    print(json.dumps(run(args.n_requests, args.latency, concurrencies), indent=2))


if __name__ == "__main__":
    main()
