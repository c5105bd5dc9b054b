"""Benchmarks (`muse bench …`): each prints ratios measured side by side in one run and writes
its results with the arguments and the environment."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from .. import __version__


def environment() -> dict[str, Any]:
    """What a result file records about the machine and the run."""
    from ..engines.cpu import cpu_model

    return {"openmuse": __version__, "python": platform.python_version(), "machine": platform.machine(),
            "cpu": cpu_model(), "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
