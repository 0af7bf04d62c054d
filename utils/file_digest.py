"""A short content digest of a file, for settings that must notice when a file they depend on
was replaced (a recalibrated error predictor, a retrained second model, the weights a
calibration was fitted on) even if its size and name are the same.

A file is read once per process while it is unchanged (same inode, size and modification
time): a run that checks the weights' digest for its calibration and its error predictor
hashes them once."""
import hashlib
import os

_known: dict[tuple[str, int, int, int], str] = {}  # (real path, inode, size, mtime_ns) -> digest


def file_digest(path: str, chunk: int = 1 << 20) -> str:
    """The first 16 hex digits of the file's SHA-256, read in chunks (weights can be large)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _known:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
        _known[key] = h.hexdigest()[:16]
    return _known[key]


def bytes_digest(data: bytes) -> str:
    """`file_digest` of a file holding `data`."""
    return hashlib.sha256(data).hexdigest()[:16]
