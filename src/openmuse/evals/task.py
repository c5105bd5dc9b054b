"""What an evaluation task is, and the loaders for data files a user supplies.

A task gives its items (an id, OpenAI-format messages, the known target), the prompts to send
for one item (one list per question in the item, one prompt per attempt: ARC asks two attempts
for each test input), and a scorer that turns the completions into a prediction, the extracted
answer and a score in [0, 1]. ``summarize`` turns the per-item records into the task's figures
(accuracy by default; refusal rates per set; HealthBench's clipped mean with its bootstrap
standard error).
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engines.base import Engine
from ..errors import MuseError
from ..assistant.result import Result
from ..types import Completion, Message


class DataError(MuseError):
    """A data file is missing, unreadable or malformed, or a task cannot run as asked."""

    code = "invalid_request_error"


class TaskOptions(BaseModel):
    """Options a task may use; each task ignores what it does not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str | None = None  # a local file (mcq, math, healthbench)
    seed: int = 0  # generator seed (arithmetic, charts) and option shuffling (mcq)
    repeats: int = Field(default=1, ge=1)  # mcq: each question this many times, options reshuffled
    judge: Literal["rules", "engine"] = "rules"  # refusal: rule-based classifier or the engine as judge


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    messages: list[dict[str, Any]]  # OpenAI chat format
    target: Any = None
    meta: dict[str, Any] = Field(default_factory=dict)


class Scored(BaseModel):
    prediction: str  # the model's answer text (attempts joined for multi-attempt items)
    extracted: Any = None  # what the scorer read out of it (None: no answer found)
    score: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclass
class EvalContext:
    """What a scorer may call: the engine under test and a grader engine (judges, rubrics)."""

    engine: Engine
    grader: Engine | None = None
    grader_calls: list[Completion] = field(default_factory=list)

    def grade(self, messages: list[dict[str, Any]], max_tokens: int = 256) -> Completion:
        from ..types import ChatRequest

        judge = self.grader or self.engine
        c = judge.generate(ChatRequest(messages=messages, max_tokens=max_tokens, temperature=0.0))
        self.grader_calls.append(c)
        return c


class Task(ABC):
    name: str = ""
    # One line: where the data comes from and the official convention the scorer follows.
    convention: str = ""
    synthetic: bool = False
    # Answer length used when the user gives no --max-tokens.
    default_max_tokens: int = 512
    # The figure a comparison plots against tokens (a key of ``summarize``'s result).
    primary: str = "accuracy"
    # Figures a comparison plots beside the primary one (other markers).
    secondary: tuple[str, ...] = ()

    def __init__(self, options: TaskOptions):
        self.options = options

    def check_engine(self, engine: Engine) -> None:
        """Raise ``DataError`` when the engine cannot take this task (e.g. no image input)."""

    @abstractmethod
    def items(self) -> list[Item]: ...

    def prompts(self, item: Item) -> list[list[list[Message]]]:
        """For each question of the item, one conversation per attempt."""
        return [[[Message(**m) for m in item.messages]]]

    @abstractmethod
    def score(self, item: Item, outputs: list[list[Result]], ctx: EvalContext) -> Scored: ...

    def summarize(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(records)
        return {"accuracy": round(sum(r["score"] for r in records) / n, 4) if n else 0.0}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "convention": self.convention, "synthetic": self.synthetic}


# --- loaders for files a user supplies -------------------------------------------------------

def _path(path: str | None, task: str, what: str) -> Path:
    if not path:
        raise DataError(f"{task} needs a local data file: pass --data PATH ({what})")
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"data file not found: {path}")
    return p


def read_jsonl(path: str | None, task: str, what: str) -> list[dict[str, Any]]:
    """Objects of a JSONL file (a JSON array file is accepted too); one-line errors."""
    p = _path(path, task, what)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e.__class__.__name__}") from None
    rows: list[dict[str, Any]] = []
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path} line {n} is not valid JSON: {e.msg}") from None
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path} holds no JSON objects ({what})")
    return rows


def read_table(path: str | None, task: str, what: str) -> list[dict[str, Any]]:
    """Rows of a CSV file (by its header) or of a JSONL file, by the file's extension."""
    p = _path(path, task, what)
    if p.suffix.lower() not in (".csv", ".tsv"):
        return read_jsonl(path, task, what)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if p.suffix.lower() == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path}: {e.__class__.__name__}") from None
    if not rows:
        raise DataError(f"{path} has no rows ({what})")
    return rows


def field_of(row: dict[str, Any], names: tuple[str, ...], path: str | None, n: int) -> Any:
    """The first of ``names`` present and non-empty in ``row``; a one-line error otherwise."""
    for k in names:
        if row.get(k) not in (None, ""):
            return row[k]
    raise DataError(f"{path}: row {n} has none of the fields {', '.join(names)}")
