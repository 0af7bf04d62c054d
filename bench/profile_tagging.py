"""Where the local stage's time goes: `local_inference.py` on a test set, one torch thread, with a
wall-clock timer around each stage (featurizing, the encoder's parts, the span scores, the
uncertainty, decoding, the records), as a share of the tagging, and the garbage collector's
passes. Timers, not cProfile: cProfile slows the Python-heavy stages (featurizing, decoding) about fifteen-fold and the matrix products
not at all, so its shares mislead.

    OMP_NUM_THREADS=1 python bench/profile_tagging.py --model bench/runs/conll03_ener \\
        --data_dir ../shared/data/conll03 [--quantize int8] [--repeat 2]

Prints, for the last of `--repeat` runs (the first warms the caches), one line per stage: seconds
and share of the whole tagging. Indented stages are parts of the stage above them.
"""
import argparse
import contextlib
import gc
import os
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@contextlib.contextmanager
def collector_timer() -> dict:
    """Within the block, the wall time of Python's garbage collection passes ("seconds") and
    their number per generation ("passes"): time spent inside whichever stage allocated."""
    spent = {"seconds": 0.0, "passes": [0, 0, 0]}
    began = [0.0]

    def callback(phase, info):
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            spent["seconds"] += time.perf_counter() - began[0]
            spent["passes"][info["generation"]] += 1

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


@contextlib.contextmanager
def timers(targets: list) -> dict:
    """Within the block, each (label, owner, attribute) callable accumulates its wall time into
    the dict yielded (label -> seconds)."""
    spent, saved = defaultdict(float), []
    for label, owner, attr in targets:
        fn = getattr(owner, attr)

        def timed(*args, _fn=fn, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - start

        saved.append((owner, attr, fn))
        setattr(owner, attr, timed)
    try:
        yield spent
    finally:
        for owner, attr, fn in reversed(saved):
            setattr(owner, attr, fn)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bench/runs/conll03_ener")
    p.add_argument("--data_dir", default="../shared/data/conll03")
    p.add_argument("--input_file", help="instead of --data_dir's test split")
    p.add_argument("--quantize", choices=["none", "int8"], default="none")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    import torch
    from torch import nn

    torch.set_num_threads(1)
    import local_inference
    from dataloaders.dataset import SpanDataset
    from inference.local import predict, tagging
    from inference.local.learned.rescoring import Rescorer
    from inference.reports.calibration import LocalScores
    from models import encoders, span_ner
    from models.quantize import Int8SpanNER, patched_loading
    from utils import jsonl

    packed = Int8SpanNER if args.quantize == "int8" else span_ner.SpanNER
    from torch.ao.nn.quantized.dynamic import LSTM as Int8LSTM

    lstm = Int8LSTM if args.quantize == "int8" else nn.LSTM
    targets = [  # (label, owner, attribute): indented labels are parts of the one above
        ("whole tagging (records written)", local_inference, "write_records"),
        ("  featurize (SpanDataset)", SpanDataset, "__init__"),
        ("  grid batches (grid_batch)", predict, "grid_batch"),
        ("  span scores (SpanNER.grid_scores)", span_ner.SpanNER, "grid_scores"),
        ("    per-word terms (_packed_terms)", packed, "_packed_terms"),
        ("      encoder (GloveEncoder.forward)", encoders.GloveEncoder, "forward"),
        ("        BiLSTM", lstm, "forward"),
        ("        char CNN (GloveEncoder._char_states)", encoders.GloveEncoder, "_char_states"),
        ("  uncertainty (span_probabilities)", predict, "span_probabilities"),
        ("  decode (decode_batch)", tagging, "decode_batch"),
        ("  calibrated confidence (Rescorer.rescore_batch)", Rescorer, "rescore_batch"),
        ("  records (sentence_record)", tagging, "sentence_record"),
        ("  metrics (LocalScores.add_record)", LocalScores, "add_record"),
        ("  writing (JsonlWriter.write)", jsonl.JsonlWriter, "write"),
        ("  heap trim (trim_heap)", tagging, "trim_heap"),
    ]
    source = ["--input_file", args.input_file] if args.input_file else ["--data_dir", args.data_dir]
    with tempfile.TemporaryDirectory() as tmp, patched_loading(local_inference, args.quantize):
        for _ in range(args.repeat):
            with timers(targets) as spent, collector_timer() as collected:
                metrics = local_inference.main(["--inference_model", args.model, *source, "--overwrite",
                                                "--save_file", os.path.join(tmp, "out.jsonl")])
    print(f"{metrics['n_sentences']} sentences, F1 {metrics['f1']:.4f}, AUROC {metrics['auroc']:.4f}, "
          f"{metrics['sentences_per_second']:.0f} sentences/s (with the timers)")
    whole = spent[targets[0][0]] or 1.0
    for label, *_ in targets:
        print(f"{label:44s} {spent[label]:7.3f} s {100 * spent[label] / whole:5.1f} %")
    inner = sum(spent[label] for label, *_ in targets[1:] if label.startswith("  ") and not label.startswith("   "))
    print(f"{'  the rest (batching, copying, writing)':44s} {whole - inner:7.3f} s {100 * (whole - inner) / whole:5.1f} %")
    print(f"{'garbage collection (within the stages above)':44s} {collected['seconds']:7.3f} s "
          f"{100 * collected['seconds'] / whole:5.1f} %   passes per generation {collected['passes']}")


if __name__ == "__main__":
    main()
