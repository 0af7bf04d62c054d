"""The previous fuse (commit 79b64f4) on the simulated informative rows, for a paired comparison
with bench/link_pays.py on the same seeds (CoNLL-03, accuracies 0.3 to 0.9 by 0.1).

    git worktree add /tmp/old 79b64f4 && ln -s "$PWD/bench/runs" /tmp/old/bench/runs
    python bench/fuse_vs_old.py --old_tree /tmp/old --seeds 80-95 --out /tmp/old_80_95.json

79b64f4's bench has no --seeds or --accuracies flags: this sets its module's SEEDS, ACCURACIES and
KINDS (informative alone), runs its `simulated()` and prints the mean fuse F1 of those rows.
"""
import argparse
import json
import os
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old_tree", required=True, help="a checkout of 79b64f4 whose bench/runs is this one's")
    p.add_argument("--seeds", default="80-95", help="FIRST-LAST")
    p.add_argument("--data_dir", default="../shared/data")
    p.add_argument("--out", required=True, help="the rows, as JSON")
    args = p.parse_args()
    if not os.path.isfile(os.path.join(args.old_tree, "bench", "link_pays.py")):
        raise SystemExit(f"error: {args.old_tree}: no bench/link_pays.py (check out 79b64f4 there)")
    sys.path.insert(0, os.path.abspath(args.old_tree))
    import bench.link_pays as old  # the old tree's, found first

    first, _, last = args.seeds.partition("-")
    old.SETS = [s for s in old.SETS if s[0] == "conll03"]
    old.ACCURACIES = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    old.SEEDS = tuple(range(int(first), int(last or first) + 1))
    old.KINDS = ("informative",)
    rows = old.simulated(os.path.abspath(args.data_dir))
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    fuse = [v[b][2] for v in rows.values() for b in ("0.05", "0.1", "0.2")]
    print(f"previous fuse, mean of the informative rows: {100 * sum(fuse) / len(fuse):.2f}")


if __name__ == "__main__":
    main()
