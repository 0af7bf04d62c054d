"""Stage one across machines with Ray Data: tag many input files (shards) with one checkpoint.

    python -m inference.local.ray_tag --input 'corpus/*.txt' --output out/ --inference_model M \\
        [--address ADDR] [--actors N]

Each input file is one shard, read on the cluster with the project's own readers (any format
local_inference.py reads) and cut into the chunks local_inference.py tags (`tagging.CHUNK`
sentences, counted from the file's start); `map_batches` sends each chunk to a tagger actor
(`Tagger`, a callable class: each actor loads the checkpoint once, and runs torch on one
thread). The driver writes OUT/NAME.jsonl for input NAME, in input order (Ray Data's
preserve_order).

Records: a shard's records are the very records `local_inference.py --input_file NAME` writes
with the same flags, byte for byte: the same chunks give the same batches, and a record's "id" is
its sentence's index in its own file (ids restart at 0 in each shard; the pair (shard, id) names
a sentence of the corpus).

Ray is optional (requirement-ray.txt); the input files must be readable at the same path on
every node (a shared file system). One run at a time writes OUT (OUT/ray_tag.lock). A shard is
written to NAME.jsonl.part and renamed when complete, so a rerun skips the finished shards and
tags the others again; a finished shard made with other settings is refused unless --overwrite.
No metrics are computed here: score a shard with `local_inference.py` or read it with
`llm_inference.py`.
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
import pickle
import sys
from typing import Any, Iterator, Optional

from dataloaders.readers import FORMATS, iter_dataset
from inference.local import tagging
from inference.local.tagging import TagSettings, calibrated, chunk_records, fingerprint
from inference.local.uncertainty import LEARNED, UNCERTAINTY_TYPES
from utils import flag_types as ft
from utils.cli import CLI_ERRORS, run_cli
from utils.errors import DataError
from utils.jsonl import JsonlWriter
from utils.output_lock import OutputLock
from utils.owned_output import check_settings, start_output

log = logging.getLogger("ray_tag")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--input", required=True, nargs="+", help="input files or glob patterns (quoted), one shard each")
    a("--output", required=True, help="directory of the output shards, NAME.jsonl per input NAME")
    a("--inference_model", "--checkpoint", dest="inference_model", required=True, type=ft.existing_dir)
    a("--input_format", default="auto", choices=["auto", *FORMATS])
    a("--uncertainty_type", choices=(*UNCERTAINTY_TYPES, LEARNED))
    a("--mc_samples", type=ft.positive_int, default=TagSettings.mc_samples)
    a("--candidate_threshold", type=ft.number, default=None)
    a("--batch_size", type=ft.positive_int, default=TagSettings.batch_size)
    a("--address", help="the Ray cluster to join (ray start --head prints it); default: a local Ray")
    a("--actors", type=ft.positive_int, default=1, help="tagger actors, one CPU each; leave a CPU of the "
      "cluster free for the readers")
    a("--overwrite", action="store_true", help="tag every shard afresh")
    return p


def shard_files(patterns: list[str], output: str) -> list[tuple[str, str]]:
    """(input file, output shard) pairs, in a fixed order; two inputs of one name are refused."""
    files = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise DataError(f"{pattern}: no file matches")
        files += found
    shards: list[tuple[str, str]] = []
    seen: dict[str, str] = {}  # shard name -> the input it comes from
    for path in files:
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file")
        name = os.path.splitext(os.path.basename(path))[0] + ".jsonl"
        if name in seen:
            raise DataError(f"{path}: its shard {name} is also {seen[name]}'s; rename one of them")
        seen[name] = path
        shards.append((os.path.abspath(path), os.path.join(output, name)))
    return shards


def read_chunks(row: dict[str, Any], input_format: str) -> Iterator[dict[str, Any]]:
    """One shard's chunks: {"shard", "lo" (its first sentence's index), "sentences" (pickled)}."""
    sentences, lo = iter_dataset(row["path"], input_format), 0
    while True:
        chunk = [s for _, s in zip(range(tagging.CHUNK), sentences)]
        if not chunk:
            return
        yield {"shard": row["shard"], "lo": lo, "sentences": pickle.dumps(chunk)}
        lo += len(chunk)


class Tagger:
    """A Ray actor's tagger: the checkpoint loaded once; each call tags whole chunks."""

    def __init__(self, settings: TagSettings):
        import torch

        from models.checkpoint import load_checkpoint

        torch.set_num_threads(1)
        self.model, self.featurizer, self.config = load_checkpoint(settings.inference_model, "cpu")
        self.settings, _, self.rescorer = calibrated(settings, self.config, self.featurizer, "cpu")

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        lines = []
        for lo, sentences in zip(batch["lo"], batch["sentences"]):
            records = chunk_records(self.model, self.featurizer, self.config, self.settings, "cpu", self.rescorer,
                                    (int(lo), pickle.loads(sentences)))
            lines.append([JsonlWriter.line(rec) for rec in records])
        return {"shard": batch["shard"], "lines": ["".join(chunk) for chunk in lines]}


