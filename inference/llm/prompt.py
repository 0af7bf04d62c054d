"""The paper's classification prompt, its label descriptions, and k-shot examples.

One prompt per uncertain span, as in LinkNER's `run_llm.py`:

    {label descriptions}{examples}{sentence}
    Select the entity type of {entity} in this context, and only need to output the entity type: {options}
    Answer:

with the options one per line (`"\\n Location\\n Person ... \\n Non-entity"`). The descriptions
of CoNLL-2003, WNUT-17, OntoNotes 5 and Twitter are the authors' (`dataprocess/context.py` in
github.com/zhzhengit/LinkNER) with the runs of indentation that their backslash line
continuations left inside the strings collapsed to single spaces; WNUT-16's (in the paper's data
list, not in context.py) is written for this repository in their style. Other label sets get
descriptions built from their labels. Examples use the authors' format
(`extract2select.py`): `Example:\\n<Context>:{sentence}\\n Select the entity type of {entity}
in this context, and only need to output the entity type.\\nAnswer:{name}\\n`.
"""

from __future__ import annotations

import heapq
import random
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from dataloaders.readers import read_dataset
from utils.errors import ConfigError, DataError

NON_ENTITY = "Non-entity"


@dataclass(frozen=True)
class LabelSpec:
    """What the LLM chooses from: `options` are `(tag, name)` pairs, tag as in the data."""

    description: str
    options: tuple

    @property
    def tags(self) -> list[str]:
        return [tag for tag, _ in self.options]

    def name_of(self, tag: str) -> str:
        return dict(self.options)[tag]

    def option_names(self) -> list[str]:
        """The options as the prompt lists them, `Non-entity` last."""
        return [name for _, name in self.options] + [NON_ENTITY]

    def option_list(self) -> str:
        return "".join(f"\n {name}" for _, name in self.options) + f"\n {NON_ENTITY}"


