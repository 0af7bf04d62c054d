import pytest

from inference.reports.link_metrics import link_report, plot_sweep, sweep


def span(s, e, pred, uncertainty, llm_answer):
    return {"entity": f"w{s}", "span": [s, e], "pred": pred, "uncertainty": uncertainty, "llm_answer": llm_answer}


def record():
    """One sentence with every case; gold entity 9;9 is listed by no span."""
    return {"id": 0, "sentence": "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9",
            "entity": [span(0, 0, "LOC", 0.9, "PER"),   # fixed: wrong type corrected
                       span(2, 3, "ORG", 0.8, "LOC"),   # broken: right type changed
                       span(4, 4, "PER", 0.7, "O"),     # removed, a false positive: fixed
                       span(5, 5, "O", 0.6, "LOC"),     # candidate typed right: recovered, fixed
                       span(6, 6, "O", 0.5, "MISC"),    # candidate typed wrong: added, broken
                       span(7, 7, "ORG", 0.45, None),   # unparseable: keeps ORG (right)
                       span(8, 8, "LOC", 0.1, None)],   # below threshold: keeps LOC (wrong)
            "gold": [[0, 0, "PER"], [2, 3, "ORG"], [5, 5, "LOC"], [7, 7, "ORG"], [9, 9, "MISC"]]}


def test_every_change_is_counted_and_scored():
    report = link_report([record()], 0.4)
    assert {k: report[k] for k in ("sent", "changed", "fixed", "broken", "removed", "added", "recovered",
                                   "never_listed")} == \
        {"sent": 6, "changed": 5, "fixed": 3, "broken": 2, "removed": 1, "added": 2, "recovered": 1,
         "never_listed": 1}
    # local: LOC 0;0, ORG 2;3, PER 4;4, ORG 7;7, LOC 8;8 -> 2 right of 5, gold 5
    assert (report["local"]["tp"], report["local"]["n_pred"], report["local"]["n_gold"]) == (2, 5, 5)
    # linked: PER 0;0, LOC 2;3, LOC 5;5, MISC 6;6, ORG 7;7, LOC 8;8 -> 3 right of 6
    assert (report["linked"]["tp"], report["linked"]["n_pred"]) == (3, 6)
    assert report["linked"]["precision"] == pytest.approx(3 / 6)
    assert report["linked"]["recall"] == pytest.approx(3 / 5)
    assert report["linked"]["f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)


def test_higher_thresholds_take_fewer_answers():
    rows = sweep(lambda: [record()], [0.65, 0.0, 0.65, 0.95])
    assert [row["threshold"] for row in rows] == [0.0, 0.65, 0.95]
    assert [row["sent"] for row in rows] == [7, 3, 0]
    at_065 = rows[1]  # only 0;0, 2;3 and 4;4 change
    assert (at_065["changed"], at_065["fixed"], at_065["broken"], at_065["removed"]) == (3, 2, 1, 1)
    assert (at_065["linked"]["tp"], at_065["linked"]["n_pred"]) == (2, 4)
    assert rows[2]["linked"] == rows[2]["local"]


def test_without_gold_only_changes_are_counted():
    rec = record()
    del rec["gold"]
    report = link_report([rec, record()], 0.4)
    assert "linked" not in report and "fixed" not in report
    assert (report["changed"], report["removed"], report["added"]) == (10, 2, 4)


def test_per_label_scores_on_request():
    report = link_report([record()], 0.4, per_label=True)
    assert report["linked"]["per_label"]["LOC"]["tp"] == 1 and report["local"]["per_label"]["PER"]["n_pred"] == 1
    assert "per_label" not in link_report([record()], 0.4)["linked"]


def test_sweep_plot_is_a_png(tmp_path):
    for records in ([record()], [{k: v for k, v in record().items() if k != "gold"}]):
        path = plot_sweep(sweep(lambda: records, [0.2, 0.5, 0.8]), str(tmp_path / "sweep.png"))
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
