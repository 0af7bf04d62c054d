"""Generate the small synthetic NER sample in data/sample/ (CoNLL columns, BIO tags).

    python data/make_sample.py [--out data/sample] [--seed 1]

Short news-style sentences are filled from templates with names written for this sample
(PER, ORG, LOC, MISC); no text comes from CoNLL-2003 or any other dataset. Train draws from
the first three quarters of each name list only, so dev and test contain unseen names.
The output is a pure function of the seed: rerunning rewrites identical files.
"""
import argparse
import os
import random

FIRST = ["Anna", "Marco", "Lena", "Tomás", "Priya", "Kenji", "Olga", "Samuel", "Fatima", "Jonas",
         "Elena", "David", "Amara", "Lucas", "Ingrid", "Rafael", "Mei", "Omar", "Clara", "Viktor",
         "Nadia", "Hugo", "Sofia", "Arjun", "Grace", "Emil", "Zoë", "Kwame", "Leila", "Pavel"]
LAST = ["Lindqvist", "Okafor", "Moretti", "Tanaka", "Petrova", "Haddad", "Kowalski", "Brennan",
        "Sato", "Novak", "Fischer", "Mendes", "Larsen", "Duarte", "Hale", "Varga", "Nakamura",
        "Osei", "Quinn", "Rossi", "Berg", "Castillo", "Ivanov", "Mbeki", "Sørensen", "Ortega",
        "Keller", "Adeyemi", "Walsh", "Horvat"]
ORG = ["Northwind Logistics", "Bluepeak Energy", "Harbor Mutual", "Corvex Systems", "Meridian Bank",
       "Silverline Airways", "Kestrel Motors", "Valdane Pharma", "Orbis Telecom", "Greystone Capital",
       "Alder Foods", "Lumen Analytics", "Redfield United", "Port Ellis Rovers", "Green Future Party",
       "National Farmers Council", "Tidewater Shipping", "Copperhill Mining", "Nordvik Steel",
       "Sunmoor Insurance", "Brightwater Media", "Calder Rail", "Ironbridge Athletic", "Westmark Group",
       "Falcon Ridge Bank", "Polaris Chemicals", "Highgate Rangers", "Evergreen Textiles"]
LOC = ["Lisbon", "Nairobi", "Oslo", "Toronto", "Osaka", "Lima", "Krakow", "Cairo", "São Paulo",
       "Zürich", "Cape Town", "Buenos Aires", "Kenya", "Norway", "Peru", "Vietnam", "Chile",
       "Portugal", "Rio de Janeiro", "Malmö", "Accra", "Hanoi", "Valencia", "Manila", "Ghana",
       "Finland", "Quito", "Tbilisi", "Adelaide", "Canada"]
NATIONALITY = ["Kenyan", "Norwegian", "Peruvian", "Japanese", "Brazilian", "Polish", "Canadian",
               "Egyptian", "Chilean", "Portuguese", "Swiss", "Ghanaian", "Vietnamese", "Finnish",
               "Argentine", "Georgian"]
EVENT = ["Northern Cup", "Summer Games", "World Trade Forum", "Harbour Marathon", "Pacific Rally",
         "Autumn Film Festival", "Continental Chess Open", "Green Energy Summit", "Coastal Regatta",
         "Spring Book Fair", "Mountain Cycling Tour", "Global Health Week"]
LANGUAGE = ["Swahili", "Portuguese", "Finnish", "Spanish", "Japanese", "Polish"]
DAY = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTH = ["January", "March", "April", "June", "August", "October", "December"]

