"""The preflight's verdict (`dev_gain.verdict`) on hand-made expected-F1 tables: which
budget and --combine it recommends, and when it says not to link or that it cannot tell."""
from inference.reports.dev_gain import verdict


def table(*rows):
    """(budget, override F1, fuse F1) rows at local F1 0.80."""
    return [{"budget": b, "threshold": 1 - b, "local_f1": 0.80, "override_f1": o, "fuse_f1": f} for b, o, f in rows]


def test_the_best_fuse_budget_is_recommended_where_fuse_gains():
    budget, combine, lines = verdict(table((0.05, 0.79, 0.805), (0.1, 0.78, 0.812), (0.2, 0.77, 0.809)))
    assert (budget, combine) == (0.1, "fuse")
    assert lines[0].startswith("this LLM is expected to LOWER F1") and "80.00 -> 81.20" in lines[1]


def test_without_a_gate_the_papers_rule_is_recommended_where_it_gains():
    budget, combine, lines = verdict(table((0.05, 0.81, 0.80), (0.1, 0.83, 0.80), (0.2, 0.82, 0.80)),
                                     why="only 3 disagreements")
    assert (budget, combine) == (0.1, "override") and len(lines) == 1
    assert "only 3 disagreements" in lines[0] and "--combine override --budget 0.1" in lines[0]


def test_without_a_gate_and_no_gain_the_preflight_cannot_tell():
    budget, combine, lines = verdict(table((0.05, 0.79, 0.80), (0.1, 0.80, 0.80)), why="only 3 disagreements")
    assert (budget, combine) == (None, None) and "cannot tell" in lines[-1]
    assert not lines[0].startswith("this LLM is expected to LOWER")  # 10 %: override ties local


def test_a_gate_that_gains_nowhere_says_do_not_link():
    budget, combine, lines = verdict(table((0.05, 0.70, 0.80), (0.1, 0.65, 0.80)))
    assert (budget, combine) == (None, None)
    assert lines[0].startswith("this LLM is expected to LOWER F1") and lines[1].startswith("recommended: do not link")