CONLL03 = (
    "Here is the entity class information: Person: This category includes names of persons, such as "
    "individual people or groups of people with personal names. Organization: The organization category "
    "consists of names of companies, institutions, or any other group or entity formed for a specific "
    "purpose. Location: The location category represents names of geographical places or landmarks, such "
    "as cities, countries, rivers, or mountains. Miscellaneous: The miscellaneous category encompasses "
    "entities that do not fall into the above three categories. This includes adjectives, like Italian, "
    "and events, like 1000 Lakes Rally, making it a very diverse category. Examples of entity "
    "classification are given below:"
)
WNUT17 = (
    "A dataset focus on unusual, previous-unseen entities in example data, and is collected from social "
    "media. In the test example, we included Twitter as a source, but additional comments were mined from "
    "Reddit, YouTube and StackExchange. Here is all entity class information: Person: Names of people "
    "(e.g. Virginia Wade). Don’t mark people that don’t have their own name. Include punctuation in the "
    "middle of names. Fictional people can be included, as long as they’re referred to by name (e.g. "
    "Harry Potter). Location: Names that are locations (e.g. France). Don’t mark locations that don’t have "
    "their own name. Include punctuation in the middle of names. Fictional locations can be included, as "
    "long as they’re referred to by name (e.g. Hogwarts). Corporation: Names of corporations (e.g. "
    "Google). Don’t mark locations that don’t have their own name. Include punctuation in the middle of "
    "names. Product: Name of products (e.g. iPhone). Don’t mark products that don’t have their own name. "
    "Include punctuation in the middle of names. Fictional products can be included, as long as they’re "
    "referred to by name (e.g. Everlasting Gobstopper). It’s got to be something you can touch, and it’s "
    "got to be the official name. Creative-work: Names of creative works (e.g. Bohemian Rhapsody). Include "
    "punctuation in the middle of names. The work should be created by a human, and referred to by its "
    "specific name. Group: Names of groups (e.g. Nirvana, San Diego Padres). Don’t mark groups that don’t "
    "have a specific, unique name, or companies (which should be marked corporation)."
)
ONTONOTES5 = (
    "Here is the entity class information: PERSON: People, including fictional ORGANIZATION: Companies, "
    "agencies, institutions, etc. GPE: Countries, cities, states DATE: Absolute or relative dates or "
    "periods NORP: Nationalities or religious or political groups CARDINAL: Numerals that do not fall "
    "under another type TIME: Times smaller than a day LOC: Non-GPE locations, mountain ranges, bodies of "
    "water FACILITY:Buildings, airports, highways, bridges, etc. PRODUCT: Vehicles, weapons, foods, etc. "
    "(Not services) WORK_OF_ART: Titles of books, songs, etc. MONEY: Monetary values, including unit "
    "ORDINAL: “first”, “second”, etc. QUANTITY: Measurements, as of weight or distance, etc. EVENT: Named "
    "hurricanes, battles, wars, sports events, etc. PERCENT: Percentage (including “%”), etc. LAW: Named "
    "documents made into laws, etc. LANGUAGE: Any named language, etc. "
)
TWITTER = (
    "Here is the entity class information: For polysemous entities, our guidelines instructed annotators "
    "to assign the entity class that corresponds to the correct entity class in the given context. For "
    "example, in “We’re driving to Manchester”, Manchester is a Location, but in “Manchester are in the "
    "final tonight”, it is a sports club – an Organization. Special attention is given to username "
    "mentions. Where other corpora have blocked these out or classified them universally as Person, our "
    "approach is to treat these as named entities of any potential class. For example, the account "
    "belonging to the \"Manchester United football club\" would be labeled as an Organization. Other: The "
    "Other category encompasses entities that do not fall into the above three categories. This includes "
    "adjectives, like Italian, and events, like 1000 Lakes Rally, making it a very diverse category. "
    "Examples of entity classification are given below:"
)
# WNUT-16 is in the paper's data list but not in the authors' context.py: this description is
# written for this repository in the style of WNUT17 above, after the shared task's ten types.
WNUT16 = (
    "A dataset of tweets, with noisy, informal text: misspellings, abbreviations, hashtags and @-mentions. "
    "Here is all entity class information: Person: Names of people (e.g. Justin Bieber, Obama), real or "
    "fictional, including @-mentions of a person's account. Don’t mark people that don’t have their own "
    "name. Geo-location: Names of geographical places (e.g. Texas, London, Europe): countries, states, "
    "cities, regions, rivers, mountains. Company: Names of companies and brands as businesses (e.g. "
    "Google, Starbucks, Apple). Facility: Names of buildings, venues and other man-made places (e.g. "
    "Madison Square Garden, Disney World, Heathrow Airport), including shops, restaurants and schools "
    "referred to as places. Product: Names of products (e.g. iPhone, Xbox 360) that you can buy or use; "
    "it’s got to be the official name. Music-artist: Names of musicians, bands and singers when named as "
    "music acts (e.g. Coldplay, Lady Gaga). Movie: Titles of films (e.g. The Dark Knight). Sports-team: "
    "Names of sports teams and clubs (e.g. Lakers, Manchester United). TV-show: Titles of television "
    "shows and series (e.g. Glee, American Idol). Other: Named entities that do not fall into the above "
    "categories, such as events, holidays, songs, books, albums, games and organisations that are not "
    "companies (e.g. Christmas, Super Bowl, the Grammys). Examples of entity classification are given "
    "below:"
)

