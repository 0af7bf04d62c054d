"""The headroom bench's own arithmetic (bench/error_headroom.py): file consistency and the
errors a budget leaves unsent."""
import math

import numpy as np

from bench.error_headroom import file_consistency, missed


def test_file_consistency_counts_the_other_listings_of_a_text_and_their_agreement():
    rows = file_consistency(["Japan", "Japan", "Japan", "Ken"], ["LOC", "LOC", "ORG", "PER"])
    assert rows[0].tolist() == [math.log1p(2), 0.5, 0.0]  # two others, one with LOC
    assert rows[2].tolist() == [math.log1p(2), 0.0, 0.0]  # ORG: neither other agrees
    assert rows[3].tolist() == [0.0, 0.0, 1.0]  # listed once


def test_missed_are_the_errors_below_the_budget_threshold():
    data = {"wrong": np.array([True, False, True, True, False, False, False, False, False, False])}
    u = np.array([0.9, 0.8, 0.1, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert missed(u, data, 0.2).tolist() == [False, False, True, True] + [False] * 6  # 2 sent: 0.9 and 0.8
    assert missed(u, data, 0.3).tolist() == [False, False, True] + [False] * 7
