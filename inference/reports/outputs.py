"""What every run leaves beside SAVE_FILE: SAVE_FILE.metrics.json, and the HTML page on request."""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Optional

from inference.reports.page import write_html


def write_outputs(save_file: str, records: Iterable[dict], metrics: dict[str, Any], html: Optional[str] = None) -> None:
    """SAVE_FILE.metrics.json, and with `html` the page of the final `records` (read only then,
    one at a time: a reader of SAVE_FILE will do)."""
    with open(save_file + ".metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    if html:
        write_html(records, html, title=os.path.basename(save_file))
