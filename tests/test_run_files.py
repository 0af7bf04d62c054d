"""inference/run_files.py on its own: for each entry point, every output flag made equal to an
input, and every input flag made equal to an output, is refused before anything is opened for
writing, naming the file and the flag; a dry run checks the outputs it writes, and only those.
Every expectation is written out by hand."""
import json
import os

import pytest

from inference.llm.settings import LinkSettings
from inference.local.tagging import TagSettings
from inference.run_files import check_link_run, check_local_run
from tests.helpers import no_real_openai  # noqa: F401 (autouse fixture)
from utils.errors import DataError

SERVER = "http://127.0.0.1:9/v1"  # never called: the checks only build the client


def touch(path, text="x\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def is_input(path, flag):
    return f"{path}: is also the input ({flag}); writing it would destroy that input; choose another output file"


@pytest.fixture
def tree(tmp_path):
    """tmp/local.jsonl (the local output linked), tmp/out/ (outputs), a checkpoint tmp/ckpt with
    a tokenizer and a second model tmp/second, a data dir tmp/data, a local LLM folder tmp/llm."""
    t = str(tmp_path)
    touch(f"{t}/local.jsonl", '{"id": 0, "entity": []}\n')
    os.makedirs(f"{t}/out")
    for name in ("config.json", "model.safetensors", "calibration.json", "tokenizer/vocab.txt"):
        touch(f"{t}/ckpt/{name}")
    touch(f"{t}/ckpt/error_predictor.json", json.dumps({"second_model": {"path": f"{t}/second"}}))
    for name in ("config.json", "model.safetensors"):
        touch(f"{t}/second/{name}")
    touch(f"{t}/data/test.txt")
    touch(f"{t}/llm/weights.bin")
    touch(f"{t}/gate.json")
    return t


def link(t, **kw):
    return LinkSettings(**{"save_file": f"{t}/out/linked.jsonl", "input_file": f"{t}/local.jsonl",
                           "llm_name": "openai", "base_url": SERVER, "dataname": "conll03", **kw})


# -- llm_inference.py: each output flag equal to the input ---------------------------------------

LINK_OUTPUTS = {  # name: (settings given the input file's path, the output path that clashes)
    "--save_file": (lambda t, i: link(t, input_file=i, save_file=i), lambda t: f"{t}/in.jsonl"),
    "SAVE_FILE.metrics.json": (lambda t, i: link(t, input_file=i, save_file=f"{t}/in.jsonl"),
                               lambda t: f"{t}/in.jsonl.metrics.json"),
    "SAVE_FILE.settings.json": (lambda t, i: link(t, input_file=i, save_file=f"{t}/in.jsonl"),
                                lambda t: f"{t}/in.jsonl.settings.json"),
    "SAVE_FILE.part": (lambda t, i: link(t, input_file=i, save_file=f"{t}/in.jsonl"), lambda t: f"{t}/in.jsonl.part"),
    "SAVE_FILE.kept": (lambda t, i: link(t, input_file=i, save_file=f"{t}/in.jsonl"), lambda t: f"{t}/in.jsonl.kept"),
    "SAVE_FILE.metrics.json.kept": (lambda t, i: link(t, input_file=i, save_file=f"{t}/in.jsonl"),
                                    lambda t: f"{t}/in.jsonl.metrics.json.kept"),
    "--html": (lambda t, i: link(t, input_file=i, html=i), lambda t: f"{t}/in.jsonl"),
    "--cache": (lambda t, i: link(t, input_file=i, cache=i), lambda t: f"{t}/in.jsonl"),
    "default cache": (lambda t, i: link(t, input_file=i, save_file=f"{t}/x/linked.jsonl"),
                      lambda t: f"{t}/x/llm_cache.jsonl"),
    "--plot_dir sweep": (lambda t, i: link(t, input_file=i, plot_dir=f"{t}/plots", threshold_sweep=[0.2]),
                         lambda t: f"{t}/plots/threshold_sweep.png"),
    "--prompts_file (dry run)": (lambda t, i: link(t, input_file=i, dry_run=True, prompts_file=i),
                                 lambda t: f"{t}/in.jsonl"),
    "default prompts file (dry run)": (lambda t, i: link(t, input_file=i, dry_run=True, save_file=f"{t}/in.x"),
                                       lambda t: f"{t}/in.prompts.jsonl"),
    "SAVE_FILE.metrics.json (dry run, --overwrite)": (
        lambda t, i: link(t, input_file=i, dry_run=True, overwrite=True, save_file=f"{t}/in.jsonl"),
        lambda t: f"{t}/in.jsonl.metrics.json"),
}


@pytest.mark.parametrize("name", LINK_OUTPUTS)
def test_llm_inference_refuses_an_output_that_is_the_input(tree, name):
    make, clash = LINK_OUTPUTS[name]
    path = touch(clash(tree), '{"id": 0, "entity": []}\n')
    with pytest.raises(DataError) as err:
        check_link_run(make(tree, path))
    assert str(err.value) == is_input(path, "--input_file")


# -- llm_inference.py: each input flag equal to an output (--html) -------------------------------

LINK_INPUTS = {  # flag: (settings given the output path, the input path)
    "--input_file": (lambda t, o: link(t, input_file=o, html=o), lambda t: f"{t}/local.jsonl"),
    "--input_file's metrics": (lambda t, o: link(t, html=o), lambda t: f"{t}/local.jsonl.metrics.json"),
    "--labels": (lambda t, o: link(t, labels=o, html=o), lambda t: f"{t}/labels.txt"),
    "--label_desc": (lambda t, o: link(t, label_desc=o, html=o), lambda t: f"{t}/desc.json"),
    "--selectShot_dir": (lambda t, o: link(t, selectShot_dir=o, shot=1, html=o), lambda t: f"{t}/shots.txt"),
    "--llm_ckpt": (lambda t, o: link(t, llm_name="qwen", llm_ckpt=f"{t}/llm", html=o), lambda t: f"{t}/llm/weights.bin"),
    "--llm_ckpt (a file)": (lambda t, o: link(t, llm_name="llama", llm_ckpt=o, html=o), lambda t: f"{t}/m.gguf"),
    "--link_calibration": (lambda t, o: link(t, combine="fuse", link_calibration=o, html=o), lambda t: f"{t}/gate.json"),
    "default link calibration": (lambda t, o: link(t, combine="fuse", html=o),
                                 lambda t: f"{t}/out/link_calibration.json"),
}
FLAG_NAMED = {"--input_file's metrics": "--input_file", "--llm_ckpt (a file)": "--llm_ckpt",
              "default link calibration": "--link_calibration"}


@pytest.mark.parametrize("name", LINK_INPUTS)
def test_llm_inference_refuses_an_input_as_an_output(tree, name):
    make, source = LINK_INPUTS[name]
    path = touch(source(tree))
    with pytest.raises(DataError) as err:
        check_link_run(make(tree, path))
    assert str(err.value) == is_input(path, FLAG_NAMED.get(name, name))


def test_the_link_calibration_is_an_input_only_with_fuse(tree):
    check_link_run(link(tree, link_calibration=f"{tree}/gate.json", html=f"{tree}/gate.json", dry_run=True))


def test_a_dry_run_without_overwrite_writes_only_its_prompts(tree):
    """SAVE_FILE, its metrics and the page are not written by a dry run: none of them is checked."""
    touch(f"{tree}/in.jsonl.metrics.json")
    check_link_run(link(tree, input_file=f"{tree}/in.jsonl.metrics.json", save_file=f"{tree}/in.jsonl",
                        dry_run=True))
    touch(f"{tree}/out/llm_cache.jsonl", "not a cache\n")  # no cache either
    check_link_run(link(tree, dry_run=True))


def test_two_outputs_on_one_file_are_refused(tree):
    with pytest.raises(DataError) as err:
        check_link_run(link(tree, html=f"{tree}/out/page.html", cache=f"{tree}/out/page.html"))
    assert str(err.value) == (f"{tree}/out/page.html: is both --html and --cache; one would overwrite the other: "
                              "choose another file for one of them")


# -- local_inference.py -------------------------------------------------------------------------

def tag(t, **kw):
    return TagSettings(**{"inference_model": f"{t}/ckpt", "save_file": f"{t}/out/local.jsonl",
                          "input_file": f"{t}/local.jsonl", **kw})


OFFLINE = LinkSettings(save_file="unused")  # local only: no --llm_name, no --dry_run

LOCAL_CASES = {  # name: (tag settings, link settings, the clashing path, the input flag named)
    "--save_file on the checkpoint's config": (lambda t: tag(t, save_file=f"{t}/ckpt/config.json"), None,
                                               "{t}/ckpt/config.json", "--inference_model"),
    "SAVE_FILE.metrics.json on the input": (lambda t: tag(t, input_file=f"{t}/o.jsonl.metrics.json",
                                                          save_file=f"{t}/o.jsonl"), None,
                                            "{t}/o.jsonl.metrics.json", "--input_file"),
    "--html on a tokenizer file": (lambda t: tag(t, html=f"{t}/ckpt/tokenizer/vocab.txt"), None,
                                   "{t}/ckpt/tokenizer/vocab.txt", "--inference_model"),
    "--html on the calibration": (lambda t: tag(t, html=f"{t}/ckpt/calibration.json"), None,
                                  "{t}/ckpt/calibration.json", "--inference_model"),
    "--html on the second model": (lambda t: tag(t, html=f"{t}/second/model.safetensors"), None,
                                   "{t}/second/model.safetensors", "--inference_model (second model)"),
    "--html on the --data_dir test split": (lambda t: tag(t, input_file=None, data_dir=f"{t}/data",
                                                          html=f"{t}/data/test.txt"), None,
                                            "{t}/data/test.txt", "--data_dir"),
    "--plot_dir on the input": (lambda t: tag(t, input_file=f"{t}/plots/reliability.png", plot_dir=f"{t}/plots"),
                                None, "{t}/plots/reliability.png", "--input_file"),
    "online --cache on the weights": (lambda t: tag(t), lambda t: link(t, cache=f"{t}/ckpt/model.safetensors",
                                                                       input_file=None),
                                      "{t}/ckpt/model.safetensors", "--inference_model"),
    "online --html on the link calibration": (lambda t: tag(t), lambda t: link(t, input_file=None, combine="fuse",
                                                                              link_calibration=f"{t}/gate.json",
                                                                              html=f"{t}/gate.json"),
                                              "{t}/gate.json", "--link_calibration"),
    "online --plot_dir sweep on the input": (lambda t: tag(t, input_file=f"{t}/p/threshold_sweep.png"),
                                             lambda t: link(t, input_file=None, plot_dir=f"{t}/p",
                                                            threshold_sweep=[0.3]),
                                             "{t}/p/threshold_sweep.png", "--input_file"),
    "online dry run --prompts_file on the input": (lambda t: tag(t), lambda t: link(t, input_file=None, dry_run=True,
                                                                                   llm_name=None,
                                                                                   prompts_file=f"{t}/local.jsonl"),
                                                   "{t}/local.jsonl", "--input_file"),
}


def test_save_file_settings_on_a_checkpoint_file(tree):
    touch(f"{tree}/ckpt/model.settings.json")  # not a checkpoint file: allowed
    check_local_run(tag(tree, save_file=f"{tree}/ckpt/model"), OFFLINE)


@pytest.mark.parametrize("name", LOCAL_CASES)
def test_local_inference_refuses_each_clash(tree, name):
    make_tag, make_link, clash, flag = LOCAL_CASES[name]
    path = clash.format(t=tree)
    if not os.path.exists(path):
        touch(path)
    with pytest.raises(DataError) as err:
        check_local_run(make_tag(tree), make_link(tree) if make_link else OFFLINE)
    assert str(err.value) == is_input(path, flag)


def test_an_online_dry_run_checks_its_prompts_file_not_save_file_nor_the_cache(tree):
    """SAVE_FILE and the reply cache are not written by an online dry run: a foreign file at the
    cache's place is no concern of it, while the linking run refuses it."""
    touch(f"{tree}/out/llm_cache.jsonl", "not a cache\n")
    check_local_run(tag(tree), link(tree, input_file=None, llm_name=None, dry_run=True,
                                    save_file=f"{tree}/out/local.jsonl"))
    with pytest.raises(DataError) as err:
        check_local_run(tag(tree), link(tree, input_file=None, save_file=f"{tree}/out/local.jsonl"))
    assert str(err.value) == (f"{tree}/out/llm_cache.jsonl: exists and is not a reply cache of this program; "
                              "it is left alone: choose another file")


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_online_dry_run_may_name_its_save_file_anything_not_written(tree, overwrite):
    """local_inference.py's dry run writes its prompts only, --overwrite or not (unlike
    llm_inference.py's, which then discards SAVE_FILE): SAVE_FILE's metrics beside the input's
    name are no clash."""
    check_local_run(tag(tree, input_file=f"{tree}/o.jsonl.metrics.json", save_file=f"{tree}/o.jsonl",
                        overwrite=overwrite),
                    link(tree, input_file=None, llm_name=None, dry_run=True, save_file=f"{tree}/o.jsonl",
                         overwrite=overwrite))
