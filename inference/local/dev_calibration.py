"""What a checkpoint learns about itself on its dev split, kept in CHECKPOINT/calibration.json
(written by `inference.local.calibrate`, at the end of training or on request):

    candidate_threshold   the default --candidate_threshold, chosen on dev (see calibrate.py)
    types.TYPE            per uncertainty type: `budget_table` (quantiles of the listed spans'
                          uncertainties, for --budget online), `temperature` (post-hoc, for
                          the reported confidence) and the dev counts they came from
    dev                   the dev file and its size
    weights               the digest of the model.safetensors it was fitted on

Plain JSON, so reading it runs no code, and checked when read: a value of the wrong type is
one line naming the file. A checkpoint without the file works as before: candidate threshold
0.4, no temperature, and --budget online asks for calibration; so does one whose calibration
was fitted on other weights (retrained since), with a one-line warning.
"""
import math
import os
import sys
from typing import Optional

from inference.budget import table_threshold
from models.checkpoint import WEIGHTS
from utils.errors import ConfigError, DataError
from utils.file_digest import file_digest
from utils.versioned_json import read_versioned, write_atomic

CALIBRATION = "calibration.json"
FORMAT = "linkner-dev-calibration/1"
DEFAULT_CANDIDATE_THRESHOLD = 0.4  # the paper's, for checkpoints never calibrated


def calibration_path(checkpoint: str) -> str:
    return os.path.join(checkpoint, CALIBRATION)


def weights_digest(checkpoint: str) -> Optional[str]:
    """The digest of the checkpoint's weights, which what is fitted on them records (None in a
    directory without weights)."""
    weights = os.path.join(checkpoint, WEIGHTS)
    return file_digest(weights) if os.path.isfile(weights) else None


def fitted_elsewhere(path: str, data: dict, checkpoint: str) -> Optional[str]:
    """Why the file `path` (its JSON `data`) does not hold for the checkpoint's weights, or None:
    the weights it records are not the ones there now. A file from before digests were
    recorded holds."""
    recorded = data.get("weights")
    if recorded is None or not os.path.isfile(os.path.join(checkpoint, WEIGHTS)):
        return None
    now = weights_digest(checkpoint)
    if recorded == now:
        return None
    return (f"{path}: fitted on other weights (digest {recorded}; {os.path.join(checkpoint, WEIGHTS)} is now {now}, "
            f"retrained since); recalibrate: python -m inference.local.calibrate {checkpoint} --data_dir DATA")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problem(data):
    """What is wrong with the values of a calibration's JSON, or None."""
    if not isinstance(data.get("types"), dict):
        return "'types' is not an object"
    for name, entry in data["types"].items():
        if not isinstance(entry, dict):
            return f"types.{name} is not an object"
        checks = {"candidate_threshold": _number, "temperature": lambda v: v is None or (_number(v) and v > 0),
                  "base": lambda v: isinstance(v, str),
                  "budget_table": lambda v: isinstance(v, list) and all(_number(x) for x in v)}
        for key, ok in checks.items():
            if key in entry and not ok(entry[key]):
                return f"types.{name}.{key} is {entry[key]!r}, not {'a label' if key == 'base' else 'a number' if key != 'budget_table' else 'a list of numbers'}"
    return None


class DevCalibration:
    def __init__(self, data=None):
        self.data = data or {"format": FORMAT, "types": {}}

    @classmethod
    def load(cls, checkpoint: str) -> "DevCalibration":
        """The checkpoint's calibration; an empty one when it has none."""
        path = calibration_path(checkpoint)
        if not os.path.isfile(path):
            return cls()
        data = read_versioned(path, FORMAT, "LinkNER dev calibration")
        problem = _problem(data)
        if problem:
            raise DataError(f"{path}: {problem}; recalibrate: python -m inference.local.calibrate {checkpoint} "
                            "--data_dir DATA")
        stale = fitted_elsewhere(path, data, checkpoint)
        if stale:
            print(f"warning: {stale}; it is ignored", file=sys.stderr)
            return cls()
        return cls(data)

    def save(self, checkpoint: str) -> str:
        """Written with the digest of the checkpoint's weights, on which it was fitted."""
        self.data["weights"] = weights_digest(checkpoint)
        return write_atomic(calibration_path(checkpoint), self.data, indent=1)

    @property
    def calibrated(self) -> bool:
        return bool(self.data["types"])

    def candidate_default(self, uncertainty_type: str) -> float:
        """The default --candidate_threshold for this type (learned: that of its base type)."""
        entry = self.type_entry(uncertainty_type)
        entry = self.type_entry(entry["base"]) if "base" in entry else entry
        return entry.get("candidate_threshold", DEFAULT_CANDIDATE_THRESHOLD)

    def type_entry(self, uncertainty_type: str) -> dict:
        return self.data["types"].get(uncertainty_type) or {}

    def temperature(self, uncertainty_type: str) -> Optional[float]:
        return self.type_entry(uncertainty_type).get("temperature")

    def budget_threshold(self, uncertainty_type: str, fraction: float, checkpoint: str = "checkpoint") -> float:
        """The threshold that sent `fraction` of the dev set's listed spans, or a clear error."""
        table = self.type_entry(uncertainty_type).get("budget_table")
        if not table:
            raise ConfigError(f"{checkpoint}: no dev calibration for {uncertainty_type} uncertainty; run "
                             f"python -m inference.local.calibrate {checkpoint} --data_dir DATA")
        return table_threshold(table, fraction)
