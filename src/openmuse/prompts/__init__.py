"""Packaged prompt files (YAML), read once each."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import yaml


@cache
def load(name: str) -> dict[str, Any]:
    return yaml.safe_load(files(__package__).joinpath(f"{name}.yaml").read_text("utf-8"))
