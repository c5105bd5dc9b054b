"""Run records: the environment every benchmark, study and evaluation writes beside its results
and its arguments, and how a record is written (whole files, replaced atomically, so a killed
run never leaves half a JSON)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from . import __version__


def environment() -> dict[str, Any]:
    """What a result file records about the machine and the run."""
    from .engines.cpu import cpu_model

    return {"openmuse": __version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu": cpu_model(), "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """``data`` to ``path`` as indented JSON, through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)
    return path
