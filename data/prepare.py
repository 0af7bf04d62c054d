"""Fetch the freely downloadable datasets and convert column files to the paper's spanner JSON.

    python data/prepare.py [--out data]        # download WNUT-17, convert it, list the rest
    python data/prepare.py --convert_only DIR  # convert DIR/{train,dev|valid,test}.txt, no network

Converted splits go next to their sources as spanner.train / spanner.dev / spanner.test, the
layout the training and inference scripts read. Datasets that need a licence, or whose terms
are not stated, are not downloaded; their sources are printed instead (see data/README.md).
"""
import argparse
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

from dataloaders.convert import write_spanner_json  # noqa: E402
from dataloaders.readers import SPLIT_FILES, read_column_file  # noqa: E402
from utils.cli import run_cli  # noqa: E402
from utils.flag_types import existing_dir  # noqa: E402
from utils.errors import DataError  # noqa: E402

WNUT17 = "https://raw.githubusercontent.com/leondz/emerging_entities_17/master/"
DOWNLOADS = {"wnut17": {"train": WNUT17 + "wnut17train.conll", "dev": WNUT17 + "emerging.dev.conll",
                        "test": WNUT17 + "emerging.test.annotated"}}  # CC BY 4.0

MANUAL = """Not downloaded (licence, or terms not stated); get them yourself, then run --convert_only:
  CoNLL-2003         annotations https://www.clips.uantwerpen.be/conll2003/ner/ ; the text needs the
                     Reuters Corpus (RCV1) licence. Spanner files: https://github.com/zhzhengit/LinkNER
  CoNLL-2003 typos / OOV test sets (MINER authors): https://github.com/BeyonderXX/MINER
                     data/conll2003/v0/EntityTyposSwap/trans/test.txt, data/conll2003/v0/OOV/trans/test.txt
  CoNLL-2003 OOD     from the LinkNER authors: https://github.com/zhzhengit/LinkNER
  Twitter NER        https://github.com/BeyonderXX/MINER  data/Twitter/{train,dev,test}.txt
  OntoNotes 5.0      LDC2013T19, LDC licence: https://catalog.ldc.upenn.edu/LDC2013T19"""


def download(url, path, timeout=60):
    """Fetch `url` to `path` unless it is already there."""
    if os.path.isfile(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.replace(path + ".part", path)  # no half-written file if the download dies
    print(f"downloaded {url} -> {path}")


def convert_dir(src, out=None):
    """Convert the column files of `src` to `out`/spanner.<split>; returns {split: sentences}.

    Splits that are missing are skipped: the robustness folders hold a test split only.
    """
    out, counts = out or src, {}
    for split, names in SPLIT_FILES.items():
        found = [os.path.join(src, n) for n in names if n.endswith(".txt") and os.path.isfile(os.path.join(src, n))]
        if found:
            target = os.path.join(out, f"spanner.{split}")
            counts[split] = write_spanner_json(read_column_file(found[0]), target)
            print(f"{found[0]} -> {target}: {counts[split]} sentences")
    if not counts:
        raise DataError(f"{src}: no column file to convert (train.txt, dev.txt or valid.txt, test.txt)")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="downloads go to OUT/<dataset> (default: data/); "
                                      "--convert_only writes to OUT (default: DIR)")
    parser.add_argument("--convert_only", metavar="DIR", type=existing_dir, help="convert local column files in DIR, no network")
    args = parser.parse_args(argv)
    return run_cli(prepare, args)


def prepare(args):
    if args.convert_only:
        convert_dir(args.convert_only, args.out)
        return 0
    for name, files in DOWNLOADS.items():
        folder = os.path.join(args.out or os.path.dirname(os.path.abspath(__file__)), name)
        for split, url in files.items():
            download(url, os.path.join(folder, f"{split}.txt"))  # URLError is an OSError
        convert_dir(folder)
    print(MANUAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
