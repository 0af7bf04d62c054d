"""Linking that pays or abstains: server log-probabilities, the dev preflight
(inference/llm/calibrate_link.py), the fuse gate and its identity check, all against the
loopback server with scripted answers and log-probabilities."""
import json
import math
import random

import pytest

import llm_inference
from inference.reports.dev_gain import Answered, Split, expected_f1, f1, local_counts
from inference.fuse.gate import FORMAT, Gate
from inference.fuse.run import settle
from inference.llm import calibrate_link
from inference.llm.logprobs import option_probs
from inference.records import decide
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import LLMServer, entity_of

LABELS = ("LOC", "MISC", "ORG", "PER")
NAMES = {"LOC": "Location", "MISC": "Miscellaneous", "ORG": "Organization", "PER": "Person", "O": "Non-entity"}


def local_output(path, n, seed):
    """A labelled local output of n sentences of 4 spans, each span a unique word; the local label
    is right with probability 1 - 0.8 * uncertainty. Returns {span word: gold label}."""
    rng, truth = random.Random(seed), {}
    with open(path, "w") as f:
        for i in range(n):
            words = [f"Qz{seed}x{i}w{j}" for j in range(4)]
            gold, spans = [], []
            for j, word in enumerate(words):
                label = rng.choice(LABELS + ("O",))
                truth[word] = label
                if label != "O":
                    gold.append([j, j, label])
                u = rng.random()
                pred = label if rng.random() < 1 - 0.8 * u else rng.choice([x for x in LABELS + ("O",) if x != label])
                spans.append({"entity": word, "span": [j, j], "pred": pred, "uncertainty": u, "confidence": 1 - u,
                              "candidate": pred == "O", "answer": label})
            f.write(json.dumps({"id": i, "sentence": " ".join(words), "tokens": words, "entity": spans,
                                "gold": gold}) + "\n")
    with open(str(path) + ".metrics.json", "w") as f:
        json.dump({"labels": ["O", *LABELS]}, f)
    return truth


def oracle(truth, accuracy, seed=0):
    """A server answer: the gold option with probability `accuracy` (fixed per span), else another."""
    def answer(prompt):
        word = entity_of(prompt)
        rng = random.Random(f"{seed}{word}")
        gold = truth[word]
        return NAMES[gold] if rng.random() < accuracy else NAMES[rng.choice([x for x in NAMES if x != gold])]
    return answer


def informative(answer_of, right_p=0.9, wrong_p=0.4):
    """Log-probabilities: the answer gets right_p when it is right, wrong_p when wrong; the rest spread."""
    def distribution(prompt):
        chosen = answer_of(prompt)
        p = right_p if chosen == NAMES[TRUTH[entity_of(prompt)]] else wrong_p
        rest = [n for n in NAMES.values() if n != chosen]
        return {chosen: p, **{n: (1 - p) / len(rest) for n in rest}}
    return distribution


TRUTH = {}


@pytest.fixture
def splits(tmp_path):
    TRUTH.clear()
    TRUTH.update(local_output(tmp_path / "dev.jsonl", 150, seed=1))
    TRUTH.update(local_output(tmp_path / "test.jsonl", 150, seed=2))
    return tmp_path


def preflight(tmp_path, server, *extra):
    return calibrate_link.main(["--input_file", str(tmp_path / "dev.jsonl"), "--dataname", "conll03",
                                "--llm_name", "gpt", "--base_url", server.base_url, "--answer_mode", "choice",
                                *extra])


def link(tmp_path, server, *extra, save="test.linked.jsonl"):
    return llm_inference.main(["--input_file", str(tmp_path / "test.jsonl"), "--save_file", str(tmp_path / save),
                               "--dataname", "conll03", "--llm_name", "gpt", "--base_url", server.base_url,
                               "--answer_mode", "choice", *extra])


# -- log-probabilities ---------------------------------------------------------------------

OPTIONS = ["Location", "Person", "Organization", "Miscellaneous", "Non-entity"]


def tokens(value_token, alternatives, before=('{"', "answer", '":', ' "')):
    return [(t, [(t, 0.0)]) for t in before] + [(value_token, alternatives), ("ation", [("ation", 0.0)]),
                                                ('"}', [('"}', 0.0)])]


