"""``muse bench build``: the build mode on written prompts and drawn sketches, in one run.

- **prompts** (``bench/data/build_prompts.yaml``, split ``test`` held out, ``tune`` used while
  building): each through the ``Assistant`` in mode ``build``; whether every check passed, the
  template chosen against the one expected, the repairs, the time per artifact (p50 / p95) and
  which checks failed.
- **sketches** (``build/sketchgen.py``, seeded; clean drawings and photo-like ones
  alternating): each built from the image alone; the layout IoU between the boxes drawn (the
  ground truth, not what the reader found) and the rendered page's elements (each drawn box
  paired with its best-overlapping ``[data-box]`` element, one to one: ``sketchgen.match``), and whether every check
  passed.

The report (``results/bench-build-TIME.json``) holds the arguments, the environment, every item
and the figures.
"""

from __future__ import annotations

import base64
import io
import time
from collections import Counter
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from ..assistant import Assistant
from ..assistant.result import BuildTrace
from ..records import environment, write_json
from ..types import Message


def prompts(split: str) -> list[dict[str, str]]:
    return yaml.safe_load(files("openmuse.bench").joinpath("data/build_prompts.yaml").read_text("utf-8"))[split]


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(round(q * (len(s) - 1))))], 2)


def _prompts(assistant: Assistant, items: list[dict[str, str]], options: dict[str, Any],
             tick: Callable[[str], None]) -> dict[str, Any]:
    rows = []
    for i, it in enumerate(items):
        t0 = time.perf_counter()
        r = assistant.answer([Message(role="user", content=it["prompt"])], "build", options)
        wall = time.perf_counter() - t0
        t = r.trace if isinstance(r.trace, BuildTrace) else None
        rows.append({"prompt": it["prompt"], "expect": it["expect"], "template": t.template if t else None,
                     "passed": bool(t and t.passed), "repairs": t.repairs if t else 0,
                     "failed": [f.split(":")[0] for a in (t.attempts if t else []) for f in a.failures],
                     "params": t.params if t else {}, "similarity": t.similarity if t else None,
                     "wall_s": round(wall, 2), "completion_tokens": r.usage.completion_tokens,
                     "refused": t is None})
        tick(f"prompt {i + 1}/{len(items)}: {it['prompt'][:40]!r} → {rows[-1]['template']} "
             f"{'passed' if rows[-1]['passed'] else 'FAILED'} ({rows[-1]['repairs']} repairs, {wall:.1f} s)")
    n = len(rows) or 1
    walls = [r["wall_s"] for r in rows]
    fig = {"n": len(rows), "pass_rate": round(sum(r["passed"] for r in rows) / n, 4),
           "template_right": round(sum(r["template"] == r["expect"] for r in rows) / n, 4),
           "repairs_total": sum(r["repairs"] for r in rows),
           "repairs_mean": round(sum(r["repairs"] for r in rows) / n, 3),
           "repaired_items": sum(1 for r in rows if r["repairs"]),
           "wall_p50_s": _pct(walls, 0.5), "wall_p95_s": _pct(walls, 0.95),
           "failed_checks": dict(Counter(f for r in rows for f in r["failed"])),
           "refused_by_checks": sum(r["refused"] for r in rows)}
    return {"figures": fig, "items": rows}


def rendered_boxes(html: str, viewport: tuple[int, int]) -> list:
    """The ``[data-box]`` elements of ``html`` in Chromium, as ``Box``es (fractions of the viewport)."""
    from ..build.check import Browser
    from ..build.sketch import Box

    with Browser() as b:
        ctx, page, _, _ = b.open(html, viewport)
        try:
            rects = page.locator("[data-box]").evaluate_all(
                "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })")
        finally:
            ctx.close()
    w, h = viewport
    return [Box(x / w, y / h, rw / w, rh / h) for x, y, rw, rh in rects]


def _sketches(assistant: Assistant, seeds: list[int], options: dict[str, Any],
              tick: Callable[[str], None]) -> dict[str, Any]:
    from ..build.sketch import Box, viewport_for
    from ..build.sketchgen import box_iou, make_sketch, match

    rows = []
    for i, seed in enumerate(seeds):
        photo = i % 2 == 1
        img, truth = make_sketch(seed, photo=photo)
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "PNG")
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}
        t0 = time.perf_counter()
        r = assistant.answer([Message(role="user", content=[{"type": "text", "text": "a page like this"}, part])],
                             "build", options)
        wall = time.perf_counter() - t0
        t = r.trace if isinstance(r.trace, BuildTrace) else None
        got = rendered_boxes(t.html, viewport_for(img.size)) if t else []
        ious = [v for _, _, v in match(truth, got)]
        found = [Box(f["x"], f["y"], f["w"], f["h"], kind=f["kind"]) for f in (t.sketch or {}).get("boxes", [])] if t else []
        kinds_right = sum(1 for b in truth if any(box_iou(b, f) > 0.5 and f.kind == b.kind for f in found))
        rows.append({"seed": seed, "photo": photo, "boxes": len(truth), "found": len(got),
                     "iou": round(sum(ious) / len(ious), 4) if ious else 0.0, "per_box": [round(x, 3) for x in ious],
                     "kinds_right": kinds_right, "passed": bool(t and t.passed), "repairs": t.repairs if t else 0,
                     "wall_s": round(wall, 2)})
        tick(f"sketch {i + 1}/{len(seeds)} (seed {seed}{', photo' if photo else ''}): IoU {rows[-1]['iou']:.3f}, "
             f"{'passed' if rows[-1]['passed'] else 'FAILED'}")
    n = len(rows) or 1
    fig = {"n": len(rows), "mean_iou": round(sum(r["iou"] for r in rows) / n, 4),
           "mean_iou_clean": round(sum(r["iou"] for r in rows if not r["photo"]) / max(1, sum(not r["photo"] for r in rows)), 4),
           "mean_iou_photo": round(sum(r["iou"] for r in rows if r["photo"]) / max(1, sum(r["photo"] for r in rows)), 4),
           "boxes_found_exactly": round(sum(r["found"] == r["boxes"] for r in rows) / n, 4),
           "kinds_right": round(sum(r["kinds_right"] for r in rows) / max(1, sum(r["boxes"] for r in rows)), 4),
           "pass_rate": round(sum(r["passed"] for r in rows) / n, 4),
           "wall_p95_s": _pct([r["wall_s"] for r in rows], 0.95)}
    return {"figures": fig, "items": rows}


def run_build_bench(assistant: Assistant, split: str, n_prompts: int | None, sketch_seeds: list[int],
                    options: dict[str, Any], out_path: str | None, console: Any = None) -> tuple[dict[str, Any], Path]:
    t0 = time.perf_counter()
    tick = (lambda s: console.print(f"[dim]{s} · {time.perf_counter() - t0:.0f} s[/]", highlight=False)) if console else (lambda s: None)
    items = prompts(split)[: n_prompts if n_prompts is not None else None]
    args = {"split": split, "n_prompts": len(items), "sketch_seeds": sketch_seeds, "options": options,
            "engine": assistant.engine.name, "model": assistant.engine.model}
    report: dict[str, Any] = {"args": args, "environment": environment()}
    if items:
        report["prompts"] = _prompts(assistant, items, options, tick)
    if sketch_seeds:
        report["sketches"] = _sketches(assistant, sketch_seeds, options, tick)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    path = Path(out_path or f"results/bench-build-{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    return report, write_json(path, report)
