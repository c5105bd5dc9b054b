"""Visual grounding: ask a vision model for points or boxes, read its answer, draw it.

Every convention is read into one schema, coordinates as fractions (0-1) of the ORIGINAL image
(x to the right, y down):

- ``qwen2.5-vl``: JSON ``[{"bbox_2d": [x1, y1, x2, y2], "label": …}]`` or ``{"point_2d": [x, y]}``
  in absolute pixels of the RESIZED input the processor fed the model (see ``smart_resize``).
- ``qwen3-vl``: the same JSON, coordinates relative on 0-1000.
- ``molmo``: ``<point x="61.5" y="40.2" alt="label">label</point>`` and
  ``<points x1="…" y1="…" x2="…" y2="…" … alt="label">label</points>``, percentages 0-100.
- ``qwen2-vl``: ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``
  on 0-1000. A server that drops special tokens leaves ``label(x1,y1),(x2,y2)``: read too.

A box's point is its centre. Coordinates up to ``SLACK`` (10 %) outside the image are clamped to
it; anything further, non-numeric, non-finite or of the wrong arity is dropped and counted in
``Grounding.dropped``. The count is the number of distinct points: a point within ``DEDUP`` (1 %
of the image's longer side) of an earlier one is the same object said twice (``duplicates``).

Not covered: video, 3-D boxes, polygons/masks, and EXIF rotation (sizes are the stored pixels,
as the model's server reads them). The JSON of Qwen2.5-VL and Qwen3-VL looks alike: ``detect``
takes a value over 1000 as pixels, else trusts the hint (the convention asked for), else 0-1000.
Drawing (``render``, ``to_png``) and reading image inputs live in ``annotate.py``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, computed_field

from .. import prompts
from ..engines.base import Engine
from ..errors import ConfigError
from ..types import ChatRequest, Usage
from .annotate import PALETTE, ImageInput, _bytes, _load, _open, marker_radius, objects, render, to_png

__all__ = ["CONVENTIONS", "PALETTE", "Grounding", "ImageInput", "convention_for_model", "detect", "ground",
           "grounding_prompt", "image_part", "marker_radius", "parse", "render", "smart_resize", "to_png"]

Convention = Literal["qwen2.5-vl", "qwen3-vl", "molmo", "qwen2-vl"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)
Kind = Literal["points", "boxes"]

# Qwen2.5-VL's processor defaults (patch 14 x merge 2 = 28; 4 to 16384 patches of 28 x 28).
QWEN25_FACTOR = 28
QWEN25_MIN_PIXELS = 4 * 28 * 28
QWEN25_MAX_PIXELS = 16384 * 28 * 28
SLACK = 0.1  # how far outside the image (fraction of its size) a coordinate is still clamped
DEDUP = 0.01  # points closer than this fraction of the longer side are one object

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class Annotation(BaseModel):
    """One object: its number on the picture, label, point and optional box (0-1 of the original)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=1)
    label: str = ""
    point: tuple[Unit, Unit]
    box: tuple[Unit, Unit, Unit, Unit] | None = None  # x1, y1, x2, y2 with x1 <= x2, y1 <= y2
    source: Convention