# The paper's label sets: description and (tag, name) options in the paper's order.
DATASETS = {
    "conll03": LabelSpec(CONLL03, (("LOC", "Location"), ("PER", "Person"), ("ORG", "Organization"),
                                   ("MISC", "Miscellaneous"))),
    "wnut17": LabelSpec(WNUT17, (("location", "Location"), ("group", "Group"), ("corporation", "Corporation"),
                                 ("person", "Person"), ("creative_work", "Creative-work"),
                                 ("product", "Product"))),
    "wnut16": LabelSpec(WNUT16, (("person", "Person"), ("geo-loc", "Geo-location"), ("company", "Company"),
                                 ("facility", "Facility"), ("product", "Product"), ("musicartist", "Music-artist"),
                                 ("movie", "Movie"), ("sportsteam", "Sports-team"), ("tvshow", "TV-show"),
                                 ("other", "Other"))),
    "ontonotes5": LabelSpec(ONTONOTES5, (
        ("PERSON", "Person"), ("ORG", "Organization"), ("GPE", "GPE"), ("DATE", "Date"), ("NORP", "NORP"),
        ("CARDINAL", "Cardinal"), ("TIME", "Time"), ("LOC", "Location"), ("FAC", "Facility"),
        ("PRODUCT", "Product"), ("WORK_OF_ART", "WORK_OF_ART"), ("MONEY", "Money"), ("ORDINAL", "Ordinal"),
        ("QUANTITY", "Quantity"), ("EVENT", "Event"), ("PERCENT", "Percent"), ("LAW", "Law"),
        ("LANGUAGE", "Language"))),
    "twitter": LabelSpec(TWITTER, (("LOC", "Location"), ("PER", "Person"), ("ORG", "Organization"),
                                   ("OTHER", "Other"))),
}

# Readable names for tags that are abbreviations; other tags are spelled out from the tag itself.
TAG_NAMES = {"PER": "Person", "LOC": "Location", "ORG": "Organization", "MISC": "Miscellaneous",
             "FAC": "Facility", "GPE": "GPE", "NORP": "NORP"}


def label_key(text: str) -> str:
    """Spelling-insensitive form of a label: `Creative-work`, `creative_work` -> `creativework`."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def dataset_spec(dataname: str, known_labels: Optional[Iterable[str]] = None) -> LabelSpec:
    """The paper's spec for `dataname`, with tags spelled as in `known_labels` where they differ."""
    spec = DATASETS.get(dataname.lower())
    if spec is None:
        raise ConfigError(f"unknown dataname {dataname!r} (known: {', '.join(DATASETS)})")
    if not known_labels:
        return spec
    spelled = {label_key(label): label for label in known_labels if label != "O"}
    options = tuple((spelled.get(label_key(tag), tag), name) for tag, name in spec.options)
    missing = sorted(set(spelled.values()) - {tag for tag, _ in options})
    if missing:
        warnings.warn(f"labels {', '.join(missing)} are not in the {dataname} label set; the LLM cannot pick them")
    return LabelSpec(spec.description, options)


def tag_name(tag: str) -> str:
    return TAG_NAMES.get(tag.upper()) or re.sub(r"[_-]+", " ", tag).strip().capitalize()


def describe(options: Sequence[tuple[str, str]], descriptions: Optional[dict[str, str]] = None) -> str:
    """A description block in the paper's style; `descriptions` ({tag: text}) replaces the one-liners."""
    descriptions = descriptions or {}
    unknown = set(descriptions) - {tag for tag, _ in options}
    if unknown:
        raise ConfigError(f"descriptions for unknown labels: {', '.join(sorted(unknown))}")
    lines = [f"{name}: {descriptions.get(tag, f'names of {name.lower()} entities.')}" for tag, name in options]
    return "Here is the entity class information: " + " ".join(lines) + "\n"


def generic_spec(labels: Sequence[str], descriptions: Optional[dict[str, str]] = None) -> LabelSpec:
    """A spec for any label list, option names spelled out from the tags."""
    options = tuple((tag, tag_name(tag)) for tag in labels if tag != "O")
    if not options:
        raise ConfigError("the label set has no entity labels")
    keys = [label_key(name) for _, name in options]
    if len(set(keys)) < len(keys):
        raise ConfigError(f"labels {', '.join(labels)} give clashing option names")
    return LabelSpec(describe(options, descriptions), options)


def with_descriptions(spec: LabelSpec, descriptions: dict[str, str]) -> LabelSpec:
    """`spec` with its description block rebuilt from `descriptions` ({tag: text})."""
    return LabelSpec(describe(spec.options, descriptions), spec.options)


