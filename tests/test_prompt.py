import json
import os

import pytest

from utils.errors import DataError
from inference.llm.prompt import (DATASETS, Example, PromptBuilder, ShotSelector, dataset_spec, generic_spec,
                              with_descriptions)

RECORD = {"id": 0, "sentence": "EU rejects German call", "tokens": ["EU", "rejects", "German", "call"],
          "entity": [{"entity": "German", "span": [2, 2], "pred": "O", "uncertainty": 0.45}]}


def test_conll_prompt_is_the_papers_template():
    prompt = PromptBuilder(DATASETS["conll03"]).build(RECORD, RECORD["entity"][0])
    assert prompt == (DATASETS["conll03"].description + "EU rejects German call\n"
                      "Select the entity type of German in this context, and only need to output the entity type: "
                      "\n Location\n Person\n Organization\n Miscellaneous\n Non-entity\nAnswer:")


@pytest.mark.parametrize("name, phrase, options", [
    ("conll03", "like 1000 Lakes Rally, making it a very diverse category",
     ["Location", "Person", "Organization", "Miscellaneous"]),
    ("wnut17", "as long as they’re referred to by name (e.g. Everlasting Gobstopper)",
     ["Location", "Group", "Corporation", "Person", "Creative-work", "Product"]),
    ("ontonotes5", "WORK_OF_ART: Titles of books, songs, etc.", None),
    ("twitter", "the account belonging to the \"Manchester United football club\" would be labeled as an Organization",
     ["Location", "Person", "Organization", "Other"]),
])
def test_dataset_specs_hold_the_papers_descriptions_and_options(name, phrase, options):
    spec = DATASETS[name]
    assert phrase in spec.description
    assert "  " not in spec.description  # the source's continuation indents are collapsed
    names = [n for _, n in spec.options]
    if options:
        assert names == options
    assert spec.option_list() == "".join(f"\n {n}" for n in names) + "\n Non-entity"


def test_ontonotes_has_its_eighteen_types():
    assert len(DATASETS["ontonotes5"].options) == 18
    assert {"WORK_OF_ART", "FAC", "NORP", "GPE"} <= set(DATASETS["ontonotes5"].tags)


def test_dataset_spec_takes_the_models_tag_spelling():
    with pytest.warns(UserWarning, match="EXTRA"):
        spec = dataset_spec("WNUT17", ["O", "creative-work", "person", "EXTRA"])
    assert "creative-work" in spec.tags and "creative_work" not in spec.tags
    assert spec.name_of("creative-work") == "Creative-work"
    with pytest.raises(ValueError, match="unknown dataname 'bio'"):
        dataset_spec("bio")


def test_generic_spec_names_and_describes_labels():
    spec = generic_spec(["O", "PER", "cell_line", "GENE"], {"GENE": "genes and their products."})
    assert spec.options == (("PER", "Person"), ("cell_line", "Cell line"), ("GENE", "Gene"))
    assert "Gene: genes and their products." in spec.description
    assert "Cell line: names of cell line entities." in spec.description
    with pytest.raises(ValueError, match="unknown labels: DNA"):
        generic_spec(["GENE"], {"DNA": "x"})
    with pytest.raises(ValueError, match="clashing"):
        generic_spec(["cell_line", "cell-line"])
    with pytest.raises(ValueError, match="no entity labels"):
        generic_spec(["O"])


def test_with_descriptions_keeps_the_options_and_their_names():
    spec = with_descriptions(DATASETS["conll03"], {"LOC": "places."})
    assert spec.options == DATASETS["conll03"].options
    assert "Location: places." in spec.description and "1000 Lakes" not in spec.description
    wnut = with_descriptions(DATASETS["wnut17"], {"creative_work": "songs, films, books."})
    assert "Creative-work: songs, films, books." in wnut.description


def test_tokens_stand_in_for_a_missing_sentence():
    record = {"tokens": ["Hello", "Paris"], "entity": []}
    prompt = PromptBuilder(DATASETS["conll03"]).build(record, {"entity": "Paris"})
    assert "given below:Hello Paris\nSelect the entity type of Paris in" in prompt


