"""Live lanes for the agent mode in the terminal: one row per sub-agent (its task, state, the
tool call it is on, calls made, what came back last), then the answer printed below, then
the sources it cites."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..assistant.result import AgentRunTrace
from ..types import Delta

_STYLE = {"working": "yellow", "calling": "cyan", "done": "green"}


class AgentLanes:
    def __init__(self, console: Console):
        self.console = console
        self.rows: dict[int, dict[str, str | int]] = {}
        self.live = Live(self._table(), console=console, refresh_per_second=8, transient=False)
        self.live.start()
        self.answering = False

    def __call__(self, d: Delta) -> None:
        if d.kind == "status":
            row = self.rows.setdefault(d.index, {"state": "working", "tool": "", "calls": 0, "last": ""})
            word, _, rest = d.text.partition(" ")
            if word == "launched":
                row["tool"] = rest
            elif word == "call":
                row["state"], row["tool"], row["calls"] = "calling", rest[:48], int(row["calls"]) + 1
            elif word == "observed":
                row["state"], row["last"] = "working", rest
            elif word == "done":
                row["state"], row["last"] = "done", rest if rest != "answered" else row["last"]
            self.live.update(self._table())
        elif d.kind == "answer":
            if not self.answering:
                self.stop()
                self.console.print("[bold]Answer[/]")
                self.answering = True
            self.console.print(d.text, end="", markup=False, highlight=False)

    def _table(self) -> Table:
        t = Table(title="Agent", title_justify="left")
        t.add_column("sub-agent", justify="right")
        t.add_column("state")
        t.add_column("tool / call", overflow="ellipsis", max_width=50)
        t.add_column("calls", justify="right")
        t.add_column("last result", overflow="ellipsis", max_width=50)
        for i in sorted(self.rows):
            r = self.rows[i]
            st = str(r["state"])
            t.add_row(str(i + 1), f"[{_STYLE.get(st, 'dim')}]{st}[/]", str(r["tool"]), str(r["calls"]), str(r["last"]))
        return t

    def stop(self) -> None:
        if self.live.is_started:
            self.live.update(self._table())
            self.live.stop()

    def finish(self, answer: str, trace: AgentRunTrace | None) -> None:
        """After the run: the answer when nothing streamed it, then the sources it cites."""
        self.stop()
        if not self.answering and answer:
            self.console.print("[bold]Answer[/]")
            self.console.print(answer, markup=False, highlight=False)
        self.console.print()
        for s in (trace.sources if trace else []):
            if f"[{s['id']}]" in answer:
                self.console.print(f"[dim][{s['id']}] {s['title']} ({s['ref']})[/]", highlight=False)
