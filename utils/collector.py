"""Python's cyclic garbage collector kept off the objects a long loop only reads.

A full collection walks every tracked object. Once a checkpoint is loaded that is the model,
the GloVe word table and the featurizer's caches, hundreds of thousands of objects: on the fast
E-NER profile its two or three full passes over CoNLL-03 test cost about as much as the
character CNN. `long_lived()` moves every object alive on entry to the collector's permanent
generation (`gc.freeze`), so the passes walk only what the loop makes, and gives them back on
exit (`gc.unfreeze`). Objects are still freed by reference counting as before; what the
collector finds changes nothing the loop computes.
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator

_depth = 0  # long_lived blocks open: only the outermost gives the objects back


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Within the block, the objects alive on entry are left out of garbage collection passes."""
    global _depth
    gc.freeze()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.unfreeze()