class Grounding(BaseModel):
    """What a model pointed at, in one schema whatever its convention."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    annotations: tuple[Annotation, ...] = ()
    image_size: tuple[int, int] | None = None  # (width, height) of the original image
    convention: Convention | None = None  # None: nothing recognisable in the text
    raw: str = ""
    dropped: int = 0  # malformed entries left out
    duplicates: int = 0  # near-identical points merged
    model: str = ""
    usage: Usage | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> int:
        return len(self.annotations)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def lines(self) -> list[str]:
        """For people: the count, then one line per object (in pixels when the size is known)."""
        w, h = self.image_size or (1, 1)
        px = lambda vs: ", ".join(f"{v * s:.0f}" if self.image_size else f"{v:.3f}"  # noqa: E731
                                  for v, s in zip(vs, (w, h, w, h)))
        return [f"{objects(self.count)}" + (f" ({self.convention})" if self.convention else "")] + [
            f"{a.index:>3}. ({px(a.point)})" + (f"  box {px(a.box)}" if a.box else "")
            + (f"  {a.label}" if a.label else "") for a in self.annotations]


# -- resizing ----------------------------------------------------------------------------------
def smart_resize(width: int, height: int, *, factor: int = QWEN25_FACTOR,
                 min_pixels: int = QWEN25_MIN_PIXELS, max_pixels: int = QWEN25_MAX_PIXELS) -> tuple[int, int]:
    """The (width, height) Qwen2.5-VL's processor resizes a ``width`` x ``height`` image to.

    Note the order: (width, height) in and out, as Pillow has it. The rule: each side is rounded
    to the nearest multiple of ``factor`` (Python's ``round``, so an exact half goes to the even
    multiple; never below ``factor``). If that area exceeds ``max_pixels``, both ORIGINAL sides
    are scaled by sqrt(max_pixels / area) and rounded DOWN to multiples; if it is under
    ``min_pixels``, scaled by sqrt(min_pixels / area) and rounded UP. Aspect ratios over 200 are
    refused, as the processor does. Pass the server's own min/max pixels when it sets them."""
    if width < 1 or height < 1:
        raise ConfigError(f"image size must be positive, not {width}x{height}")
    if max(width, height) / min(width, height) > 200:
        raise ConfigError(f"aspect ratio over 200 ({width}x{height}): Qwen2.5-VL refuses such images")
    w, h = (max(factor, round(v / factor) * factor) for v in (width, height))
    if w * h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w, h = (max(factor, math.floor(v / beta / factor) * factor) for v in (width, height))
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w, h = (math.ceil(v * beta / factor) * factor for v in (width, height))
    return w, h


