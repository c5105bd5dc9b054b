"""Live lanes for Contemplating mode in the terminal: one row per agent (approach, state,
tokens so far, its current answer), then the synthesis streamed below."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .modes.contemplating.agents import answer_kind
from .answers import display, extract
from .types import Delta

_STATE_STYLE = {"waiting": "dim", "running": "yellow", "done": "green", "skipped": "dim strike"}


class Lanes:
    def __init__(self, console: Console, question: str, n: int):
        self.console = console
        self.question = question
        self.kind = answer_kind(question)
        self.approach = ["" for _ in range(n)]
        self.state = ["waiting" for _ in range(n)]
        self.pieces = [0 for _ in range(n)]
        self.text = ["" for _ in range(n)]
        self.answer: list[str | None] = [None for _ in range(n)]
        self.live = Live(self._table(), console=console, refresh_per_second=8, transient=False)
        self.live.start()
        self.synthesis_started = False

    def __call__(self, d: Delta) -> None:
        if d.kind == "status":
            word, _, rest = d.text.partition(" ")
            self.state[d.index] = {"launched": "running"}.get(word, word)
            if rest:
                self.approach[d.index] = rest
            if word == "done":
                self.answer[d.index] = extract(self.text[d.index], self.question, self.kind)
        elif d.kind == "agent":
            self.pieces[d.index] += 1
            self.text[d.index] += d.text
            if self.pieces[d.index] % 4 == 0:
                self.answer[d.index] = extract(self.text[d.index], self.question, self.kind)
        else:  # the synthesis
            if not self.synthesis_started:
                self.stop()
                self.console.print("[bold]Synthesis[/]")
                self.synthesis_started = True
                text = d.text.lstrip()
            else:
                text = d.text
            self.console.print(text, end="", markup=False, highlight=False)
            return
        self.live.update(self._table())

    def _table(self) -> Table:
        t = Table(title="Contemplating", title_justify="left", expand=False)
        t.add_column("agent", justify="right")
        t.add_column("approach")
        t.add_column("state")
        t.add_column("pieces", justify="right")
        t.add_column("answer so far", overflow="ellipsis", max_width=40)
        for i in range(len(self.state)):
            st = self.state[i]
            t.add_row(str(i + 1), self.approach[i], f"[{_STATE_STYLE[st]}]{st}[/]", str(self.pieces[i]),
                      display(self.answer[i]))
        return t

    def stop(self) -> None:
        if self.live.is_started:
            self.live.update(self._table())
            self.live.stop()
