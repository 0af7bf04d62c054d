"""`--dataname wnut16`: the WNUT-2016 label set through the prompt builder, the answer parser,
choice mode and an `llm_inference.py --dry_run`, on hand-written tweets and (when
../shared/data is there) the real files."""
import json
import os
import re
import warnings

import pytest

import llm_inference
from dataloaders.readers import load_labels, read_dataset
from inference.llm.answers import parse_answer
from inference.llm.prompt import DATASETS, PromptBuilder, dataset_spec
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from tests.support.loopback_server import LLMServer, entity_of

# The shared task's ten types, as its data spells them (noisy-text.github.io/2016/ner-shared-task.html).
WNUT16_TYPES = {"person", "geo-loc", "company", "facility", "product", "musicartist", "movie", "sportsteam",
                "tvshow", "other"}

# Hand-written tweets (words, [(start, end, gold)]) in the data's format; not taken from the data set.
TWEETS = [
    ("omg @jbiebs live at Madison Square Garden tonite !!".split(), [(1, 1, "person"), (4, 6, "facility")]),
    ("watching glee w/ my sis in Texas , #lakers lost again".split(), [(1, 1, "tvshow"), (6, 6, "geo-loc"),
                                                                     (9, 9, "sportsteam")]),
    ("new iPhone from apple is sooo slow , cant even play coldplay".split(), [(1, 1, "product"), (3, 3, "company"),
                                                                            (11, 11, "musicartist")]),
    ("saw The Dark Knight before Christmas lol".split(), [(1, 3, "movie"), (5, 5, "other")]),
]


def local_records(tweets, uncertainty=0.5):
    """local_inference.py's records for `tweets`: every gold span listed with the given uncertainty,
    half of them mistyped as `person`, plus one non-entity span per tweet."""
    records = []
    for i, (words, gold) in enumerate(tweets):
        spans = [{"entity": " ".join(words[s:e + 1]), "span": [s, e], "pred": "person" if j % 2 else label,
                  "uncertainty": uncertainty, "answer": label} for j, (s, e, label) in enumerate(gold)]
        spans.append({"entity": words[0], "span": [0, 0], "pred": "O", "uncertainty": 0.1, "answer": "O"})
        records.append({"id": i, "sentence": " ".join(words), "tokens": words, "entity": spans,
                        "gold": [list(g) for g in gold]})
    return records


def write_local(tmp_path, records, labels):
    path = tmp_path / "local.jsonl"
    path.write_text("".join(json.dumps(rec) + "\n" for rec in records), encoding="utf-8")
    (tmp_path / "local.jsonl.metrics.json").write_text(json.dumps({"f1": 0.5, "labels": ["O", *labels]}))
    return str(path)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def described_names(description):
    """The `Name:` headings of a description block."""
    return re.findall(r"([A-Z][A-Za-z]*(?:-[A-Za-z]+)?): (?:Names|Titles|Named)", description)


def test_wnut16_spec_lists_and_describes_the_ten_types():
    spec = DATASETS["wnut16"]
    assert set(spec.tags) == WNUT16_TYPES and len(spec.tags) == 10
    names = [name for _, name in spec.options]
    assert described_names(spec.description) == names  # every option described, in the options' order
    assert "  " not in spec.description
    assert spec.option_names() == names + ["Non-entity"]


def test_the_prompt_builder_asks_about_the_span_with_the_ten_options():
    spec = dataset_spec("WNUT16")
    record = local_records(TWEETS[:1])[0]
    prompt = PromptBuilder(spec).build(record, record["entity"][1])
    head, question = prompt.split("given below:")
    assert head + "given below:" == spec.description
    assert question.startswith(record["sentence"] + "\nSelect the entity type of Madison Square Garden in this context")
    listed = question.split("output the entity type: ")[1].removesuffix("\nAnswer:").split("\n ")[1:]
    assert listed == spec.option_names() and len(listed) == 11


@pytest.mark.parametrize("reply, tag", [("Geo-location", "geo-loc"), ("geo-loc", "geo-loc"), ("Music artist", "musicartist"),
                                        ("B-sportsteam", "sportsteam"), ("Answer: TV-show", "tvshow"),
                                        ("Other", "other"), ("Non-entity", "O"), ("a band", None)])