def settings_of(args: argparse.Namespace) -> TagSettings:
    return TagSettings(inference_model=args.inference_model, save_file=args.output, input_format=args.input_format,
                       uncertainty_type=args.uncertainty_type, mc_samples=args.mc_samples,
                       candidate_threshold=args.candidate_threshold, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> int:
    import ray

    settings = settings_of(args)
    shards = shard_files(args.input, args.output)
    os.makedirs(args.output, exist_ok=True)
    with OutputLock(os.path.join(args.output, "ray_tag")):
        from models.checkpoint import load_checkpoint

        _, featurizer, config = load_checkpoint(settings.inference_model, "cpu")  # fail here, not on the cluster
        resolved, _, _ = calibrated(settings, config, featurizer, "cpu")
        fp = {**fingerprint(resolved, config), "online": False}
        todo = []
        for shard, (path, out) in enumerate(shards):
            finished = os.path.isfile(out) and os.path.getsize(out) > 0
            check_settings(out, fp, args.overwrite)  # a finished shard of other settings, or not ours: refused
            if finished and not args.overwrite:
                continue
            start_output(out, fp, {"--input": path}, args.overwrite)
            todo.append(shard)
        print(f"{len(shards) - len(todo)} of {len(shards)} shards already tagged; tagging {len(todo)}")
        if todo:
            if not ray.is_initialized():
                ray.init(address=args.address, include_dashboard=False, log_to_driver=False)
            write_shards(ray, settings, shards, todo, args)
    return 0


def write_shards(ray: Any, settings: TagSettings, shards: list[tuple[str, str]], todo: list[int],
                 args: argparse.Namespace) -> None:
    """Tag the `todo` shards on the cluster; each written as it comes, renamed when complete."""
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ds = ray.data.from_items([{"shard": i, "path": shards[i][0]} for i in todo], override_num_blocks=len(todo))
    ds = ds.flat_map(read_chunks, fn_kwargs={"input_format": args.input_format})
    ds = ds.map_batches(Tagger, fn_constructor_args=(settings,), batch_size=1, num_cpus=1,
                        compute=ray.data.ActorPoolStrategy(size=args.actors))
    current: Optional[int] = None
    out = None
    try:
        for row in ds.iter_rows():
            if row["shard"] != current:
                finish_shard(shards, current, out)
                current, out = row["shard"], open(shards[row["shard"]][1] + ".part", "w", encoding="utf-8")
                todo.remove(current)
            assert out is not None  # opened for the first row's shard
            out.write(row["lines"])
            out.flush()
        finish_shard(shards, current, out)
        for shard in todo:  # inputs without a sentence
            open(shards[shard][1], "w").close()
    except Exception as err:  # a reader's or tagger's error comes back wrapped by Ray
        cause = getattr(err, "cause", None) or err.__cause__
        if isinstance(cause, CLI_ERRORS):
            raise cause from None
        raise


def finish_shard(shards: list[tuple[str, str]], shard: Optional[int], out: Any) -> None:
    if shard is not None:
        out.close()
        os.replace(shards[shard][1] + ".part", shards[shard][1])


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("error: ray is not installed: pip install -r requirement-ray.txt")
    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