def write_shots(tmp_path):
    records = [{"context": "Alice met Bob in Paris", "span_posLabel": {"0;0": "PER", "2;2": "PER", "4;4": "LOC"}},
               {"context": "Carol flew to Rome", "span_posLabel": {"0;0": "PER", "3;3": "LOC"}},
               {"context": "Dave works at Acme in Berlin", "span_posLabel": {"0;0": "PER", "3;3": "ORG", "5;5": "LOC"}},
               {"context": "Eve joined Initech", "span_posLabel": {"0;0": "PER", "2;2": "ORG"}}]
    path = tmp_path / "spanner.train"
    path.write_text(json.dumps(records))
    return str(path)


def test_shots_give_k_examples_per_label_in_the_papers_format(tmp_path):
    spec = generic_spec(["PER", "LOC", "ORG"])
    shots = ShotSelector.from_file(write_shots(tmp_path), spec, k=2, seed=1)
    prompt = PromptBuilder(spec, shots).build(RECORD, RECORD["entity"][0])
    blocks = prompt.split("Example:\n")[1:]
    assert len(blocks) == 6
    answers = [block.split("\nAnswer:")[1].split("\n")[0] for block in blocks]
    assert sorted(answers) == ["Location", "Location", "Organization", "Organization", "Person", "Person"]
    assert blocks[0].startswith("<Context>:") and "\n Select the entity type of " in blocks[0]
    assert prompt.index("Example:") > prompt.index("entity class information")
    assert prompt.rindex("Example:") < prompt.index("EU rejects German call")


def test_shots_are_fixed_per_span_whatever_the_order_and_vary_with_the_seed(tmp_path):
    spec = generic_spec(["PER", "LOC", "ORG"])
    path = write_shots(tmp_path)
    a = ShotSelector.from_file(path, spec, k=1, seed=1)
    b = ShotSelector.from_file(path, spec, k=1, seed=1)
    b.select("another sentence", "x", spec.tags)  # draws made for other spans change nothing
    assert a.select("EU rejects German call", "German", spec.tags) == \
        b.select("EU rejects German call", "German", spec.tags)
    draws = {tuple(ShotSelector.from_file(path, spec, k=1, seed=s).select("s", "e", spec.tags)) for s in range(20)}
    assert len(draws) > 1


def test_similar_shots_prefer_the_same_surface_and_shared_words(tmp_path):
    spec = generic_spec(["PER", "LOC", "ORG"])
    shots = ShotSelector.from_file(write_shots(tmp_path), spec, k=1, strategy="similar", seed=0)
    chosen = {ex.tag: ex for ex in shots.select("Frank flew to Rome", "Rome", spec.tags)}
    assert chosen["LOC"] == Example("Carol flew to Rome", "Rome", "LOC")
    assert chosen["PER"].sentence == "Carol flew to Rome"  # the sentence sharing the most words


def test_shot_file_errors(tmp_path):
    spec = generic_spec(["PER", "LOC", "MISC"])
    with pytest.warns(UserWarning, match="no examples of MISC"):
        ShotSelector.from_file(write_shots(tmp_path), spec, k=1, seed=0)
    text = tmp_path / "raw.txt"
    text.write_text("just some words\n")
    with pytest.raises(DataError, match="labelled file"):
        ShotSelector.from_file(str(text), spec, k=1, seed=0)
    with pytest.raises(ValueError, match="shot strategy"):
        ShotSelector([], 1, "nearest", seed=0)


def test_shots_from_the_real_conll_dev_set(shared_data):
    path = os.path.join(shared_data, "conll03", "spanner.dev")
    if not os.path.isfile(path):
        pytest.skip(f"{path} is absent")
    spec = DATASETS["conll03"]
    shots = ShotSelector.from_file(path, spec, k=1, strategy="similar", seed=0)
    chosen = shots.select("Germany beat France in Paris", "France", spec.tags)
    assert sorted(ex.tag for ex in chosen) == sorted(spec.tags)
    assert all(ex.entity in ex.sentence for ex in chosen)
    assert next(ex for ex in chosen if ex.tag == "LOC").entity.lower() == "france"