def test_option_probabilities_from_the_token_that_names_the_option():
    alts = [("Loc", math.log(0.5)), ("Per", math.log(0.3)), ("Org", math.log(0.1)), ("Mis", math.log(0.05)),
            ("Non", math.log(0.05))]
    probs = option_probs(tokens("Loc", alts), OPTIONS)
    assert probs == pytest.approx({"Location": 0.5, "Person": 0.3, "Organization": 0.1, "Miscellaneous": 0.05,
                                   "Non-entity": 0.05})


def test_a_token_that_carries_the_quote_and_a_partial_top_list():
    # the option's first token also holds the opening quote; only two options among the alternatives
    toks = [('{"', [('{"', 0.0)]), ("answer", [("answer", 0.0)]), ('":', [('":', 0.0)]),
            (' "Loc', [(' "Loc', math.log(0.6)), (' "Per', math.log(0.2)), (" {", math.log(0.2))]), ('"}', [])]
    assert option_probs(toks, OPTIONS) == pytest.approx({"Location": 0.75, "Person": 0.25, "Organization": 0.0,
                                                         "Miscellaneous": 0.0, "Non-entity": 0.0})


@pytest.mark.parametrize("toks", [[], [("Location", [("Location", 0.0)])],  # absent; no JSON answer
                                  tokens("Zeb", [("Zeb", 0.0), ("Qux", -1.0)])])  # no alternative names an option
def test_absent_or_useless_log_probabilities_give_none(toks):
    assert option_probs(toks, OPTIONS) is None


# -- the gate ------------------------------------------------------------------------------

def test_decide_takes_the_answer_or_asks_the_policy_above_the_threshold():
    span = {"pred": "LOC", "uncertainty": 0.9, "llm_answer": "PER"}
    assert decide(span, 0.5) == "PER" and decide(span, 0.95) == "LOC"
    assert decide(span, 0.5, lambda s: "MISC") == "MISC" and decide(span, 0.95, lambda s: "MISC") == "LOC"
    assert decide({**span, "llm_answer": None}, 0.5, lambda s: "MISC") == "LOC"


def test_expected_f1_against_hand_counts():
    # gold: A=(0,0) PER, B=(1,1) LOC; local: A PER (right), B ORG (wrong), C=(2,2) MISC (gold O)
    rec = {"gold": [[0, 0, "PER"], [1, 1, "LOC"]], "entity": [
        {"span": [0, 0], "pred": "PER", "uncertainty": 0.1}, {"span": [1, 1], "pred": "ORG", "uncertainty": 0.8},
        {"span": [2, 2], "pred": "MISC", "uncertainty": 0.9}]}
    assert local_counts([rec]) == (1, 3, 2) and f1(1, 3, 2) == pytest.approx(0.4)
    fixed = Answered({**rec["entity"][1], "llm_answer": "LOC"}, "LOC")  # +1 tp
    removed = Answered({**rec["entity"][2], "llm_answer": "O"}, "O")  # -1 predicted
    take = lambda a: a.span["llm_answer"]  # noqa: E731
    assert expected_f1(Split([rec]), [fixed, removed], 0.5, take) == pytest.approx(2 * 2 / (2 + 2))  # P 1, R 1
    # only the removal answered: it stands for both sent spans (scale 2): tp 1, n_pred 3 - 2
    assert expected_f1(Split([rec]), [removed], 0.5, take) == pytest.approx(2 * 1 / (1 + 2))


# -- the preflight and fuse, end to end ------------------------------------------------------

def test_a_bad_llm_is_expected_to_lower_f1_and_fuse_abstains(splits, capsys):
    answer = oracle(TRUTH, accuracy=0.1)
    with LLMServer(answer=answer, structured="honour", logprobs=informative(answer, 0.6, 0.6)) as server:
        report = preflight(splits, server)
        out = capsys.readouterr().out
        assert "expected to LOWER F1 at every budget" in out and "do not link" in out
        rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0].endswith("%")]
        assert len(rows) == 4 and all(row[-1] == "keep" for row in rows)  # what fuse does per budget
        assert report["recommended_budget"] is None and report["llm_accuracy"] < report["local_accuracy"]
        assert all(c == "keep" for _, c in Gate.load(str(splits / "link_calibration.json")).budgets)
        fused = link(splits, server, "--budget", "0.2", "--combine", "fuse")
        over = link(splits, server, "--budget", "0.2", save="over.jsonl")
    assert fused["linked"]["f1"] == fused["local"]["f1"] and fused["changed"] == 0
    assert over["linked"]["f1"] < over["local"]["f1"]


