"""A page built from a sketch: ``muse build --image sketch.png "a landing page like this"``.

``read_sketch`` finds the layout in a photo or drawing of a wireframe (rectangles with labels
such as HEADER, NAV, IMAGE, BUTTON, FOOTER) with OpenCV: the paper's uneven lighting divided
out, the ink thresholded, small gaps of wobbly hand-drawn lines closed, the contours' tree
searched for near-rectangles (the outline's outer edge and its hole are one box; a label's
letters are not boxes; a frame around the whole sheet or around several boxes is dropped), a
small rotation of the photo undone. Each box's label is read by Tesseract; an X drawn across a
box makes it a picture. ``layout_html`` turns the boxes into one self-contained accessible page
whose elements sit where the sketch's boxes are (rows and columns cut recursively, widths in
percent of their row, heights proportional to the sheet), and ``layout_iou`` measures that
overlap in a rendered page."""

from __future__ import annotations

import difflib
import html
import re
import shutil
from dataclasses import dataclass

import numpy as np

from ..errors import MediaError, MuseError

KINDS = ("header", "nav", "hero", "image", "text", "button", "form", "card", "footer", "section")
WORDS = {  # kind: label words (OCR text is matched to these, allowing small misreadings)
    "footer": "footer foot bottom copyright",
    "header": "header heading masthead topbar top title head",
    "nav": "nav navbar navigation menu logo links link tabs",
    "form": "form email input contact newsletter field search register subscribe login",
    "button": "button btn cta signup submit buy order join download start go",
    "hero": "hero banner splash jumbotron headline intro",
    "card": "card cards feature features product products item tile pricing service testimonial",
    "image": "image img images photo photos picture pic gallery video media icon graphic",
    "text": "text paragraph copy content body lorem about description article blog bio words",
    "section": "section block box area",
}
VOCAB = {w: k for k, ws in WORDS.items() for w in ws.split()}
PHRASES = {"sign up": "button", "buy now": "button", "get started": "button", "call to action": "button",
           "log in": "form", "top bar": "header", "text box": "text"}
NO_BOXES = "no layout boxes found in the sketch: draw the sections as rectangles"


@dataclass(frozen=True)
class Box:
    """One box of the sketch, normalised to the image (0..1); ``kind`` is one of ``KINDS``."""
    x: float
    y: float
    w: float
    h: float
    label: str = ""
    kind: str = "section"


def kind_of(label: str) -> str | None:
    """The kind a label names ('SIGN UP' -> button), or None when it names none."""
    low = " ".join(re.findall(r"[a-z]+", label.lower()))
    for phrase, kind in PHRASES.items():
        if phrase in low:
            return kind
    found = []
    for word in low.split():
        hit = VOCAB.get(word) or (difflib.get_close_matches(word, VOCAB, 1, 0.75) or [None])[0]
        if hit and (len(word) >= 3 or word in VOCAB):
            found.append(VOCAB[hit] if hit in VOCAB else hit)
    return min(found, key=list(WORDS).index) if found else None


def viewport_for(image_size: tuple[int, int], width: int = 1024) -> tuple[int, int]:
    """The browser viewport whose aspect is the sketch's: (1024, 1024 * H / W)."""
    w, h = image_size
    return width, max(1, round(width * h / max(w, 1)))


# ---------------------------------------------------------------- detection

def _odd(n: float) -> int:
    return max(3, int(n) | 1)


def _ink(gray):
    """Ink as 255 on 0: the paper's lighting estimated (strokes closed away) and divided out."""
    import cv2
    k = _odd(max(gray.shape) / 45)
    g = cv2.GaussianBlur(gray, (3, 3), 0)
    bg = cv2.blur(cv2.morphologyEx(g, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)), (k, k))
    norm = cv2.divide(g, np.maximum(bg, 1), scale=255)
    paper = float(np.median(norm))
    sigma = 1.4826 * float(np.median(np.abs(norm.astype(np.float32) - paper)))  # the paper's noise
    thr = min(paper - 20, max(paper - 8 * sigma, (paper + float(np.percentile(norm, 1))) / 2))
    ink = (norm < thr).astype(np.uint8) * 255
    n, lab, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < 12
    small[0] = False
    ink[small[lab]] = 0
    return ink


