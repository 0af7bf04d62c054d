"""The closing lines of a run: local (and linked) F1 from the metrics files beside its outputs.

    python -m inference.reports.summary RESULTS_DIR/ori    # reads ori.jsonl.metrics.json, ori.linked.jsonl.metrics.json
"""
import json
import sys


def score_line(name, path):
    with open(path, encoding="utf-8") as f:
        metrics = json.load(f)
    metrics = metrics.get("linked", metrics)
    return (f"{name} F1 {metrics['f1']:.4f}  (P {metrics['precision']:.4f}, R {metrics['recall']:.4f}; "
            f"{metrics['n_gold']} gold entities)  {path}")


def main(argv=None):
    [stem] = sys.argv[1:] if argv is None else argv
    print(score_line("local ", stem + ".jsonl.metrics.json"))
    try:
        print(score_line("linked", stem + ".linked.jsonl.metrics.json"))
    except FileNotFoundError:
        print(f"linked: dry run, no LLM called; the prompts are in {stem}.linked.prompts.jsonl\n"
              "  to link: OPENAI_API_KEY=... (OpenAI), OPENAI_BASE_URL=http://localhost:8000/v1 LLM_MODEL=... "
              "(vLLM, Ollama), or LLM_CKPT=/path/to/Qwen2.5-7B-Instruct (a local model), then rerun")


if __name__ == "__main__":
    main()
