"""A short content digest of a file, for settings that must notice when a file they depend on
was replaced (a recalibrated error predictor, a retrained second model) even if its size and
name are the same."""
import hashlib


def file_digest(path, chunk=1 << 20):
    """The first 16 hex digits of the file's SHA-256, read in chunks (weights can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()[:16]