def _robust_rect(c, x, y, w, h):
    """The rectangle a filled contour mostly covers: rows and columns at least half full (an
    overshooting corner or a wobble does not widen it)."""
    import cv2
    m = np.zeros((h, w), np.uint8)
    cv2.drawContours(m, [c], -1, 1, -1, offset=(-x, -y))
    cols, rows = np.nonzero(m.sum(0) >= 0.5 * m.sum(0).max())[0], np.nonzero(m.sum(1) >= 0.5 * m.sum(1).max())[0]
    return np.array([x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1], float)


def _candidates(ink):
    """Near-rectangular contours of the closed ink: (rect x0,y0,x1,y1, is_hole, angle)."""
    import cv2
    H, W = ink.shape
    kc = _odd(max(H, W) * 0.009)
    lines = cv2.HoughLinesP(ink, 1, np.pi / 180, 60, minLineLength=int(0.06 * max(H, W)), maxLineGap=8)
    flat, diagonal = ink.copy(), []
    for x1, y1, x2, y2 in ([] if lines is None else lines[:, 0]):
        a = np.degrees(np.arctan2(abs(y2 - y1), abs(x2 - x1)))
        if 12 < a < 78:  # an X's stroke: erased (not its ends), so the box's hole stays whole
            diagonal.append((x1, y1, x2, y2))
            d = np.array([x2 - x1, y2 - y1], float)
            e = d / np.hypot(*d) * 1.5 * kc
            p, q = np.array([x1, y1]) + e, np.array([x2, y2]) - e
            if np.dot(q - p, d) > 0:
                cv2.line(flat, tuple(int(v) for v in p), tuple(int(v) for v in q), 0, kc)
    closed = cv2.dilate(flat, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kc, kc)))
    contours, hier = cv2.findContours(closed, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for i, c in enumerate(contours):
        x, y, w, h = cv2.boundingRect(c)
        if w < 0.03 * W or h < 0.02 * H or w * h < 0.002 * W * H:
            continue
        (_, _), (rw, rh), ang = cv2.minAreaRect(c)
        if cv2.contourArea(c) < 0.85 * rw * rh:
            continue
        if len(cv2.approxPolyDP(c, 0.02 * cv2.arcLength(c, True), True)) > 8:
            continue
        depth, p = 0, hier[0][i][3]
        while p >= 0:
            depth, p = depth + 1, hier[0][p][3]
        ang = (ang + 45) % 90 - 45
        holes, j = 0.0, hier[0][i][2]
        while j >= 0:  # the paper an outline encloses (a word's blob encloses next to none)
            holes, j = holes + cv2.contourArea(contours[j]), hier[0][j][0]
        fill = 1.0 if depth % 2 else holes / max((w - 2 * kc) * (h - 2 * kc), 1)
        out.append((_robust_rect(c, x, y, w, h), depth % 2 == 1, ang, max(w, h), fill))
    return out, kc, diagonal


def _coverage(ink, r, pad):
    """How much of the rectangle's outline has ink within ``pad`` pixels (0..1)."""
    x0, y0, x1, y1 = (int(round(v)) for v in r)
    H, W = ink.shape
    def band(a0, a1, b0, b1, axis):
        sl = ink[max(b0, 0):min(b1, H), max(a0, 0):min(a1, W)] if axis == 0 else \
            ink[max(a0, 0):min(a1, H), max(b0, 0):min(b1, W)]
        return (sl.max(axis=axis) > 0).mean() if sl.size else 0.0
    return min(band(x0, x1, y0 - pad, y0 + pad, 0), band(x0, x1, y1 - pad, y1 + pad, 0),
               band(y0, y1, x0 - pad, x0 + pad, 1), band(y0, y1, x1 - pad, x1 + pad, 1))


def _select(ink, cands, kc):
    """Boxes from candidates: an outline's outer edge and its hole merged (the stroke's middle),
    letters and scribbles refused (a box is an outline around mostly empty paper), frames
    around several boxes dropped, boxes inside a kept box dropped."""
    cands = sorted(cands, key=lambda c: -(c[0][2] - c[0][0]) * (c[0][3] - c[0][1]))
    tol = 2 * kc + 6
    used, ents, strokes = set(), [], []
    for i, (r, hole, _, _, fill) in enumerate(cands):
        if i in used:
            continue
        twin = next((j for j in range(i + 1, len(cands)) if j not in used and cands[j][1] != hole
                     and np.abs(cands[j][0] - r).max() <= tol), None)
        if twin is not None:
            used.add(twin)
            outer, inner = (r, cands[twin][0]) if not hole else (cands[twin][0], r)
            strokes.append(np.median((inner - outer) * [1, 1, -1, -1]))
            ents.append(((outer + inner) / 2, None))
        elif fill >= 0.15:
            ents.append((r, hole))
    half = float(np.median(strokes)) / 2 if strokes else 2.0
    rects = []
    for r, hole in ents:
        if hole is not None:
            r = r + np.array([-half, -half, half, half]) * (1 if hole else -1)
        x0, y0, x1, y1 = r
        m = 2 * half + 3
        inside = ink[int(y0 + m):int(y1 - m), int(x0 + m):int(x1 - m)]
        if hole is not None and (inside.size == 0 or (inside > 0).mean() > 0.55):
            continue
        if _coverage(ink, r, int(2 * half + 4)) < 0.75:
            continue
        rects.append(r)

    def within(a, b):  # a inside b
        t = tol
        return a[0] >= b[0] - t and a[1] >= b[1] - t and a[2] <= b[2] + t and a[3] <= b[3] + t and a is not b
    frames = [b for b in rects if sum(within(a, b) for a in rects) >= 2]
    rects = [b for b in rects if not any(b is f for f in frames)]
    return [b for b in rects if not any(within(b, a) for a in rects)], half


def _has_x(lines, r):
    """Two long strokes along the box's diagonals (one each way): an X, a picture placeholder.
    ``lines`` are the sheet's long diagonal segments; text's short strokes are not among them."""
    x0, y0, x1, y1 = r
    diag = np.degrees(np.arctan2(y1 - y0, x1 - x0))
    got = {1: 0.0, -1: 0.0}
    for ax, ay, bx, by in lines:
        mx, my = (ax + bx) / 2, (ay + by) / 2
        if not (x0 < mx < x1 and y0 < my < y1):
            continue
        sign = 1 if (bx - ax) * (by - ay) > 0 else -1
        if abs(np.degrees(np.arctan2(abs(by - ay), abs(bx - ax))) - diag) <= 12:
            got[sign] += np.hypot(bx - ax, by - ay)
    return min(got.values()) >= 0.35 * np.hypot(x1 - x0, y1 - y0)


def _label_crop(ink, r, inset):
    """The ink inside the box that does not touch the crop's edge (the outline and an X's
    strokes do), as black on white, trimmed; None when there is none."""
    import cv2
    x0, y0, x1, y1 = (int(round(v)) for v in r)
    sub = ink[y0 + inset:y1 - inset, x0 + inset:x1 - inset]
    if sub.size == 0:
        return None
    n, lab, stats, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
    h, w = sub.shape
    x, y, bw, bh, area = (stats[:, k] for k in range(5))
    keep = (area >= 15) & (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h) & (bh < 0.9 * h)
    keep[0] = False
    mask = keep[lab]
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return np.where(mask, 0, 255).astype(np.uint8)[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _read_labels(crops) -> list[str]:
    """Every box's label in one Tesseract run: the crops stacked on one white sheet, one band
    each, read word by word and handed back by band."""
    import cv2
    import pytesseract
    bands, y, parts = [], 30, []
    for c in crops:
        if c is None:
            bands.append(None)
            continue
        f = min(3.0, max(0.5, 44 / c.shape[0])) if c.shape[0] < 90 else 1.0
        c = cv2.resize(c, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
        parts.append((y, c))
        bands.append((y, y + c.shape[0]))
        y += c.shape[0] + 50
    if not parts:
        return [""] * len(crops)
    sheet = np.full((y, max(c.shape[1] for _, c in parts) + 60), 255, np.uint8)
    for top, c in parts:
        sheet[top:top + c.shape[0], 30:30 + c.shape[1]] = c
    try:
        d = pytesseract.image_to_data(sheet, lang="eng", config="--psm 6", timeout=60,
                                      output_type=pytesseract.Output.DICT)
    except (pytesseract.TesseractError, RuntimeError) as e:
        raise MuseError(f"OCR failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    words: list[list[tuple[int, int, str]]] = [[] for _ in crops]
    for text, top, left, hgt in zip(d["text"], d["top"], d["left"], d["height"]):
        text = re.sub(r"[^A-Za-z0-9&'!?.,-]", "", text or "")
        mid = top + hgt / 2
        i = next((i for i, b in enumerate(bands) if b and b[0] - 20 <= mid <= b[1] + 20), None)
        if text and i is not None:
            words[i].append((top // 20, left, text))
    return [" ".join(t for _, _, t in sorted(ws)) for ws in words]


def _rows(boxes):
    """Indices grouped into rows by vertical overlap (each sorted left to right), top to bottom."""
    order = sorted(range(len(boxes)), key=lambda i: boxes[i].y)
    rows, bottom = [], -1.0
    for i in order:
        b = boxes[i]
        if rows and b.y < bottom - 0.3 * min(b.h, bottom - min(boxes[j].y for j in rows[-1])):
            rows[-1].append(i)
            bottom = max(bottom, b.y + b.h)
        else:
            rows.append([i])
            bottom = b.y + b.h
    return [sorted(r, key=lambda i: boxes[i].x) for r in rows]


def read_sketch(img, ocr: bool = True) -> list[Box]:
    """The boxes of a sketched page layout, top to bottom then left to right. Raises MediaError
    when no box is found; a missing Tesseract is a one-line MuseError (``ocr=False``: no labels)."""
    import cv2
    if ocr and shutil.which("tesseract") is None:
        raise MuseError("reading a sketch's labels needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-eng")
    gray = np.asarray(img.convert("L"))
    H0, W0 = gray.shape
    s = 1400 / max(H0, W0)
    if abs(s - 1) > 0.01:
        gray = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    H, W = gray.shape
    ink = _ink(gray)
    cands, kc, lines = _candidates(ink)
    big = [c[2] for c in cands if c[3] > 0.15 * max(H, W)]
    angle = float(np.median(big)) if big else 0.0
    if 0.3 < abs(angle) < 10:
        rot = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
        gray = cv2.warpAffine(gray, rot, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        ink = _ink(gray)
        cands, kc, lines = _candidates(ink)
    rects, half = _select(ink, cands, kc)
    if not rects:
        raise MediaError(NO_BOXES)
    inset = int(max(1.5, half - kc / 2) + 3)  # just past the pen's stroke
    labels = _read_labels([_label_crop(ink, r, inset) for r in rects]) if ocr else [""] * len(rects)
    found = []
    for r, label in zip(rects, labels):
        kind = kind_of(label)
        if kind in (None, "section", "image") and _has_x(lines, r):
            kind = "image"
        x0, y0, x1, y1 = np.clip(r, 0, [W, H, W, H])
        found.append(Box(x0 / W, y0 / H, (x1 - x0) / W, (y1 - y0) / H, label, kind or ""))
    found = [b if b.kind else _by_position(b, found) for b in found]
    return [found[i] for row in _rows(found) for i in row]


def _by_position(b: Box, boxes: list[Box]) -> Box:
    """A kind for an unlabelled box: wide at the top -> header, wide at the bottom -> footer."""
    top, bottom = min(o.y for o in boxes), max(o.y + o.h for o in boxes)
    kind = "section"
    if b.w >= 0.6 and b.y <= top + 0.02 and len(boxes) > 1:
        kind = "header"
    elif b.w >= 0.6 and b.y + b.h >= bottom - 0.02 and len(boxes) > 1:
        kind = "footer"
    elif b.w < 0.4 and b.h < 0.08:
        kind = "button"
    return Box(b.x, b.y, b.w, b.h, b.label, kind)
