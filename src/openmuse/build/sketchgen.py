"""Random but plausible page wireframes drawn with Pillow, with their ground truth: the tests and
the measurements of ``sketch.read_sketch`` draw their own sketches here (nothing is downloaded).

``make_sketch(seed)`` draws a clean sketch: wobbly hand-drawn rectangles on white paper, a label
written inside each (HEADER, NAV, BANNER, PHOTO, SIGN UP, ...), an X across picture boxes.
``make_sketch(seed, photo=True)`` makes it look photographed: tinted paper, uneven lighting, a
small rotation (at most 2 degrees, about the centre), blur, sensor noise and JPEG artefacts.

The ground truth is the list of drawn boxes (normalised to the sheet, before any rotation) with
the kind each label stands for. ``measure(seeds, photo)`` scores ``read_sketch`` and the rendered
page on such sketches: ``python -m openmuse.build.sketchgen 1 20 [photo]``."""

from __future__ import annotations

import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .sketch import Box

LABELS = {
    "header": ["HEADER", "HEADER", "TOP BAR"],
    "nav": ["NAV", "MENU", "LINKS", "NAV"],
    "hero": ["HERO", "BANNER", "HERO"],
    "image": ["IMAGE", "PHOTO", "PICTURE", "IMG", ""],
    "text": ["TEXT", "TEXT", "ABOUT", "PARAGRAPH"],
    "card": ["CARD", "FEATURE", "CARD", "PRODUCT"],
    "button": ["BUTTON", "SIGN UP", "SUBMIT", "BUY NOW"],
    "form": ["FORM", "CONTACT", "EMAIL"],
    "footer": ["FOOTER", "FOOTER", "BOTTOM"],
}
PAPERS = [(250, 248, 240), (245, 236, 214), (228, 236, 246), (246, 232, 234), (232, 242, 228)]
PENS = [(28, 28, 34), (30, 48, 140), (60, 60, 66), (20, 20, 20)]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def _plan(rng: random.Random, w: int, h: int) -> list[list[tuple[str, float, float, float]]]:
    """Rows of (kind, x0, x1, height) in pixels, x as absolute positions; heights before fitting."""
    m = rng.randint(40, 70)
    gap = rng.randint(26, 44)
    left, right = m, w - m
    full = right - left

    def split(n: int) -> list[tuple[float, float]]:
        if n == 1:
            return [(left, right)]
        weights = [rng.uniform(0.7, 1.3) for _ in range(n)]
        usable = full - gap * (n - 1)
        out, x = [], float(left)
        for wt in weights:
            cw = usable * wt / sum(weights)
            out.append((x, x + cw))
            x += cw + gap
        return out

    rows: list[list[tuple[str, float, float, float]]] = []
    target = rng.randint(4, 10)
    hh = rng.randint(80, 120)
    if rng.random() < 0.35:  # logo-ish header on the left, the menu beside it
        cut = left + full * rng.uniform(0.28, 0.4)
        rows.append([("header", left, cut, hh), ("nav", cut + gap, right, hh)])
    else:
        rows.append([("header", left, right, hh)])
        if rng.random() < 0.4:
            rows.append([("nav", left, right, rng.randint(55, 75))])
    rows.append([("hero", left, right, rng.randint(220, 330))])
    budget = target - sum(len(r) for r in rows) - 2  # the button and the footer come last
    form: list[tuple[str, float, float, float]] = []
    if budget >= 1 and rng.random() < 0.6:
        if budget >= 2 and rng.random() < 0.4:
            (a0, a1), (b0, b1) = split(2)
            form = [("text", a0, a1, 180), ("form", b0, b1, 180)]
        else:
            form = [("form", left, left + full * rng.uniform(0.5, 1.0), rng.randint(140, 190))]
        budget -= len(form)
    while budget > 0 and len(rows) < 7:
        n = min(rng.choice([1, 2, 3, 3, 2]), budget)
        kinds = [rng.choice(["card", "image", "text", "card", "image"]) for _ in range(n)]
        rh = rng.randint(160, 260)
        rows.append([(k, a, b, rh) for k, (a, b) in zip(kinds, split(n))])
        budget -= n
    if form:
        rows.append(form)
    bw = rng.randint(200, 320)
    bx = rng.choice([left, (w - bw) / 2, right - bw])
    rows.append([("button", bx, bx + bw, rng.randint(70, 90))])
    rows.append([("footer", left, right, rng.randint(70, 105))])
    return _fit(rows, m, gap, h)


