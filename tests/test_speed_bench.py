"""bench/spacy_side_by_side.py's reading of its runs: the Pareto front, the peers that beat every
E-NER variant, the table it writes (no timing here: speed is measured by the bench itself)."""
from bench import spacy_side_by_side as bench


def side(name, speed, f1, ours, auroc=None):
    runs = [{"sentences_per_second": speed, "f1": f1, "auroc": auroc}]
    return {"name": name, "ours": ours, "runs": runs, "median": speed, "f1": f1, "auroc": auroc}


def test_the_pareto_front_keeps_what_nothing_beats_on_both():
    points = {"a": (100, 0.9), "b": (200, 0.8), "c": (150, 0.85), "d": (90, 0.85), "e": (200, 0.8)}
    assert bench.pareto(points) == {"a", "b", "c", "e"}  # d loses to a on both; equal points both stay
    assert bench.pareto({"x": (1, 1)}) == {"x"}


def test_a_peer_counts_as_dominating_only_over_every_e_ner_variant():
    cfg = {"sides": {"spacy": side("spaCy", 1000, 0.80, False), "flair": side("Flair", 300, 0.82, False),
                     "ener": side("E-NER", 600, 0.90, True), "fast": side("fast", 900, 0.78, True)}}
    assert bench.dominated_by_peer(cfg) == []  # spaCy beats the fast one only, not the default
    cfg["sides"]["ener"] = side("E-NER", 600, 0.79, True)
    assert bench.dominated_by_peer(cfg) == ["spaCy"]


def test_the_table_names_each_row_its_ratio_and_auroc_and_the_skips():
    cfg = {"cores": 1, "label": "one core", "sides": {"spacy": side("spaCy", 1000, 0.8, False),
                                                      "ener": side("E-NER", 2500, 0.9, True, 0.87)}}
    cfg["pareto"] = ["ener"]
    text = bench.markdown({"argv": "--rounds 1", "machine": "m", "load_range": "1–2", "sentences": 10,
                           "peers_note": "", "rounds": 1, "configs": [cfg], "skipped": ["flair: skip: not installed"],
                           "plot": "bench/speed_pareto.png"})
    assert "| E-NER | 2500 | 2500 | 2.50 | 90.00 | 0.870 |" in text
    assert "| spaCy | 1000 | 1000 | 1.00 | 80.00 | – |" in text
    assert "Pareto front (F1 against sentences/s): E-NER." in text and "No peer is both faster" in text
    assert "- flair: skip: not installed" in text