def test_a_good_llm_with_informative_probabilities_pays_with_fuse(splits, capsys):
    answer = oracle(TRUTH, accuracy=0.6)
    with LLMServer(answer=answer, structured="honour", logprobs=informative(answer)) as server:
        report = preflight(splits, server)
        assert report["recommended_budget"] is not None
        out = capsys.readouterr().out
        assert "recommended: --combine fuse --budget" in out
        rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0].endswith("%")]
        assert len(rows) == 4 and {row[-1] for row in rows} <= {"keep", "every", "span"}
        assert any(row[-1] != "keep" for row in rows)
        fused = link(splits, server, "--budget", "0.5", "--combine", "fuse")
    assert fused["combine"] == "fuse" and fused["linked"]["f1"] > fused["local"]["f1"]
    assert fused["fuse_choice"] in ("every", "span")


def test_every_report_on_a_fused_output_scores_its_llm_pred(splits, tmp_path):
    """metrics.json, the summary line and the page score the file's final labels (checked with
    seqeval), which a gold-free copy settles the same way."""
    from inference.reports.summary import score_line
    from tests.test_metrics_reference import assert_matches_seqeval

    answer = oracle(TRUTH, accuracy=0.6)
    with LLMServer(answer=answer, structured="honour", logprobs=informative(answer)) as server:
        preflight(splits, server)
        metrics = link(splits, server, "--budget", "0.5", "--combine", "fuse", "--html", str(tmp_path / "p.html"))
    linked = [json.loads(line) for line in open(splits / "test.linked.jsonl")]
    spans = [s for rec in linked for s in rec["entity"]]
    assert all(s["llm_pred"] is not None for s in spans) and any(s["llm_pred"] != s["pred"] for s in spans)
    lengths = [len(rec["tokens"]) for rec in linked]
    golds = [[tuple(g) for g in rec["gold"]] for rec in linked]
    finals = [[(*s["span"], s["llm_pred"]) for s in rec["entity"]] for rec in linked]
    assert_matches_seqeval(metrics["linked"], finals, golds, lengths)
    saved = json.load(open(splits / "test.linked.jsonl.metrics.json"))
    assert saved["linked"] == metrics["linked"]
    assert f"F1 {metrics['linked']['f1']:.4f}" in score_line("linked", str(splits / "test.linked.jsonl.metrics.json"))
    blind = [{**{k: v for k, v in rec.items() if k != "gold"},
              "entity": [{k: v for k, v in s.items() if k not in ("answer", "llm_pred")} for s in rec["entity"]]}
             for rec in linked]
    settle(blind, Gate.load(str(splits / "link_calibration.json")), metrics["threshold"])
    assert [s.get("llm_pred", s["pred"]) for rec in blind for s in rec["entity"]] == [s["llm_pred"] for s in spans]


def test_a_calibration_for_another_llm_or_prompt_is_refused(splits, capsys):
    answer = oracle(TRUTH, accuracy=0.6)
    with LLMServer(answer=answer, structured="honour", logprobs=informative(answer)) as server:
        preflight(splits, server)
        for extra, differs in ((["--model", "other"], "model"), (["--shot", "0", "--dataname", "wnut17"], "dataname")):
            argv = ["--input_file", str(splits / "test.jsonl"), "--save_file", str(splits / "x.jsonl"),
                    "--dataname", "conll03", "--llm_name", "gpt", "--base_url", server.base_url,
                    "--answer_mode", "choice", "--combine", "fuse", *extra]
            with pytest.raises(SystemExit) as stop:
                llm_inference.main(argv)
            message = str(stop.value.code)
            assert message.startswith("error: ") and "link_calibration.json" in message and differs in message
            assert "\n" not in message and not (splits / "x.jsonl").exists()


@pytest.mark.parametrize("content, problem", [("{not json", "not JSON"),
                                              ('{"format": "other/1"}', "not a link calibration"),
                                              ('{"format": "%s", "mean": [1]}' % FORMAT, "damaged")])
def test_a_damaged_or_foreign_calibration_is_one_line_and_nothing_is_overwritten(splits, content, problem):
    path = splits / "link_calibration.json"
    path.write_text(content)
    with LLMServer(answer=lambda p: "Location", structured="honour") as server:
        with pytest.raises(SystemExit) as stop:
            link(splits, server, "--combine", "fuse")
        assert str(stop.value.code).startswith(f"error: {path}") and problem in str(stop.value.code)
        with pytest.raises(SystemExit) as stop:  # the preflight never replaces a file that is not its own
            preflight(splits, server)
        assert str(stop.value.code).startswith(f"error: {path}")
    assert path.read_text() == content and not (splits / "test.linked.jsonl").exists()


