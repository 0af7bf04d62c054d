"""The repository's shape, read with `ast`: which layer may import which, defaults written
once, and type hints on the public functions of the library packages."""
import ast
import os
import re
import sys

import pytest

from inference.llm.settings import LinkSettings
from inference.local.tagging import TagSettings
from models.config import ModelConfig
from models.training import TrainSettings
from tests.helpers import REPO as ROOT

ENTRY_POINTS = ("train_spanner.py", "train_ener.py", "local_inference.py", "llm_inference.py")
LIBRARY = ("dataloaders", "models", "inference", "utils")


def python_files(*folders):
    for folder in folders:
        for base, _, names in os.walk(os.path.join(ROOT, folder)):
            yield from (os.path.join(base, n) for n in sorted(names) if n.endswith(".py"))


def imports(path):
    """Every module `path` imports, at any depth (function-level imports included)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def rel(path):
    return os.path.relpath(path, ROOT)


# (folder or file, prefixes it must never import)
RULES = [
    ("inference/local", ("inference.llm",)),
    ("inference/reports", ("inference.llm", "inference.local")),
    ("inference/records.py", ("inference.llm", "inference.local", "inference.reports", "inference.fuse")),
    ("inference/fuse", ("inference.llm", "inference.local")),  # the policy knows no LLM and no tagger
    ("inference/budget.py", ("inference.llm", "inference.local", "inference.reports")),
    ("models", ("inference",)),
    ("dataloaders", ("inference", "models")),
    ("utils", ("inference", "models", "dataloaders")),
]


def violations(target, banned):
    path = os.path.join(ROOT, target)
    files = [path] if path.endswith(".py") else list(python_files(target))
    assert files, target
    return [f"{rel(f)} imports {name}" for f in files for name in imports(f)
            if any(name == b or name.startswith(b + ".") for b in banned)]


@pytest.mark.parametrize("target, banned", RULES)
def test_lower_layers_never_import_higher_ones(target, banned):
    assert violations(target, banned) == []


def test_the_rule_checker_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself: a planted upward import is reported (function-level ones too)."""
    pkg = tmp_path / "inference" / "local"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text("def f():\n    from inference.llm.linker import Linker\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert violations("inference/local", ("inference.llm",)) == [
        "inference/local/bad.py imports inference.llm.linker", "inference/local/bad.py imports inference.llm.linker.Linker"]


def test_library_code_never_imports_tests_bench_or_entry_points():
    banned = ("tests", "bench", *(e[:-3] for e in ENTRY_POINTS))
    found = [f"{rel(f)} imports {n}" for f in python_files(*LIBRARY) for n in imports(f)
             if any(n == b or n.startswith(b + ".") for b in banned)]
    assert found == []


def test_entry_points_never_import_each_other():
    names = {e[:-3] for e in ENTRY_POINTS}
    found = [f"{e} imports {n}" for e in ENTRY_POINTS for n in imports(os.path.join(ROOT, e)) if n in names]
    assert found == []


# -- defaults written once ---------------------------------------------------------------

SETTINGS = (LinkSettings, TagSettings, TrainSettings, ModelConfig)
FIELD_DEFAULTS = {}
for cls in SETTINGS:
    for name, field in cls.__dataclass_fields__.items():
        if isinstance(field.default, (int, float, str)) and not isinstance(field.default, bool):
            FIELD_DEFAULTS.setdefault(name, set()).add(field.default)
# parameter names that mean a settings field under another name
ALIASES = {"max_tokens": None, "batch_size": "batch_size", "ckpt": None}


def literal_defaults(path):
    """(function, parameter, literal default) for every parameter whose default is a literal."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            for arg, default in pairs:
                if isinstance(default, ast.Constant) and not isinstance(default.value, (bool, type(None))):
                    yield node.name, arg.arg, default.value


def test_no_function_repeats_a_settings_default():
    """A parameter named like a settings field takes that field (LinkSettings.threshold), never a
    copy of its value: the dataclasses hold each default once."""
    found = [f"{rel(f)}: {fn}({arg}={value!r})" for f in python_files(*LIBRARY)
             for fn, arg, value in literal_defaults(f) if value in FIELD_DEFAULTS.get(arg, ())]
    assert found == []


SCRIPT_SETTINGS = {"BATCH_SIZE", "MAX_SPANLEN", "ITERATION", "LINK_THRESHOLD", "LLM_MODEL", "SHOT", "UNCERTAINTY_TYPE",
                   "CANDIDATE_THRESHOLD", "LINK_BUDGET", "COMBINE", "LINK_CALIBRATION"}


def test_scripts_leave_python_settings_empty():
    """A script's variable that maps to a Python flag defaults to empty (the flag is left out, so
    the Python default holds); quickstart.sh's short demo training is its own choice."""
    found = []
    for name in sorted(os.listdir(os.path.join(ROOT, "scripts"))):
        if not name.endswith(".sh") or name == "quickstart.sh":
            continue
        text = open(os.path.join(ROOT, "scripts", name), encoding="utf-8").read()
        found += [f"{name}: {var}={value}" for var, value in re.findall(r'^: "\$\{(\w+):=([^}]*)\}"', text, re.M)
                  if var in SCRIPT_SETTINGS and value]
        found += [f"{name}: {m}" for m in re.findall(r"gpt-3\.5-turbo|--threshold \"?0\.\d", text)]
    assert found == []


def test_the_server_model_name_is_written_once_in_code():
    hits = [rel(f) for f in python_files(*LIBRARY, "scripts") for node in ast.walk(ast.parse(open(f).read()))
            if isinstance(node, ast.Constant) and node.value == LinkSettings.model]
    assert hits == ["inference/llm/settings.py"]


# -- type hints ----------------------------------------------------------------------------

def unannotated(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            args = [a for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                    if a.arg not in ("self", "cls")]
            if node.returns is None or any(a.annotation is None for a in args):
                yield node.name


def test_public_functions_of_the_library_have_type_hints():
    missing = [f"{rel(f)}: {name}" for f in python_files(*LIBRARY) for name in unannotated(f)]
    assert missing == [], f"{len(missing)} public functions without type hints"
