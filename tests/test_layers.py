"""The import graph, read from every .py file's import statements: entry points are thin
peers, the library never reaches up, and the layers go one way:
utils -> dataloaders -> models -> inference -> entry points (bench, data, tests on top)."""
import ast
import os

from tests.helpers import REPO

ENTRY_POINTS = {"train_spanner", "train_ener", "local_inference", "llm_inference"}
LAYERS = ["utils", "dataloaders", "models", "inference"]  # each may import only itself and those before it
OURS = set(LAYERS) | ENTRY_POINTS | {"bench", "tests", "data"}


def imported_modules(source):
    """The top-level names of the modules a source file imports (relative imports excepted)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(module, imports):
    """What is wrong with `module` (its top-level package or entry point name) importing `imports`."""
    found = []
    ours = imports & OURS - {module}
    if module in ENTRY_POINTS:
        found += [f"entry point {module} imports entry point {name}" for name in sorted(ours & ENTRY_POINTS)]
    elif module in LAYERS:
        allowed = set(LAYERS[:LAYERS.index(module) + 1])
        found += [f"{module} imports {name}" for name in sorted(ours - allowed)]
    return found


def python_files():
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("outputs", "__pycache__")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                yield os.path.relpath(path, REPO).split(os.sep)[0].removesuffix(".py"), path


def test_the_import_graph_keeps_the_layers():
    problems = []
    for module, path in python_files():
        with open(path, encoding="utf-8") as f:
            problems += [f"{os.path.relpath(path, REPO)}: {v}" for v in violations(module, imported_modules(f.read()))]
    assert problems == []


def test_every_layer_and_entry_point_is_checked():
    modules = {module for module, _ in python_files()}
    assert set(LAYERS) | ENTRY_POINTS <= modules


def test_a_violation_is_caught():
    assert violations("train_ener", imported_modules("from train_spanner import main")) == [
        "entry point train_ener imports entry point train_spanner"]
    assert violations("models", imported_modules("from inference.local.predict import dev_counter"))
    assert violations("utils", imported_modules("from dataloaders.readers import read_dataset"))
    assert violations("inference", imported_modules("import local_inference"))
    assert violations("inference", imported_modules("from tests.helpers import REPO"))
    assert violations("dataloaders", imported_modules("import bench.run"))
    assert violations("inference", imported_modules("from models.checkpoint import load_checkpoint\nimport torch")) == []
