"""A static, self-contained HTML page of (linked) predictions.

    python -m inference.reports.page PRED.jsonl OUT.html [--title TITLE]

Each sentence is shown with its entities highlighted, one colour per label. Every shown entity
is exactly one `<mark>`: `data-type` holds its label (the LLM's when it answered; for an
entity the LLM removed, the local label it dropped), the title attribute its uncertainty, and
the class what the LLM did: `kept`, `retyped`, `added` or `removed`, plus `cand` for spans
that were sent to the LLM. Candidates that stay "O" are not shown. No scripts and no external
assets: plain markup and inline CSS, so pages of thousands of sentences open quickly.
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import sys
import tempfile
from collections import Counter
from typing import Iterable, Optional

from utils.cli import run_cli
from utils.errors import DataError
from utils.jsonl import iter_jsonl
from utils.owned_output import HTML_PAGE, refuse_inputs, refuse_unlike

KINDS = {"kept": "kept", "retyped": "type changed by the LLM", "added": "added by the LLM",
         "removed": "removed by the LLM", "cand": "sent to the LLM"}

CSS = """body{font:15px/2 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
.summary{color:#555}.key{margin-right:.6em}
p.s{margin:.1em 0;border-bottom:1px solid #eee}.id{color:#999;font-size:.75em;margin-right:.8em}
mark,.key{padding:.05em .25em;border-radius:.3em;color:inherit}
mark::after{content:attr(data-type);font-size:.65em;font-weight:600;margin-left:.3em;opacity:.7}
.cand{border-bottom:2px dotted #333}.retyped{outline:2px solid #d97706}
.added{outline:2px solid #16a34a}.removed{text-decoration:line-through;opacity:.55}
p.overlap{font-size:.85em;color:#666;margin:0 0 0 2em}"""


def change_kind(ent: dict) -> Optional[str]:
    """What the LLM did to one entity dict, or None when it is not shown (it stays O)."""
    local = ent["pred"]
    final = ent.get("llm_pred", local)
    if local == "O":
        return "added" if final != "O" else None
    if final == "O":
        return "removed"
    return "kept" if final == local else "retyped"


def _shown_label(ent, kind):
    return ent["pred"] if kind == "removed" else ent.get("llm_pred", ent["pred"])


def _token_starts(tokens):
    """Offset of each token in `" ".join(tokens)`."""
    starts, pos = [], 0
    for tok in tokens:
        starts.append(pos)
        pos += len(tok) + 1
    return starts


def _locate(rec, where):
    """The sentence text and (start, end, entity, kind) in characters per shown entity.

    Raw-text records carry "text" and a "char_span" per entity; otherwise the tokens are
    joined by single spaces and the inclusive token spans mapped onto that string.
    """
    shown = [(ent, kind) for ent in rec.get("entity", []) if (kind := change_kind(ent))]
    if "text" in rec and all("char_span" in ent for ent, _ in shown):
        text = rec["text"]
        spans = [(*ent["char_span"], ent, kind) for ent, kind in shown]
    else:
        tokens = rec["tokens"] if "tokens" in rec else rec["sentence"].split()
        text, starts, spans = " ".join(tokens), _token_starts(tokens), []
        for ent, kind in shown:
            s, e = ent["span"]
            if not 0 <= s <= e < len(tokens):
                raise DataError(f"{where}: entity span {s};{e} lies outside the {len(tokens)} tokens")
            spans.append((starts[s], starts[e] + len(tokens[e]), ent, kind))
    for start, end, ent, _ in spans:
        if not 0 <= start < end <= len(text):
            raise DataError(f"{where}: char span {start}:{end} lies outside the {len(text)} characters")
    return text, spans


def _mark(surface, ent, kind, colour):
    label = _shown_label(ent, kind)
    tip = [label]
    if "uncertainty" in ent:
        u = ent["uncertainty"]
        tip.append(f"uncertainty {u:.3f}" if isinstance(u, (int, float)) else f"uncertainty {u}")
    if kind != "kept":
        tip.append(f"local {ent['pred']} → LLM {ent['llm_pred']}")
    classes = f"{kind} t{colour}" + (" cand" if ent.get("candidate") else "")
    return (f'<mark class="{classes}" data-type="{html.escape(label)}" title="{html.escape(", ".join(tip))}">'
            f"{html.escape(surface)}</mark>")


def _render(rec, i, colours):
    """One sentence as HTML, and the change kinds of its shown entities.

    Marks cannot cross, so an entity overlapping one already placed goes on a line below.
    """
    text, spans = _locate(rec, f"record {i}")
    parts, overlapping, pos = [], [], 0
    for start, end, ent, kind in sorted(spans, key=lambda x: (x[0], -x[1])):
        colour = colours.setdefault(_shown_label(ent, kind), len(colours))
        mark = _mark(text[start:end], ent, kind, colour)
        if start < pos:
            overlapping.append(mark)
            continue
        parts += [html.escape(text[pos:start]), mark]
        pos = end
    parts.append(html.escape(text[pos:]))
    rid = html.escape(str(rec.get("id", i)))
    out = f'<p class="s" id="s{rid}"><span class="id">{rid}</span>{"".join(parts)}</p>'
    if overlapping:
        out += f'\n<p class="overlap">overlapping: {" ".join(overlapping)}</p>'
    return out, [kind for *_, kind in spans]


def _head(title, colours, kinds, n_sentences):
    css = CSS + "".join(f"\n.t{i}{{background:hsl({i * 137.508 % 360:.0f},75%,82%)}}" for i in colours.values())
    labels = "".join(f'<span class="key t{colours[lab]}">{html.escape(lab)}</span>' for lab in sorted(colours))
    changes = "".join(f'<span class="key {k}">{v}</span>' for k, v in KINDS.items())
    counts = ", ".join(f"{kinds[k]} {v}" for k, v in KINDS.items() if k in kinds)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            f"<style>\n{css}\n</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            f'<p class="summary">{n_sentences} sentences; entities: {counts or "none"}</p>\n'
            f'<p class="legend">{labels}</p>\n<p class="legend">{changes}</p>\n')


def write_html(records: Iterable[dict], path: str, title: str = "LinkNER predictions") -> Counter[str]:
    """Write the page for `records` (local-inference or linked JSONL dicts) to `path`, one
    record at a time: the body goes to a temporary file until the head (which counts them) is known.

    Returns a Counter of the shown entities' change kinds.
    """
    colours: dict = {}
    kinds: Counter[str] = Counter()
    n = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=os.path.dirname(os.path.abspath(path))) as body:
        for i, rec in enumerate(records):
            try:
                sentence, rec_kinds = _render(rec, i, colours)
            except DataError:
                raise
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise DataError(f"record {i}: malformed record ({type(err).__name__}: {err})") from None
            body.write(("\n" if n else "") + sentence)
            kinds.update(rec_kinds)
            n += 1
        body.seek(0)
        with open(path, "w", encoding="utf-8") as f:
            f.write(_head(title, colours, kinds, n))
            shutil.copyfileobj(body, f)
            f.write("\n</body></html>\n")
    return kinds


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="local-inference or linked JSONL")
    parser.add_argument("output", help="HTML file to write")
    parser.add_argument("--title", default="LinkNER predictions")
    args = parser.parse_args(argv)
    return run_cli(draw, args.input, args.output, args.title)


def draw(source: str, target: str, title: str) -> int:
    refuse_inputs(target, {"input": source})
    refuse_unlike(target, *HTML_PAGE)  # a data split, weights, a config or a cache is never replaced
    records = iter_jsonl(source)  # its errors name the file; the page is written once all are read
    try:
        kinds = write_html(records, target, title)
    except DataError as err:  # a malformed record is named by its number; a malformed line names the file already
        raise DataError(str(err) if str(err).startswith(source) else f"{source}: {err}") from None
    print(f"wrote {target}: {sum(kinds.values())} entities shown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