@dataclass(frozen=True)
class Example:
    sentence: str
    entity: str
    tag: str


class ShotSelector:
    """Picks k labelled examples per label for a span, the same ones whatever the run order.

    `random` draws them with a generator seeded by (seed, sentence, entity), so a restarted or
    re-ordered run builds the same prompt and hits the cache; `similar` takes the examples
    whose entity matches the span's surface form, then those whose sentence shares the most words.
    """

    def __init__(self, examples, k, strategy="random", *, seed):
        if strategy not in ("random", "similar"):
            raise ConfigError(f"unknown shot strategy {strategy!r} (random, similar)")
        self.k, self.strategy, self.seed = k, strategy, seed
        self.by_tag = defaultdict(list)
        for ex in examples:
            self.by_tag[ex.tag].append(ex)
        self._words = {ex.sentence: set(ex.sentence.lower().split()) for ex in examples}

    @classmethod
    def from_file(cls, path: str, spec: LabelSpec, k: int, strategy: str = "random", *,
                  seed: int) -> ShotSelector:
        """Examples from a labelled spanner JSON or column file, restricted to `spec`'s tags."""
        sentences = read_dataset(path)
        labelled = [(s.words, s.entities) for s in sentences if s.entities is not None]
        if len(labelled) < len(sentences):
            raise DataError(f"{path}: shot examples need a labelled file (spanner JSON or CoNLL columns)")
        examples = [Example(" ".join(words), " ".join(words[a:b + 1]), tag)
                    for words, entities in labelled for a, b, tag in entities if tag in spec.tags]
        absent = [tag for tag in spec.tags if not any(ex.tag == tag for ex in examples)]
        if absent:
            warnings.warn(f"{path}: no examples of {', '.join(absent)}; prompts will have none of them")
        return cls(examples, k, strategy, seed=seed)

    def select(self, sentence: str, entity: str, tags: Sequence[str]) -> list[Example]:
        """k rounds of one example per tag (tags in a seeded order), as the paper draws them."""
        rng = random.Random(f"{self.seed}\t{sentence}\t{entity}")
        ranked = {tag: self._rank(self.by_tag[tag], sentence, entity, rng) for tag in tags}
        chosen = []
        for round_ in range(self.k):
            for tag in rng.sample(list(tags), len(tags)):
                if round_ < len(ranked[tag]):
                    chosen.append(ranked[tag][round_])
        return chosen

    def _rank(self, pool, sentence, entity, rng):
        if self.strategy == "random":
            return rng.sample(pool, min(self.k, len(pool)))
        words = set(sentence.lower().split())
        surface = entity.lower()

        def score(ex: Example) -> tuple[float, float]:  # same surface first, then Jaccard overlap of the sentences' words
            other = self._words[ex.sentence]
            shared = len(words & other)
            return (ex.entity.lower() == surface) + shared / (len(words) + len(other) - shared or 1), rng.random()

        return heapq.nlargest(self.k, pool, key=score)


class PromptBuilder:
    """Builds the paper's prompt for one span of a local-inference record."""

    def __init__(self, spec, shots=None):
        self.spec, self.shots = spec, shots

    def build(self, record: dict, span: dict) -> str:
        sentence = record.get("sentence") or " ".join(record["tokens"])
        entity = span["entity"]
        return (f"{self.spec.description}{self._examples(sentence, entity)}{sentence}\n"
                f"Select the entity type of {entity} in this context, and only need to output the entity type: "
                f"{self.spec.option_list()}\nAnswer:")

    def _examples(self, sentence, entity):
        if self.shots is None:
            return ""
        return "".join(
            f"Example:\n<Context>:{ex.sentence}\n Select the entity type of {ex.entity} in this context, "
            f"and only need to output the entity type.\nAnswer:{self.spec.name_of(ex.tag)}\n"
            for ex in self.shots.select(sentence, entity, self.spec.tags))
