"""Rule-based word tokenizer for raw text, keeping each word's character offsets.

Rules, tried in this order at each position (whitespace of any kind only separates):
1. Dotted abbreviations stay whole: "U.S.", "e.g.", "U.K.".
2. A word is a run of letters, digits and combining marks, joined inside by one of
   - `-` `.` `'` `’` between word characters: "e-mail", "3.5", "1996-08-22", "O'Neil",
     "example.com";
   - `,` `:` `/` between digits: "1,000", "10:30", "3/4".
   A joiner at the edge of a word is split off, so "Paris," gives "Paris" and ",".
3. "@user" and "#tag" stay whole, as tweets write them.
4. Any other character is a token of its own, with its combining marks: punctuation,
   symbols, emoji (so "❤️", a heart and a variation selector, is one token).
Then English clitics `'s 're 've 'll 'd 'm n't` are split off a word the way CoNLL-2003 and
the Penn Treebank tokenise them, so "Germany's" yields the entity word "Germany" and
"don't" gives "do", "n't"; "O'Neil" is not a clitic and stays whole.

Letters and digits are Unicode (`\\w`), so "São Paulo", "Zürich" and "Ærø" are plain words.
"""

from __future__ import annotations

import re
import unicodedata

# \w misses combining marks, which would cut "é" written as e + U+0301, or Devanagari vowel signs
_MARKS = "".join(re.escape(chr(c)) for c in range(0x300, 0x10000) if unicodedata.category(chr(c))[0] == "M")
_W = rf"[\w{_MARKS}]"

_TOKEN = re.compile(rf"""
    (?:[^\W\d_]\.){{2,}}(?!{_W})                # dotted abbreviation
  | {_W}+(?:[-.'’]{_W}+|(?<=\d)[,:/]\d+)*       # word with inner joiners
  | [@#]{_W}+                                   # mention or hashtag
  | \S[{_MARKS}]*                               # anything else, alone with its marks
""", re.VERBOSE)

_CLITIC = re.compile(r"(?:n['’]t|['’](?:s|re|ve|ll|d|m))$", re.IGNORECASE)


def tokenize(line: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split `line` into words; returns `(words, char_spans)` with `line[s:e] == word`."""
    words, spans = [], []
    for m in _TOKEN.finditer(line):
        start, end = m.span()
        clitic = _CLITIC.search(m.group())
        cuts = [start, start + clitic.start(), end] if clitic and clitic.start() > 0 else [start, end]
        for s, e in zip(cuts, cuts[1:]):
            words.append(line[s:e])
            spans.append((s, e))
    return words, spans
