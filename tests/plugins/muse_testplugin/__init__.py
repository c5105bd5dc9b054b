"""A third-party plugin as a user would write one, registered through entry points only
(``../muse_testplugin-0.1.dist-info/entry_points.txt``): tests put this folder on the Python
path (``sys.path`` or ``PYTHONPATH``) and OpenMuse finds it with no change to its own code.

- ``echo`` (a mode): asks the engine to repeat the question; its own ``Options`` (``shout``,
  ``repeat``) become CLI flags, ``muse`` fields and the model ``muse-echo``.
- ``spy`` (a check, the hook the safety layer uses): when ``MUSE_SPY_FILE`` is set, it appends
  one JSON line per pipeline stage with what it saw (the prepared conversation's text, the
  media report, the mode); otherwise it does nothing.
- ``spy-picture`` (an eval task): one item whose question carries a PNG with printed text.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import Field

from openmuse.assistant import Result
from openmuse.evals.task import Item, Scored, Task
from openmuse.modes.base import Mode, ModeOptions


class EchoOptions(ModeOptions):
    max_tokens: int = Field(default=16, ge=1, description="Most tokens in the echo.")
    shout: bool = Field(default=False, description="Echo: upper-case the answer.")
    repeat: int = Field(default=1, ge=1, le=3, description="Echo: how many times to say it.")


class EchoMode(Mode):
    name = "echo"
    summary = "repeat the question (a test plugin)"
    Options = EchoOptions

    def run(self, engine, messages, on_event=None) -> Result:
        o = self.options
        question = next(m.text() for m in reversed(messages) if m.role == "user")
        req = self.request([{"role": "user", "content": f"Repeat exactly: {question}"}])
        c = engine.generate_many([req], on_delta=on_event)[0]
        text = " ".join([c.text.strip()] * o.repeat)
        return Result(answer=text.upper() if o.shout else text, usage=c.usage, model=c.model, mode=self.name)


class SpyCheck:
    name = "spy"

    def _log(self, stage: str, request) -> None:
        path = os.environ.get("MUSE_SPY_FILE")
        if not path:
            return
        row: dict[str, Any] = {
            "stage": stage, "mode": request.mode.name, "pid": os.getpid(),
            "text": " ".join(m.text() for m in request.messages),
            "media": [{"kind": p.kind, "via": p.via} for p in request.media.parts] if request.media else [],
        }
        if request.result is not None:
            row["answer"] = request.result.answer
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def before(self, request):
        self._log("before", request)
        return None, None

    def after(self, request):
        self._log("after", request)
        return None, None


class PictureTask(Task):
    name = "spy-picture"
    convention = "one picture with printed text (a test plugin)"
    synthetic = True
    default_max_tokens = 16

    def items(self) -> list[Item]:
        url = os.environ["MUSE_SPY_IMAGE"]  # a PNG data URL the test made
        return [Item(id="p1", target="", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What does the sign say?"}, {"type": "image_url", "image_url": {"url": url}}]}])]

    def score(self, item, outputs, ctx) -> Scored:
        return Scored(prediction=outputs[0][0].answer if outputs and outputs[0] else "", score=0.0)