@pytest.mark.parametrize("older", ["linkner-link-calibration/2", "linkner-link-calibration/5"])
def test_an_older_calibration_is_refused_by_linking_and_replaced_by_the_preflight(splits, older):
    path = splits / "link_calibration.json"
    path.write_text('{"format": "%s", "cutoffs": []}' % older)
    answer = oracle(TRUTH, accuracy=0.6)
    with LLMServer(answer=answer, structured="honour", logprobs=informative(answer)) as server:
        with pytest.raises(SystemExit) as stop:
            link(splits, server, "--combine", "fuse")
        message = str(stop.value.code)
        assert message.startswith(f"error: {path}") and f"older format ({older})" in message
        assert "rerun python -m inference.llm.calibrate_link" in message and "\n" not in message
        preflight(splits, server)
    assert Gate.load(str(path)).price > 0


def test_fuse_without_a_calibration_says_how_to_make_one(splits):
    with LLMServer(answer=lambda p: "Location", structured="honour") as server:
        with pytest.raises(SystemExit) as stop:
            link(splits, server, "--combine", "fuse")
    assert "no link calibration" in str(stop.value.code) and "calibrate_link" in str(stop.value.code)


def test_the_preflight_refuses_linking_flags_it_does_not_read(splits, capsys):
    with pytest.raises(SystemExit) as stop:
        calibrate_link.main(["--input_file", str(splits / "dev.jsonl"), "--budget", "0.1", "--dry_run"])
    assert stop.value.code == 2 and "unrecognized arguments: --budget 0.1 --dry_run" in capsys.readouterr().err


def test_the_preflight_needs_labelled_dev_output(splits):
    lines = [json.loads(line) for line in open(splits / "dev.jsonl")]
    with open(splits / "nogold.jsonl", "w") as f:
        f.writelines(json.dumps({k: v for k, v in rec.items() if k != "gold"}) + "\n" for rec in lines)
    with pytest.raises(SystemExit) as stop:
        calibrate_link.main(["--input_file", str(splits / "nogold.jsonl"), "--llm_name", "gpt",
                             "--base_url", "http://127.0.0.1:9/v1"])
    assert "have no gold labels" in str(stop.value.code)


def test_paper_protocol_keeps_the_papers_rule(tmp_path, capsys):
    import local_inference

    with pytest.raises(SystemExit) as stop:
        local_inference.parse_args(["--inference_model", str(tmp_path), "--save_file", str(tmp_path / "o.jsonl"),
                                    "--paper_protocol", "--combine", "fuse", "--llm_name", "gpt"])
    assert stop.value.code == 2 and "--combine override" in capsys.readouterr().err


def test_local_counts_match_the_link_report_and_skip_gold_o():
    from inference.reports.link_metrics import link_report

    rec = {"gold": [[0, 0, "PER"], [1, 1, "O"], [2, 2, "LOC"]], "entity": [
        {"span": [0, 0], "pred": "PER", "uncertainty": 0.1}, {"span": [1, 1], "pred": "ORG", "uncertainty": 0.8},
        {"span": [3, 3], "pred": "O", "uncertainty": 0.9}]}
    local = link_report([rec], 1.0)["local"]
    assert local_counts([rec]) == (local["tp"], local["n_pred"], local["n_gold"]) == (1, 2, 2)


def test_a_gate_fitted_on_another_local_models_dev_output_is_warned_about_once(splits, capsys):
    for name, model in (("dev", "models/a"), ("test", "models/b")):
        (splits / f"{name}.jsonl.metrics.json").write_text(json.dumps({"labels": ["O", *LABELS], "checkpoint": model}))
    answer = oracle(TRUTH, accuracy=0.6)
    with LLMServer(answer=answer, structured="honour", logprobs=informative(answer)) as server:
        preflight(splits, server)
        capsys.readouterr()
        link(splits, server, "--budget", "0.2", "--combine", "fuse")
        err = capsys.readouterr().err
        assert err.count("warning: ") == 1 and "models/a" in err and "models/b" in err
        (splits / "test.jsonl.metrics.json").write_text(json.dumps({"labels": ["O", *LABELS], "checkpoint": "models/a"}))
        link(splits, server, "--budget", "0.2", "--combine", "fuse", save="same.jsonl")
        assert "warning: " not in capsys.readouterr().err