def test_replies_map_to_wnut16_tags(reply, tag):
    assert parse_answer(reply, DATASETS["wnut16"]) == tag


def test_the_models_labels_are_all_options_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = dataset_spec("wnut16", ["O", *sorted(WNUT16_TYPES)])
    assert spec == DATASETS["wnut16"]


def test_dry_run_writes_a_wnut16_prompt_per_uncertain_span(tmp_path, capsys):
    records = local_records(TWEETS)
    input_file, save = write_local(tmp_path, records, sorted(WNUT16_TYPES)), str(tmp_path / "linked.jsonl")
    llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "wnut16", "--dry_run"])
    prompts = read_jsonl(str(tmp_path / "linked.prompts.jsonl"))
    expected = [(rec["id"], span["span"], span["entity"]) for rec in records for span in rec["entity"]
                if span["uncertainty"] > 0.4]
    assert [(p["id"], p["span"], entity_of(p["prompt"])) for p in prompts] == expected
    options = "".join(f"\n {name}" for name in DATASETS["wnut16"].option_names())
    assert all(p["prompt"].startswith(DATASETS["wnut16"].description) and p["prompt"].endswith(options + "\nAnswer:")
               for p in prompts)
    assert f"{len(prompts)} prompts" in capsys.readouterr().out
    assert not os.path.exists(save)


def test_choice_mode_offers_the_wnut16_options_and_reads_the_choice(tmp_path):
    records = local_records(TWEETS)
    gold_name = {span["entity"]: DATASETS["wnut16"].name_of(span["answer"])
                 for rec in records for span in rec["entity"] if span["answer"] != "O"}
    input_file, save = write_local(tmp_path, records, sorted(WNUT16_TYPES)), str(tmp_path / "linked.jsonl")
    with LLMServer(answer=lambda prompt: gold_name.get(entity_of(prompt), "Non-entity"), structured="honour") as server:
        metrics = llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "wnut16",
                                      "--base_url", server.base_url, "--answer_mode", "choice"])
    enums = {tuple(f["json_schema"]["schema"]["properties"]["answer"]["enum"]) for f in server.formats}
    assert enums == {tuple(DATASETS["wnut16"].option_names())}
    asked = [s for rec in read_jsonl(save) for s in rec["entity"] if s["uncertainty"] > 0.4]
    assert asked and all(s["llm_pred"] == s["answer"] for s in asked)  # every name maps back to its tag
    assert metrics["linked"]["f1"] == 1.0 and metrics["local"]["f1"] < 1.0


def test_real_wnut16_files_read_with_their_ten_labels_and_dry_run(shared_data, tmp_path):
    folder = os.path.join(shared_data, "wnut16")
    if not os.path.isdir(folder):
        pytest.skip(f"WNUT-16 not found at {folder}")
    splits = {split: read_dataset(os.path.join(folder, f"{split}.txt")) for split in ("train", "dev", "test")}
    assert {split: len(s) for split, s in splits.items()} == {"train": 2394, "dev": 1000, "test": 3850}
    assert load_labels(None, splits["train"]) == ["O", *sorted(WNUT16_TYPES)]
    with open(os.path.join(folder, "dev.txt"), encoding="utf-8") as f:  # the tab columns, read independently
        first = [line.rstrip("\n").split("\t") for line in f.read().split("\n\n")[0].splitlines()]
    assert splits["dev"][0].words == [w for w, _ in first]
    tweets = [(s.words, s.entities) for s in splits["dev"] if s.entities][:5]
    input_file, save = write_local(tmp_path, local_records(tweets), sorted(WNUT16_TYPES)), str(tmp_path / "l.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every type has shot examples in the train file
        llm_inference.main(["--input_file", input_file, "--save_file", save, "--dataname", "wnut16", "--dry_run",
                            "--shot", "1", "--selectShot_dir", os.path.join(folder, "train.txt")])
    prompts = read_jsonl(str(tmp_path / "l.prompts.jsonl"))
    assert len(prompts) == sum(len(entities) for _, entities in tweets)
    for p in prompts:
        shown = re.findall(r"\nAnswer:(.+)\n", p["prompt"])
        assert sorted(shown) == sorted(name for _, name in DATASETS["wnut16"].options)  # one example per type
