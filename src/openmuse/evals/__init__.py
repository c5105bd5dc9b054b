"""Evaluation harness: ``muse eval TASK`` runs a task through a mode and an engine and writes
what it measured; ``muse eval compare RUN…`` sets several runs side by side.

- ``task.py``: what a task is (items, prompts, a scorer, a summary) and the shared loaders for
  files a user supplies (JSONL, CSV), each failing with one clear ``DataError``.
- ``runner.py``: runs the items, appends one JSON line per finished item (flushed, so an
  interrupted run resumes where it stopped), then writes the summary JSON (arguments and
  environment included), a markdown table and a PNG of accuracy against tokens.
- ``compare.py``: several run folders as one table and one plot.
- ``tasks/``: one module per task; each module's docstring states the official scoring
  convention it follows. Tasks register through the ``openmuse.evals`` entry-point group, like
  engines and modes, so a plugin package adds its own the same way.
"""

from __future__ import annotations

from .. import registry
from .task import DataError, EvalContext, Item, Scored, Task, TaskOptions

__all__ = ["DataError", "EvalContext", "Item", "Scored", "Task", "TaskOptions", "create_task", "task_names"]


def task_names() -> list[str]:
    return registry.names("eval")


def create_task(name: str, options: TaskOptions | None = None) -> Task:
    return registry.load("eval", name)(options or TaskOptions())
