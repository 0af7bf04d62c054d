"""Secrets kept out of every message, metric and record: the API key, and the userinfo of a
server URL (`http://user:PASSWORD@host/v1`, `http://TOKEN@host/v1`).

    shown = redact_url(base_url)                 # http://***@host/v1, for messages and metrics
    text = redact(text, url_secrets(base_url) + [api_key])
"""

from __future__ import annotations

from typing import Iterable, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def _userinfo(url: str) -> str:
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[0]


def redact_url(url: Optional[str]) -> Optional[str]:
    """`url` with its userinfo (user name and password) replaced by ***; as it is without one."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: shown as it is, less anything before an @
        return f"{MASK}@{url.rpartition('@')[2]}" if "@" in url else url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc.rpartition('@')[2]}"))


def url_secrets(url: Optional[str]) -> list[str]:
    """What of `url` must never be shown: its userinfo whole, and its password (else its user
    name, a token), as written and percent-decoded."""
    try:
        userinfo = _userinfo(url) if url else ""
    except ValueError:
        userinfo = url.rpartition("@")[0] if url and "@" in url else ""
    if not userinfo:
        return []
    user, colon, password = userinfo.partition(":")
    secret = password if colon else user
    return [s for s in dict.fromkeys([userinfo, unquote(userinfo), secret, unquote(secret)]) if s]


def redact(text: str, secrets: Iterable[Optional[str]]) -> str:
    """`text` with every secret (longest first, so none is left half shown) replaced by ***."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_argv(argv: list[str], flags: tuple[str, ...] = ("--base_url",)) -> list[str]:
    """`argv` with the URL after each of `flags` (`--base_url URL` or `--base_url=URL`) shown by
    `redact_url`: a command printed for a rerun never shows a password."""
    out = list(argv)
    for i, arg in enumerate(out):
        flag, eq, value = arg.partition("=")
        if eq and flag in flags:
            out[i] = f"{flag}={redact_url(value)}"
        elif i and out[i - 1] in flags:
            out[i] = redact_url(arg) or arg
    return out