def _fit(rows, m, gap, h):
    """Scale the row heights so that the rows fill the sheet (margins and gaps kept); drop content
    rows while they cannot fit with buttons at least 55 px tall."""
    while True:
        avail = h - 2 * m - gap * (len(rows) - 1)
        total = sum(r[0][3] for r in rows)
        scale = min(avail / total, 1.35)
        if scale * min(r[0][3] for r in rows) >= 55 or len(rows) <= 4:
            break
        drop = max((i for i, r in enumerate(rows) if r[0][0] in ("card", "image", "text")), default=None)
        if drop is None:
            break
        rows.pop(drop)
    out, y = [], float(m)
    for r in rows:
        rh = r[0][3] * scale
        out.append([(k, x0, x1, y, y + rh) for k, x0, x1, _ in r])
        y += rh + gap
    return out


def _wobbly_line(draw, rng, p, q, pen, colour):
    """A hand-drawn stroke from p to q: a smooth random sideways drift and a slight bow."""
    (x0, y0), (x1, y1) = p, q
    length = math.hypot(x1 - x0, y1 - y0)
    n = max(2, int(length / 35))
    nx, ny = -(y1 - y0) / (length or 1), (x1 - x0) / (length or 1)
    drift, pts = 0.0, []
    bow = rng.uniform(-3, 3)
    for i in range(n + 1):
        t = i / n
        drift = max(-3.5, min(3.5, drift + rng.gauss(0, 0.9)))
        off = drift * math.sin(math.pi * t) + bow * math.sin(math.pi * t)
        pts.append((x0 + (x1 - x0) * t + nx * off, y0 + (y1 - y0) * t + ny * off))
    draw.line(pts, fill=colour, width=pen, joint="curve")


def _rect(draw, rng, x0, y0, x1, y1, pen, colour):
    """Four strokes; each end overshoots the corner or stops short of it by a few pixels."""
    def e():  # along the stroke: past the corner (+) or short of it (-)
        return rng.uniform(-7, 8)

    def j():  # across the stroke
        return rng.uniform(-2, 2)
    _wobbly_line(draw, rng, (x0 - e(), y0 + j()), (x1 + e(), y0 + j()), pen, colour)
    _wobbly_line(draw, rng, (x1 + j(), y0 - e()), (x1 + j(), y1 + e()), pen, colour)
    _wobbly_line(draw, rng, (x1 + e(), y1 + j()), (x0 - e(), y1 + j()), pen, colour)
    _wobbly_line(draw, rng, (x0 + j(), y1 + e()), (x0 + j(), y0 - e()), pen, colour)


def _label(img, rng, text, x0, y0, x1, y1, colour, centre_free: bool):
    """``text`` written inside the box, slightly tilted; off the centre when an X crosses it."""
    bw, bh = x1 - x0, y1 - y0
    size = rng.randint(30, 40)
    while size > 16:
        f = _font(size)
        l, t, r, b = f.getbbox(text)
        if r - l + 40 < bw and b - t + 36 < bh:
            break
        size -= 3
    else:
        return
    f = _font(size)
    l, t, r, b = f.getbbox(text)
    tile = Image.new("L", (r - l + 16, b - t + 16), 0)
    ImageDraw.Draw(tile).text((8 - l, 8 - t), text, font=f, fill=255,
                              stroke_width=rng.choice([0, 0, 1]), stroke_fill=255)
    tile = tile.rotate(rng.uniform(-3, 3), resample=Image.BICUBIC, expand=True)
    tw, th = tile.size
    if centre_free:  # beside the X's crossing point: in the top-left quarter
        px = x0 + 14 + rng.uniform(0, max(0, bw / 2 - tw - 20))
        py = y0 + 10 + rng.uniform(0, max(0, bh / 4 - th / 2))
    elif rng.random() < 0.65:
        px, py = x0 + (bw - tw) / 2 + rng.uniform(-10, 10), y0 + (bh - th) / 2 + rng.uniform(-5, 5)
    else:
        px, py = x0 + 16 + rng.uniform(0, 20), y0 + 12 + rng.uniform(0, 8)
    px = min(max(px, x0 + 8), x1 - tw - 8)
    py = min(max(py, y0 + 6), y1 - th - 6)
    img.paste(Image.new("RGB", tile.size, colour), (int(px), int(py)), tile)


