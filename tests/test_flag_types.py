"""Every argparse `type=` of utils/flag_types.py at its boundaries: the values a flag takes,
the ones it refuses (an ArgumentTypeError, which argparse turns into exit 2)."""
import argparse
import math

import pytest
import torch

from utils import flag_types as ft

REFUSED_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e309", "abc", "", "1,5"]


def refuses(check, text, match=None):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        check(text)


@pytest.mark.parametrize("check, text, value", [
    (ft.positive_int, "1", 1), (ft.positive_int, "64", 64), (ft.positive_int, " 3 ", 3),
    (ft.nonnegative_int, "0", 0), (ft.nonnegative_int, "7", 7),
    (ft.number, "-5", -5.0), (ft.number, "0", 0.0), (ft.number, "1e308", 1e308), (ft.number, "0.25", 0.25),
    (ft.positive_float, "1e-12", 1e-12), (ft.positive_float, "5e-324", 5e-324), (ft.positive_float, "3", 3.0),
    (ft.nonnegative_float, "0", 0.0), (ft.nonnegative_float, "0.0", 0.0), (ft.nonnegative_float, "2.5", 2.5),
    (ft.fraction, "0", 0.0), (ft.fraction, "0.1", 0.1), (ft.fraction, "0.999999", 0.999999),
    (ft.number_list, "0.2,0.4", [0.2, 0.4]), (ft.number_list, "1", [1.0]), (ft.number_list, "-1, 0.5", [-1.0, 0.5]),
])
def test_accepted_values(check, text, value):
    got = check(text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("check, text", [
    (ft.positive_int, "0"), (ft.positive_int, "-1"), (ft.positive_int, "1.0"), (ft.positive_int, "1e3"),
    (ft.positive_int, "abc"), (ft.positive_int, ""),
    (ft.nonnegative_int, "-1"), (ft.nonnegative_int, "0.5"),
    *[(ft.number, text) for text in REFUSED_NUMBERS],
    *[(ft.positive_float, text) for text in ["0", "0.0", "-0.0", "-1e-12", *REFUSED_NUMBERS]],
    *[(ft.nonnegative_float, text) for text in ["-1e-12", "-1", *REFUSED_NUMBERS]],
    # a dropout rate or a warmup share: 1 would drop every unit / never leave warmup
    *[(ft.fraction, text) for text in ["1", "1.0", "1e0", "1.5", "-0.1", "-1e-12", *REFUSED_NUMBERS]],
    (ft.number_list, ""), (ft.number_list, "0.2,,0.4"), (ft.number_list, "0.2,"), (ft.number_list, "0.2,nan"),
    (ft.number_list, "0.2;0.4"),
])
def test_refused_values(check, text):
    refuses(check, text)


def test_messages_name_the_value_and_the_range():
    refuses(ft.positive_int, "0", "at least 1, got '0'")
    refuses(ft.nonnegative_int, "-1", "at least 0, got '-1'")
    refuses(ft.positive_int, "x", "whole number, got 'x'")
    refuses(ft.positive_float, "0", "above 0, got '0'")
    refuses(ft.fraction, "1", "from 0 to below 1, got '1'")
    refuses(ft.number, "nan", "expected a number, got 'nan'")


@pytest.mark.parametrize("text", ["yes", "true", "t", "y", "1", "True", "TRUE", "Yes", "Y", "T"])
def test_str2bool_true(text):
    assert ft.str2bool(text) is True


@pytest.mark.parametrize("text", ["no", "false", "f", "n", "0", "False", "FALSE", "No", "N", "F"])
def test_str2bool_false(text):
    assert ft.str2bool(text) is False


@pytest.mark.parametrize("text", ["", "maybe", "2", "-1", "truee", "on", "off", "none"])
def test_str2bool_refuses_other_words(text):
    refuses(ft.str2bool, text, "expected a boolean")


def test_paths(tmp_path):
    f, d, gone = tmp_path / "f.txt", tmp_path / "d", str(tmp_path / "gone")
    f.write_text("x")
    d.mkdir()
    f, d = str(f), str(d)
    assert ft.existing_file(f) == f and ft.existing_dir(d) == d
    assert ft.existing_path(f) == f and ft.existing_path(d) == d
    assert ft.input_file(f) == f and ft.input_file("-") == "-"
    assert ft.output_file(f) == f and ft.output_file(gone) == gone
    assert ft.output_dir(d) == d and ft.output_dir(gone) == gone
    refuses(ft.existing_file, d, "no such file")
    refuses(ft.existing_file, gone, "no such file")
    refuses(ft.existing_dir, f, "no such directory")
    refuses(ft.existing_dir, gone, "no such directory")
    refuses(ft.existing_path, gone, "no such file or directory")
    refuses(ft.input_file, gone, "no such file")
    refuses(ft.input_file, d, "no such file")
    refuses(ft.output_file, d, "is a directory")
    refuses(ft.output_dir, f, "is a file, not a directory")


def test_json_labels(tmp_path):
    def write(name, text, encoding="utf-8"):
        path = tmp_path / name
        path.write_text(text, encoding=encoding)
        return str(path)

    good = write("good.json", '{"PER": "people", "LOC": "places"}')
    assert ft.json_labels(good) == good
    bom = write("bom.json", '{"PER": "people"}', encoding="utf-8-sig")
    assert ft.json_labels(bom) == bom
    refuses(ft.json_labels, str(tmp_path / "none.json"), "no such file")
    refuses(ft.json_labels, write("broken.json", '{"PER": '), "not a JSON file")
    refuses(ft.json_labels, write("latin.json", '{"PÉR": "x"}', encoding="latin-1"), "not a JSON file")
    for name, text in [("list.json", '["PER"]'), ("empty.json", "{}"), ("number.json", '{"PER": 1}'),
                       ("nested.json", '{"PER": {"a": "b"}}'), ("string.json", '"PER"')]:
        refuses(ft.json_labels, write(name, text), "expected a JSON object")


@pytest.mark.parametrize("text", ["auto", "cpu"])
def test_device_without_a_gpu(text, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ft.device(text) == text


@pytest.mark.parametrize("text", ["cuda", "cuda:0"])
def test_cuda_refused_without_a_gpu(text, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refuses(ft.device, text, "no CUDA GPU")


@pytest.mark.parametrize("text, ok", [("cuda", True), ("cuda:0", True), ("cuda:1", True), ("cuda:2", False),
                                      ("cuda:", False), ("cuda:²", False), ("cuda:x", False), ("cuda:-1", False), ("gpu", False),
                                      ("CPU", False), ("cuda0", False), ("", False), ("mps", False)])
def test_device_on_a_two_gpu_machine(text, ok, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    if ok:
        assert ft.device(text) == text
        torch.device(text)  # a device torch takes
    else:
        refuses(ft.device, text)


def test_argparse_turns_a_refusal_into_a_usage_error(capsys):
    p = argparse.ArgumentParser(prog="prog")
    p.add_argument("--dropout", type=ft.fraction)
    p.add_argument("--with_kl", type=ft.str2bool)
    args = p.parse_args(["--dropout", "0.5", "--with_kl", "false"])
    assert args.dropout == 0.5 and args.with_kl is False
    with pytest.raises(SystemExit) as exit_:
        p.parse_args(["--dropout", "1.0"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        "prog: error: argument --dropout: expected a number from 0 to below 1, got '1.0'"


def test_positive_float_keeps_finite_numbers_only():
    assert math.isfinite(ft.positive_float("1e308"))
    refuses(ft.positive_float, "1e400")
