"""Benchmarks (`muse bench …`): each prints ratios measured side by side in one run and writes
its results with the arguments and the environment (``records.py``). Questions go through the
``Assistant``; ``bench engine`` and ``bench contention`` measure the engine itself."""

from __future__ import annotations

from ..records import environment

__all__ = ["environment"]
