"""What a checkpoint learns about itself on its dev split, kept in CHECKPOINT/calibration.json
(written by `inference.local.calibrate`, at the end of training or on request):

    candidate_threshold   the default --candidate_threshold, chosen on dev (see calibrate.py)
    types.TYPE            per uncertainty type: `budget_table` (quantiles of the listed spans'
                          uncertainties, for --budget online), `temperature` (post-hoc, for
                          the reported confidence) and the dev counts they came from
    dev                   the dev file and its size

Plain JSON, so reading it runs no code. A checkpoint without the file works as before:
candidate threshold 0.4, no temperature, and --budget online asks for calibration.
"""
import os

from inference.budget import table_threshold
from utils.versioned_json import read_versioned, write_atomic

CALIBRATION = "calibration.json"
FORMAT = "linkner-dev-calibration/1"
DEFAULT_CANDIDATE_THRESHOLD = 0.4  # the paper's, for checkpoints never calibrated


def calibration_path(checkpoint):
    return os.path.join(checkpoint, CALIBRATION)


class DevCalibration:
    def __init__(self, data=None):
        self.data = data or {"format": FORMAT, "types": {}}

    @classmethod
    def load(cls, checkpoint):
        """The checkpoint's calibration; an empty one when it has none."""
        path = calibration_path(checkpoint)
        if not os.path.isfile(path):
            return cls()
        return cls(read_versioned(path, FORMAT, "LinkNER dev calibration"))

    def save(self, checkpoint):
        return write_atomic(calibration_path(checkpoint), self.data, indent=1)

    @property
    def calibrated(self):
        return bool(self.data["types"])

    def candidate_default(self, uncertainty_type):
        """The default --candidate_threshold for this type (learned: that of its base type)."""
        entry = self.type_entry(uncertainty_type)
        entry = self.type_entry(entry["base"]) if "base" in entry else entry
        return entry.get("candidate_threshold", DEFAULT_CANDIDATE_THRESHOLD)

    def type_entry(self, uncertainty_type):
        return self.data["types"].get(uncertainty_type) or {}

    def temperature(self, uncertainty_type):
        return self.type_entry(uncertainty_type).get("temperature")

    def budget_threshold(self, uncertainty_type, fraction, checkpoint="checkpoint"):
        """The threshold that sent `fraction` of the dev set's listed spans, or a clear error."""
        table = self.type_entry(uncertainty_type).get("budget_table")
        if not table:
            raise ValueError(f"{checkpoint}: no dev calibration for {uncertainty_type} uncertainty; run "
                             f"python -m inference.local.calibrate {checkpoint} --data_dir DATA")
        return table_threshold(table, fraction)
