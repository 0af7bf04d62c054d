"""What a file that is not UTF-8 is, for the one-line error that says how to convert it:
a UTF-16 or UTF-32 file (its byte-order mark, or NUL bytes between ASCII characters) needs
`iconv -f utf-16`, not the `-f latin1` that fits most other 8-bit text."""
import codecs
from typing import Optional

BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def guess_encoding(head: bytes) -> str:
    """'UTF-32', 'UTF-16' or 'latin1' (any other 8-bit text), from a file's first bytes."""
    for bom, name in BOMS:  # UTF-32 LE's mark begins with UTF-16 LE's: it is tried first
        if head.startswith(bom):
            return name
    pairs = head[:len(head) // 2 * 2]
    if pairs and max(pairs[0::2].count(0), pairs[1::2].count(0)) > len(pairs) // 4:
        return "UTF-16"  # ASCII in UTF-16 without a mark: every other byte is NUL
    return "latin1"


def nul_problem(where: str, head: bytes) -> Optional[str]:
    """The message for a file whose first bytes hold NUL bytes (which UTF-8 decodes, but no
    text has: UTF-16 without a byte-order mark, or not text at all), else None."""
    if b"\x00" not in head:
        return None
    encoding = guess_encoding(head)
    if encoding == "latin1":
        return f"{where}: holds NUL bytes: not a text file"
    return f"{where}: not UTF-8 text: {encoding} (from its first bytes); convert it, e.g. iconv -f {encoding.lower()} -t utf-8"


def not_utf8(where: str, err: UnicodeDecodeError, head: bytes) -> str:
    """The message for text at `where` that failed to decode as UTF-8 with `err`."""
    encoding = guess_encoding(head)
    if encoding == "latin1":
        return f"{where}: not UTF-8 text ({err.reason} at byte {err.start}); convert it, e.g. iconv -f latin1 -t utf-8"
    return (f"{where}: not UTF-8 text: {encoding} (from its first bytes); convert it, e.g. "
            f"iconv -f {encoding.lower()} -t utf-8")
