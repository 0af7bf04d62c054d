"""Freed heap memory given back to the operating system between chunks of work (glibc's
`malloc_trim`): tensors of many shapes otherwise fragment the heap, and a long run's resident
memory creeps up with its input (bench/scale.py: 697 MB at 1x, 853 MB at 30x without it)."""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional


def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
LARGE = 1 << 22  # bytes: an allocation this large is mapped on its own and unmapped when freed


def bound_heap() -> bool:
    """Map large allocations (tensors) on their own, so that freeing one returns it at once, and
    trim the heap's top from that size; False where the C library cannot."""
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    return bool(_LIBC.mallopt(M_MMAP_THRESHOLD, LARGE)) and bool(_LIBC.mallopt(M_TRIM_THRESHOLD, LARGE))


def trim_heap() -> bool:
    """Return the heap's free pages to the system; False where the C library has no malloc_trim."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True