# -- parsers: text -> ([(label, coords in the convention's units)], malformed entries) ---------
Raw = tuple[str, list[Any]]
_NUM = r"[-+]?\d+(?:\.\d+)?"
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_FLAT_OBJECT = re.compile(r"\{[^{}]*\}")
_MOLMO = re.compile(r"<(points?)\b([^<>]*?)/?>(?:([^<]*)</\1>)?", re.I)
_ATTR = re.compile(r'([A-Za-z_]\w*)\s*=\s*"([^"]*)"')
_BOX_TOKENS = re.compile(r"<\|box_start\|>(.*?)(?:<\|box_end\|>|$)", re.S)
_REF_TOKENS = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>", re.S)
_BARE_BOX = re.compile(rf"([^()\n]*?)\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_JSON_KEYS = (("bbox_2d", 4), ("point_2d", 2), ("bbox", 4), ("point", 2))


def _json_dicts(text: str) -> tuple[list[Any], int]:
    """The entries of the first JSON list (or object) in ``text``; a cut-off list keeps its whole objects."""
    for chunk in [*_FENCE.findall(text), text.strip()]:
        try:
            data = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(data, dict | list):
            return [data] if isinstance(data, dict) else data, 0
    found, bad = [], 0
    for snippet in _FLAT_OBJECT.findall(text):
        try:
            found.append(json.loads(snippet))
        except ValueError:
            bad += 1
    return found, bad


def _flatten(v: Any) -> list[Any]:
    return [x for item in v for x in (_flatten(item) if isinstance(item, list | tuple) else [item])]


def parse_qwen_json(text: str) -> tuple[list[Raw], int]:
    """Qwen2.5-VL / Qwen3-VL JSON: ``bbox_2d`` (4 numbers) or ``point_2d`` (2), with ``label``."""
    entries, bad = _json_dicts(text)
    items: list[Raw] = []
    for e in entries:
        coords = None
        if isinstance(e, dict):
            for key, n in _JSON_KEYS:
                v = e.get(key)
                if isinstance(v, list) and len(_flatten(v)) == n:
                    coords = _flatten(v)
                    break
        if coords is None:
            bad += 1
            continue
        label = e.get("label")
        items.append(("" if label is None else str(label), coords))
    return items, bad


def parse_molmo(text: str) -> tuple[list[Raw], int]:
    """Molmo's ``<point x= y=>`` and ``<points x1= y1= x2= y2= …>`` tags (percentages)."""
    items: list[Raw] = []
    bad = 0
    for tag, attrs, inner in _MOLMO.findall(text):
        a = {k.lower(): v for k, v in _ATTR.findall(attrs)}
        label = a.get("alt") or (inner or "").strip()
        numbers = sorted({int(k[1:]) for k in a if re.fullmatch(r"[xy]\d+", k)})
        keys = [("x", "y")] if tag.lower() == "point" or not numbers else [(f"x{i}", f"y{i}") for i in numbers]
        for kx, ky in keys:
            if kx in a and ky in a:
                items.append((label, [a[kx], a[ky]]))
            else:
                bad += 1
    return items, bad


def parse_qwen2_tokens(text: str) -> tuple[list[Raw], int]:
    """Qwen2-VL's box tokens; each box takes the label of the object reference just before it."""
    items: list[Raw] = []
    bad, start = 0, 0
    boxes = list(_BOX_TOKENS.finditer(text))
    if not boxes:  # special tokens stripped by the server: "label(x1,y1),(x2,y2)"
        return [(m.group(1).strip(" \t,;:-*\"'"), list(m.groups()[1:])) for m in _BARE_BOX.finditer(text)], 0
    for m in boxes:
        refs = _REF_TOKENS.findall(text, start, m.start())
        numbers = re.findall(_NUM, m.group(1))
        if len(numbers) in (2, 4):
            items.append((refs[-1].strip() if refs else "", numbers))
        else:
            bad += 1
        start = m.end()
    return items, bad


_PARSERS: dict[str, Callable[[str], tuple[list[Raw], int]]] = {
    "qwen2.5-vl": parse_qwen_json, "qwen3-vl": parse_qwen_json,
    "molmo": parse_molmo, "qwen2-vl": parse_qwen2_tokens,
}
_SCALES: dict[str, tuple[float, float]] = {"qwen3-vl": (1000, 1000), "molmo": (100, 100), "qwen2-vl": (1000, 1000)}
_MODEL_NAMES = (("molmo", "molmo"), (r"qwen2[._]?5[-_.]?(vl|omni)", "qwen2.5-vl"),
                (r"qwen3", "qwen3-vl"), (r"qwen2[-_]?vl", "qwen2-vl"))


def convention_for_model(model: str) -> Convention | None:
    """The convention a model name says it was trained on (``Qwen/Qwen2.5-VL-7B`` → qwen2.5-vl)."""
    for pattern, convention in _MODEL_NAMES:
        if re.search(pattern, model or "", re.I):
            return convention  # type: ignore[return-value]
    return None


def detect(text: str, hint: str | None = None) -> Convention | None:
    """The convention ``text`` is written in; ``hint`` (the one asked for) settles JSON whose
    numbers all fit 0-1000. None when nothing in the text looks like points or boxes."""
    if "<|box_start|>" in text:
        return "qwen2-vl"
    if _MOLMO.search(text):
        return "molmo"
    items, _ = parse_qwen_json(text)
    if items:
        numbers = [_number(v) for _, coords in items for v in coords]
        if any(v is not None and v > 1000 for v in numbers):
            return "qwen2.5-vl"
        return hint if hint in ("qwen2.5-vl", "qwen3-vl") else "qwen3-vl"  # type: ignore[return-value]
    return "qwen2-vl" if _BARE_BOX.search(text) else None


def _check(convention: str) -> None:
    if convention != "auto" and convention not in CONVENTIONS:
        raise ConfigError(f"unknown grounding convention {convention!r} (choose from auto, {', '.join(CONVENTIONS)})")


def _number(v: Any) -> float | None:
    try:
        return x if math.isfinite(x := float(v)) else None
    except (TypeError, ValueError):
        return None


def _unit(v: Any, scale: float) -> float | None:
    """``v / scale`` clamped to [0, 1]; None when not a number or further than ``SLACK`` outside."""
    x = _number(v)
    return None if x is None or not -SLACK <= x / scale <= 1 + SLACK else min(1.0, max(0.0, x / scale))


def parse(text: str, convention: str = "auto", *, image_size: tuple[int, int] | None = None,
          input_size: tuple[int, int] | None = None, hint: str | None = None,
          min_pixels: int = QWEN25_MIN_PIXELS, max_pixels: int = QWEN25_MAX_PIXELS,
          dedup: float = DEDUP) -> Grounding:
    """Read a model's answer into a ``Grounding``.

    ``convention``: one of ``CONVENTIONS`` to force it, or ``"auto"`` (see ``detect``).
    ``image_size``: (width, height) of the original image. Qwen2.5-VL pixels need the size of the
    resized input: ``input_size`` if given, else ``smart_resize(*image_size, min_pixels=…, max_pixels=…)``."""
    _check(convention)
    conv = detect(text, hint) if convention == "auto" else convention
    if conv is None:
        return Grounding(image_size=image_size, raw=text)
    if conv == "qwen2.5-vl":
        if input_size is None and image_size is None:
            raise ConfigError("qwen2.5-vl coordinates are pixels of the resized input: pass image_size or input_size")
        scale = input_size or smart_resize(*image_size, min_pixels=min_pixels, max_pixels=max_pixels)  # type: ignore[misc]
    else:
        scale = _SCALES[conv]
    items, dropped = _PARSERS[conv](text)
    kept: list[Annotation] = []
    duplicates = 0
    w, h = image_size or (1, 1)
    for label, coords in items:
        units = [_unit(v, scale[i % 2]) for i, v in enumerate(coords)]
        if None in units:
            dropped += 1
            continue
        xs, ys = sorted(units[0::2]), sorted(units[1::2])  # a point: one x, one y
        x1, y1, x2, y2 = xs[0], ys[0], xs[-1], ys[-1]
        point = ((x1 + x2) / 2, (y1 + y2) / 2)
        box = (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None
        if any(math.hypot((point[0] - k.point[0]) * w, (point[1] - k.point[1]) * h) < dedup * max(w, h)
               for k in kept):
            duplicates += 1
            continue
        kept.append(Annotation(index=len(kept) + 1, label=label.strip()[:200], point=point, box=box,
                               source=conv))  # type: ignore[arg-type]
    return Grounding(annotations=tuple(kept), image_size=image_size, convention=conv, raw=text,
                     dropped=dropped, duplicates=duplicates)


# -- asking an engine --------------------------------------------------------------------------
def grounding_prompt(question: str, convention: str, kind: Kind = "points") -> str:
    """The user's ``question`` with the instruction to answer in ``convention`` (prompts/grounding.yaml)."""
    table = prompts.load("grounding")["conventions"]
    if convention not in table or kind not in table[convention]:
        raise ConfigError(f"no grounding prompt for {convention!r} {kind!r}")
    return table[convention][kind].format(question=question.strip())




def image_part(image: ImageInput) -> tuple[dict[str, Any], tuple[int, int]]:
    """An OpenAI ``image_url`` content part for ``image`` and the image's (width, height).

    ``image``: a file path, encoded bytes, a PIL image, a ``data:`` URL, or an ``image_url`` part
    (returned unchanged). Files and bytes are sent as they are; a PIL image is sent as PNG."""
    if isinstance(image, str) and image.startswith("data:"):
        image = {"type": "image_url", "image_url": {"url": image}}
    if isinstance(image, dict):
        return image, _load(image).size
    data = to_png(image) if isinstance(image, Image.Image) else _bytes(image)
    img = _open(data)
    url = f"data:{Image.MIME.get(img.format or '', 'image/png')};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}, img.size


def ground(engine: Engine, image: ImageInput, question: str, *, convention: str = "auto",
           kind: Kind = "points", max_tokens: int = 2048, min_pixels: int = QWEN25_MIN_PIXELS,
           max_pixels: int = QWEN25_MAX_PIXELS, dedup: float = DEDUP) -> Grounding:
    """Ask ``engine`` where the objects of ``question`` are in ``image``; one request, greedy.

    ``convention="auto"`` asks in the convention the model's name implies (else the YAML's
    default, qwen3-vl) and reads whichever convention comes back; a named one is asked for and
    forced. ``min_pixels``/``max_pixels``: the server's Qwen2.5-VL resize bounds."""
    if not question.strip():
        raise ConfigError("the question is empty")
    _check(convention)
    part, size = image_part(image)
    asked = convention if convention != "auto" else (
        convention_for_model(engine.model) or prompts.load("grounding")["default"])
    request = ChatRequest(messages=[{"role": "user", "content": [
        part, {"type": "text", "text": grounding_prompt(question, asked, kind)}]}],
        max_tokens=max_tokens, temperature=0.0)
    result = engine.generate(request)
    g = parse(result.text, convention, image_size=size, hint=asked, min_pixels=min_pixels,
              max_pixels=max_pixels, dedup=dedup)
    return g.model_copy(update={"model": result.model, "usage": result.usage})
