"""Where the local stage's time goes: `local_inference.py` on a test set under cProfile, one torch
thread, the time of each stage (featurizing, the encoder's parts, the span scores, the uncertainty,
decoding, writing the records) as a share of the tagging.

    OMP_NUM_THREADS=1 python bench/profile_tagging.py --model bench/runs/conll03_ener \\
        --data_dir ../shared/data/conll03 [--quantize int8]

Prints one line per stage (seconds, share) and the 25 functions with the most own time. The
shares are what matters (cProfile slows Python-heavy stages more than the matrix products, so
its total is above an unprofiled run's).
"""
import argparse
import cProfile
import os
import pstats
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# (stage, module file suffix, function name): cumulative time of that function
STAGES = [
    ("whole tagging (records written)", "inference/local/tagging.py", "write_records"),
    ("featurize (SpanDataset)", "dataloaders/dataset.py", "__init__"),
    ("grid batches (grid_batch)", "inference/local/predict.py", "grid_batch"),
    ("model: span scores (grid_scores)", "models/span_ner.py", "grid_scores"),
    ("  encoder (GloveEncoder.forward)", "models/encoders.py", "forward"),
    ("    BiLSTM (nn.LSTM.forward)", "torch/nn/modules/rnn.py", "forward"),
    ("    char CNN (Conv1d.forward)", "torch/nn/modules/conv.py", "forward"),
    ("  per-word terms (_packed_terms)", "models/span_ner.py", "_packed_terms"),
    ("uncertainty (span_probabilities)", "inference/local/uncertainty.py", "span_probabilities"),
    ("decode (decode_sentence)", "inference/local/decode.py", "decode_sentence"),
    ("records to JSON (write_jsonl and co.)", "utils/jsonl.py", None),
]


def stage_times(stats: pstats.Stats) -> list[tuple[str, float]]:
    out = []
    for name, suffix, func in STAGES:
        total = 0.0
        for (path, _, fname), (_, _, _, cum, _) in stats.stats.items():
            if path.endswith(suffix) and (func is None or fname == func):
                total = max(total, cum) if func else total + cum
        out.append((name, total))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bench/runs/conll03_ener")
    p.add_argument("--data_dir", default="../shared/data/conll03")
    p.add_argument("--quantize", choices=["none", "int8"], default="none")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import local_inference
    from models.quantize import patched_loading

    with tempfile.TemporaryDirectory() as tmp, patched_loading(local_inference, args.quantize):
        prof = cProfile.Profile()
        prof.enable()
        metrics = local_inference.main(["--inference_model", args.model, "--data_dir", args.data_dir,
                                        "--save_file", os.path.join(tmp, "out.jsonl")])
        prof.disable()
    stats = pstats.Stats(prof)
    print(f"{metrics['n_sentences']} sentences, F1 {metrics['f1']:.4f}, {metrics['sentences_per_second']:.0f} "
          "sentences/s under cProfile")
    times = stage_times(stats)
    whole = times[0][1] or 1.0
    for name, seconds in times:
        print(f"{name:42s} {seconds:7.2f} s {100 * seconds / whole:5.1f} %")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
