import json
import time
from collections import Counter
from html.parser import HTMLParser

import pytest

from utils.errors import DataError
from inference.reports.page import change_kind, main, write_html

SCRIPT = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Collects every <mark> (attributes and text) and each sentence's visible text."""

    def __init__(self, text):
        super().__init__()
        self.marks, self.sentences, self.tags = [], [], Counter()
        self.in_mark = self.in_sentence = self.in_id = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] += 1
        if tag == "mark":
            self.marks.append({**attrs, "text": ""})
            self.in_mark = True
        elif tag == "p" and attrs.get("class") == "s":
            self.sentences.append("")
            self.in_sentence = True
        elif tag == "span" and attrs.get("class") == "id":
            self.in_id = True

    def handle_endtag(self, tag):
        if tag == "mark":
            self.in_mark = False
        elif tag == "p":
            self.in_sentence = False
        elif tag == "span":
            self.in_id = False

    def handle_data(self, data):
        if self.in_mark:
            self.marks[-1]["text"] += data
        if self.in_sentence and not self.in_id:
            self.sentences[-1] += data


def ent(span, pred, llm=None, candidate=False, u=0.1, **extra):
    d = {"span": list(span), "pred": pred, "candidate": candidate, "uncertainty": u, **extra}
    if llm is not None:
        d["llm_pred"] = llm
    return d


LOCAL = {"id": 0, "tokens": ["EU", "rejects", "German", "call"],
         "entity": [ent((0, 0), "ORG", u=0.07), ent((2, 2), "O", candidate=True, u=0.45)]}
LINKED = {"id": 1, "tokens": ["Anna", "Berg", "visited", SCRIPT, "in", "Oslo", "&", "Bergen"],
          "entity": [ent((0, 1), "PER", "PER"),
                     ent((2, 2), "ORG", "O", candidate=True),                # removed
                     ent((3, 3), "O", "MISC", candidate=True, u=0.61),       # added
                     ent((5, 5), "LOC", "ORG", candidate=True),              # retyped
                     ent((7, 7), "O", "O", candidate=True)]}                 # stays O: not shown
RAW = {"id": 2, "text": "  Zürich <b>won</b> \"Ærø\" cup ", "tokens": ["Zürich", "<b>won</b>", '"', "Ærø", '"', "cup"],
       "entity": [ent((0, 0), "LOC", "LOC", char_span=[2, 8]), ent((3, 3), "O", "LOC", True, char_span=[21, 24])]}


def render(tmp_path, records, **kw):
    path = tmp_path / "report.html"
    kinds = write_html(records, str(path), **kw)
    return path.read_text(encoding="utf-8"), kinds


def test_change_kinds():
    assert change_kind({"pred": "PER"}) == "kept"
    assert change_kind({"pred": "O", "candidate": True}) is None
    assert change_kind({"pred": "PER", "llm_pred": "PER"}) == "kept"
    assert change_kind({"pred": "PER", "llm_pred": "ORG"}) == "retyped"
    assert change_kind({"pred": "PER", "llm_pred": "O"}) == "removed"
    assert change_kind({"pred": "O", "llm_pred": "LOC", "candidate": True}) == "added"
    assert change_kind({"pred": "O", "llm_pred": "O", "candidate": True}) is None


def test_one_mark_per_shown_entity_with_type_and_change(tmp_path):
    text, kinds = render(tmp_path, [LOCAL, LINKED])
    page = Page(text)
    got = [(m["text"], m["data-type"], m["class"].split()[0], "cand" in m["class"].split()) for m in page.marks]
    assert got == [("EU", "ORG", "kept", False),
                   ("Anna Berg", "PER", "kept", False),
                   ("visited", "ORG", "removed", True),
                   (SCRIPT, "MISC", "added", True),
                   ("Oslo", "ORG", "retyped", True)]
    assert kinds == Counter(kept=2, removed=1, added=1, retyped=1)
    assert page.sentences == [" ".join(LOCAL["tokens"]), " ".join(LINKED["tokens"])]
    assert "uncertainty 0.070" in page.marks[0]["title"]
    assert "local LOC → LLM ORG" in page.marks[4]["title"]


def test_same_label_same_colour_class(tmp_path):
    marks = Page(render(tmp_path, [LOCAL, LINKED])[0]).marks
    colour = {m["data-type"]: next(c for c in m["class"].split() if c.startswith("t")) for m in marks}
    assert all(colour[m["data-type"]] in m["class"].split() for m in marks)
    assert sorted(colour) == ["MISC", "ORG", "PER"]
    assert len(set(colour.values())) == 3


def test_text_is_escaped_and_page_is_self_contained(tmp_path):
    text, _ = render(tmp_path, [LINKED, RAW], title="<i>run</i>")
    page = Page(text)
    assert page.tags["script"] == 0 and page.tags["b"] == 0 and page.tags["i"] == 0
    assert SCRIPT not in text and "&lt;script&gt;" in text
    for asset in ("<link", "src=", "url(", "@import", "http"):
        assert asset not in text


def test_raw_text_uses_char_spans(tmp_path):
    page = Page(render(tmp_path, [RAW])[0])
    assert [(m["text"], m["data-type"], m["class"].split()[0]) for m in page.marks] == \
        [("Zürich", "LOC", "kept"), ("Ærø", "LOC", "added")]
    assert page.sentences == [RAW["text"]]


def test_overlapping_entities_each_get_one_mark(tmp_path):
    rec = {"id": 7, "tokens": ["New", "York", "Times"],
           "entity": [ent((0, 2), "ORG", "ORG"), ent((0, 1), "O", "LOC", True)]}
    page = Page(render(tmp_path, [rec])[0])
    assert sorted((m["text"], m["data-type"]) for m in page.marks) == [("New York", "LOC"), ("New York Times", "ORG")]
    assert page.sentences == ["New York Times"]


def test_bad_records_name_the_record(tmp_path):
    bad = {"id": 3, "tokens": ["a", "b"], "entity": [ent((1, 2), "PER")]}
    with pytest.raises(DataError, match=r"record 1: entity span 1;2 lies outside the 2 tokens"):
        write_html([LOCAL, bad], str(tmp_path / "x.html"))
    with pytest.raises(DataError, match=r"record 0: malformed record \(KeyError"):
        write_html([{"tokens": ["a"], "entity": [{"span": [0, 0]}]}], str(tmp_path / "x.html"))


def test_cli(tmp_path, capsys):
    src, out = tmp_path / "pred.jsonl", tmp_path / "pred.html"
    src.write_text("\n".join(json.dumps(r) for r in [LOCAL, LINKED]) + "\n", encoding="utf-8")
    assert main([str(src), str(out)]) == 0
    assert len(Page(out.read_text(encoding="utf-8")).marks) == 5
    src.write_text(json.dumps(LOCAL) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=f"error: {src}: line 2: malformed JSON"):
        main([str(src), str(out)])


def test_thousands_of_sentences_fast_and_linear(tmp_path):
    def records(n):
        return [{**LINKED, "id": i} for i in range(n)]

    start = time.perf_counter()
    big, _ = render(tmp_path, records(3000))
    assert time.perf_counter() - start < 2.0
    small, _ = render(tmp_path, records(300))
    assert 9 * len(small) < len(big) < 10 * len(small)
    assert len(Page(big).marks) == 3000 * 4


def test_the_page_may_not_overwrite_its_input(tmp_path):
    src = tmp_path / "pred.jsonl"
    src.write_text(json.dumps(LOCAL) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=f"^error: {src}: is also the input"):
        main([str(src), str(src)])
    assert src.read_text(encoding="utf-8") == json.dumps(LOCAL) + "\n"