# {slot} is filled from the lists above; PER, ORG, LOC and the MISC slots are entities
TEMPLATES = [
    "{PER} , chief executive of {ORG} , said on {DAY} that the company would open an office in {LOC} .",
    "Shares in {ORG} rose {NUM} percent in {LOC} after the {NAT} government approved the merger .",
    "{NAT} striker {PER} scored twice as {ORG} beat {ORG} {SCORE} in {LOC} .",
    "Police in {LOC} said {NUM} people were hurt when a bus overturned on {DAY} .",
    "{PER} will represent {LOC} at the {EVENT} in {LOC} in {MONTH} .",
    "The {EVENT} opened in {LOC} on {DAY} with {NUM} teams taking part .",
    "{ORG} signed a {NUM} million dollar deal with {ORG} to build a port near {LOC} .",
    "Speaking in {LANG} , {PER} thanked the people of {LOC} for their support .",
    "{LOC} beat {LOC} {SCORE} in a friendly match on {DAY} .",
    "{PER} , a {NUM}-year-old {NAT} engineer , joined {ORG} in {MONTH} .",
    "Prime Minister {PER} arrived in {LOC} on {DAY} for two days of talks .",
    "Analysts at {ORG} expect inflation in {LOC} to slow to {NUM} percent .",
    "{PER} and {PER} were named in the {NAT} squad for the {EVENT} .",
    "Heavy rain closed roads between {LOC} and {LOC} on {DAY} , officials said .",
    "The {NAT} foreign ministry said it had summoned the ambassador of {LOC} .",
    "Thousands of fans gathered in {LOC} to watch the final of the {EVENT} .",
    "{PER} told reporters in {LOC} that {ORG} had no plans to cut jobs .",
    "Opposition leader {PER} accused {ORG} of hiding losses .",
    "{ORG} said third-quarter profit fell to {NUM} million dollars .",
    "A {NAT} court in {LOC} fined {ORG} {NUM} million dollars on {DAY} .",
    "{PER} ( {LOC} ) won the {EVENT} ahead of {PER} ( {LOC} ) .",
    "{PER} of {ORG} said demand from {NAT} buyers was strong .",
    "Prices rose {NUM} percent in {MONTH} , the fastest pace in two years .",
    "Markets were quiet on {DAY} ahead of the holiday .",
    "The central bank left interest rates unchanged at {NUM} percent .",
]

LABELS = {"PER": "PER", "ORG": "ORG", "LOC": "LOC", "NAT": "MISC", "EVENT": "MISC", "LANG": "MISC"}
SIZES = {"train": 400, "dev": 100, "test": 100}


def _person(names, rng):
    first, last = names["FIRST"], names["LAST"]
    return f"{rng.choice(first)} {rng.choice(last)}" if rng.random() < 0.7 else rng.choice(last)


def _pools(split):
    """Name lists for a split: train only sees the first three quarters of each list."""
    lists = {"FIRST": FIRST, "LAST": LAST, "ORG": ORG, "LOC": LOC, "NAT": NATIONALITY,
             "EVENT": EVENT, "LANG": LANGUAGE}
    return {k: v[: len(v) * 3 // 4] if split == "train" else v for k, v in lists.items()}


def _filler(slot, names, rng):
    if slot == "PER":
        return _person(names, rng)
    if slot in names:
        return rng.choice(names[slot])
    if slot == "SCORE":
        return f"{rng.randint(0, 5)}-{rng.randint(0, 5)}"
    if slot == "NUM":
        return str(rng.choice([2, 3, 4, 7, 12, 15, 28, 40, 150]))
    return rng.choice({"DAY": DAY, "MONTH": MONTH}[slot])


def make_sentence(template, names, rng):
    """Fill one template; returns [(word, BIO tag)], distinct names within the sentence."""
    rows, used = [], set()
    for piece in template.split():
        if not piece.startswith("{"):
            rows.append((piece, "O"))
            continue
        slot, suffix = piece[1:].split("}")  # "{NUM}-year-old" keeps its suffix
        value = _filler(slot, names, rng)
        while slot in LABELS and value in used:
            value = _filler(slot, names, rng)
        used.add(value)
        words = (value + suffix).split()
        label = LABELS.get(slot)
        rows += [(w, "O" if label is None else ("B-" if j == 0 else "I-") + label) for j, w in enumerate(words)]
    return rows


def generate(split, n, rng):
    names = _pools(split)
    return [make_sentence(rng.choice(TEMPLATES), names, rng) for _ in range(n)]


def write_column(sentences, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join("".join(f"{w} {t}\n" for w, t in rows) for rows in sentences))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    for split, n in SIZES.items():
        write_column(generate(split, n, rng), os.path.join(args.out, f"{split}.txt"))
    print(f"wrote {', '.join(f'{n} {s}' for s, n in SIZES.items())} sentences to {args.out}")


if __name__ == "__main__":
    main()
