"""JSON Lines files that survive being killed: one record per line, flushed as written,
and on restart a torn last line is cut off and the complete ones are kept."""
import json
import os


def read_jsonl(path):
    """All records of a JSONL file; a malformed line is an error naming the file and line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {lineno}: malformed JSON ({err.msg})") from None
    return records


def resume_jsonl(path):
    """Records already complete in `path` (for a restarted run), after cutting off a torn
    last line left by a kill mid-write. A missing file has none."""
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    keep = data.rfind(b"\n") + 1
    if keep < len(data):
        with open(path, "r+b") as f:
            f.truncate(keep)
    return read_jsonl(path)


class JsonlWriter:
    """Append records, one flushed line each, so a crash loses at most the line being written."""

    def __init__(self, path, append=True):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.f = open(path, "a" if append else "w", encoding="utf-8")

    def write(self, record):
        self.f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