def make_sketch(seed: int, photo: bool = False) -> tuple[Image.Image, list[Box]]:
    """A wireframe sketch (RGB) and its ground-truth boxes (sorted top-to-bottom, left-to-right)."""
    rng = random.Random(seed * 7919 + (1 if photo else 0))
    w, h = (1000, 1400) if rng.random() < 0.7 else (1400, 1000)
    w, h = w + rng.randint(-40, 40), h + rng.randint(-40, 40)
    paper = rng.choice(PAPERS) if photo else (255, 255, 255)
    pen_colour = rng.choice(PENS) if photo else (20, 20, 20)
    img = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(img)
    pen = rng.randint(2, 4)
    rows = _plan(rng, w, h)
    if rng.random() < 0.2:  # the whole sheet outlined
        _rect(draw, rng, 14, 14, w - 14, h - 14, pen, pen_colour)
    truth = []
    for row in rows:
        for kind, x0, x1, y0, y1 in row:
            _rect(draw, rng, x0, y0, x1, y1, pen, pen_colour)
            label = rng.choice(LABELS[kind])
            if kind == "image":
                i = rng.uniform(0, 6)
                _wobbly_line(draw, rng, (x0 + i, y0 + i), (x1 - i, y1 - i), pen, pen_colour)
                _wobbly_line(draw, rng, (x1 - i, y0 + i), (x0 + i, y1 - i), pen, pen_colour)
            if label:
                _label(img, rng, label, x0, y0, x1, y1, pen_colour, centre_free=kind == "image")
            truth.append(Box(x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h, label, kind))
    if photo:
        img = _photograph(img, rng, paper)
    truth.sort(key=lambda b: (round(b.y, 2), b.x))
    return img, truth


def _photograph(img: Image.Image, rng: random.Random, paper) -> Image.Image:
    w, h = img.size
    img = img.rotate(rng.uniform(-2, 2), resample=Image.BICUBIC, fillcolor=paper)
    a = np.asarray(img, dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    lin = ((xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang))  # -0.7 .. 0.7
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    vign = ((xx - cx) ** 2 + (yy - cy) ** 2) / (w * w + h * h)
    light = 0.86 + rng.uniform(0.12, 0.25) * lin - rng.uniform(0.1, 0.3) * vign
    a = a * np.clip(light, 0.5, 1.05)[..., None]
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    a = np.asarray(img, dtype=np.float32) + nrng.normal(0, rng.uniform(3, 9), (h, w, 1))
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(55, 85))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def box_iou(a: Box, b: Box) -> float:
    inter = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x)) * \
        max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[Box], found: list[Box]) -> list[tuple[Box, Box | None, float]]:
    """Each true box with the found box overlapping it most (greedy, each found box used once)."""
    pairs = sorted(((box_iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)),
                   reverse=True)
    got: dict[int, tuple[int, float]] = {}
    for v, i, j in pairs:
        if v > 0 and i not in got and j not in {jj for jj, _ in got.values()}:
            got[i] = (j, v)
    return [(t, found[got[i][0]], got[i][1]) if i in got else (t, None, 0.0) for i, t in enumerate(truth)]
