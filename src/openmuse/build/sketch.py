"""A page from a sketch (``muse build --image sketch.png "a landing page like this"``).
``read_sketch`` finds a wireframe's boxes with OpenCV (lighting divided out, an X's strokes and the
labels' letters set aside, gaps bridged, the contour tree searched for near-rectangles; a slight
rotation undone) and reads their labels with Tesseract; ``layout_html`` writes one self-contained
accessible page whose elements sit where the boxes are; ``layout_iou`` measures that overlap."""

from __future__ import annotations

import difflib
import html
import re
import shutil
from dataclasses import dataclass

import numpy as np

from ..errors import MediaError, MuseError

KINDS = ("header", "nav", "hero", "image", "text", "button", "form", "card", "footer", "section")
WORDS = {  # kind: the label words naming it, in order of precedence ("SIGN UP FORM" is a form)
    "footer": "footer foot bottom copyright", "header": "header heading masthead topbar top title head",
    "nav": "nav navbar navigation menu logo links link tabs", "hero": "hero banner splash jumbotron intro",
    "form": "form email input contact newsletter field search register subscribe login",
    "button": "button btn cta signup submit buy order join download start go",
    "card": "card cards feature features product products item tile pricing service testimonial",
    "image": "image img images photo photos picture pic gallery video media icon graphic",
    "text": "text paragraph copy content body lorem about description article blog bio headline",
    "section": "section block box area"}
VOCAB = {w: k for k, ws in WORDS.items() for w in ws.split()}
PHRASES = {"sign up": "button", "buy now": "button", "get started": "button", "call to action": "button",
           "log in": "form", "top bar": "header", "text box": "text"}
SHOWN = set("about pricing contact gallery blog testimonial service newsletter login register search "
            "subscribe download order buy join signup submit start bio video".split())


@dataclass(frozen=True)
class Box:
    """One box of the sketch, normalised to the image (0..1); ``kind`` is one of ``KINDS``."""
    x: float
    y: float
    w: float
    h: float
    label: str = ""
    kind: str = "section"


def _vocab(word: str) -> str | None:  # the label word meant, allowing a misreading ('HEADFR')
    return word if word in VOCAB else (difflib.get_close_matches(word, VOCAB, 1, 0.75) or [None])[0]


def kind_of(label: str) -> str | None:
    """The kind a label names ('SIGN UP' -> button, 'PHOTO' -> image), None when none."""
    low = " ".join(re.findall(r"[a-z]+", label.lower()))
    hits = [k for p, k in PHRASES.items() if p in low] + \
        [VOCAB[v] for w in low.split() if (len(w) >= 3 or w in VOCAB) and (v := _vocab(w))]
    return min(hits, key=list(WORDS).index) if hits else None


def viewport_for(image_size: tuple[int, int], width: int = 1024) -> tuple[int, int]:
    """The browser viewport with the sketch's aspect: (1024, 1024 * H / W)."""
    return width, max(1, round(width * image_size[1] / max(image_size[0], 1)))


# ---------------------------------------------------------------- detection

def _ink(gray):
    """Ink as 255 on 0: the lighting divided out, a threshold clear of the paper's own noise."""
    import cv2
    k = int(max(gray.shape) / 45) | 1
    g = cv2.GaussianBlur(gray, (3, 3), 0)
    bg = cv2.blur(cv2.morphologyEx(g, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)), (k, k))
    norm = cv2.divide(g, np.maximum(bg, 1), scale=255)
    paper = float(np.median(norm))
    sigma = 1.4826 * float(np.median(np.abs(norm.astype(np.float32) - paper)))
    thr = min(paper - 20, max(paper - 8 * sigma, (paper + np.percentile(norm, 1)) / 2))
    return (norm < thr) * np.uint8(255)


def _candidates(ink):
    """Near-rectangular contours of the bridged ink: (rect, is_hole, angle, size, paper inside)."""
    import cv2
    H, W = ink.shape
    kc, n = int(max(H, W) * 0.009) | 1, int(0.02 * max(H, W)) | 1
    lines = cv2.HoughLinesP(ink, 1, np.pi / 180, 60, minLineLength=int(0.06 * max(H, W)), maxLineGap=8)
    flat, slanted = ink.copy(), []
    for x1, y1, x2, y2 in ([] if lines is None else lines[:, 0]):
        a = np.degrees(np.arctan2(abs(y2 - y1), abs(x2 - x1)))
        slanted += [(x1, y1, x2, y2)] if 2 < a < 88 else []
        if 12 < a < 78:  # an X's stroke: erased, so that its box's hole stays whole
            dx, dy = np.array([x2 - x1, y2 - y1]) / np.hypot(x2 - x1, y2 - y1) * kc
            cv2.line(flat, (int(x1 - dx), int(y1 - dy)), (int(x2 + dx), int(y2 + dy)), 0, kc)
    flat |= cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, n), np.uint8)) | \
        cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((n, 1), np.uint8))  # the box lines drawn back
    _, lab, st, _ = cv2.connectedComponentsWithStats(flat, connectivity=8)
    big, small = np.maximum(st[:, 2], st[:, 3]), np.minimum(st[:, 2], st[:, 3])
    letter = (big < 0.05 * max(H, W)) & (small >= 0.3 * big) & (np.arange(len(st)) > 0)
    flat[letter[lab]] = 0  # small compact blobs are letters: bridged to the outline they split a hole
    closed = cv2.dilate(flat, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kc, kc)))
    contours, hier = cv2.findContours(closed, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)  # edges and holes
    out = []
    for i, c in enumerate(contours):
        x, y, w, h = cv2.boundingRect(c)
        if w < 0.03 * W or h < 0.02 * H or w * h < 0.002 * W * H:
            continue
        _, (rw, rh), ang = cv2.minAreaRect(c)
        poly = cv2.approxPolyDP(c, 0.02 * cv2.arcLength(c, True), True)
        if cv2.contourArea(c) < 0.85 * rw * rh or len(poly) > 8:
            continue
        hole, holes, j = hier[0][i][3] >= 0, 0.0, hier[0][i][2]
        while j >= 0:  # the paper an outline encloses (a scribble's blob encloses next to none)
            holes, j = holes + cv2.contourArea(contours[j]), hier[0][j][0]
        m = np.zeros((h, w), np.uint8)  # the rectangle the filled contour mostly covers: rows and
        cv2.drawContours(m, [c], -1, 1, -1, offset=(-x, -y))  # columns half full, so that a wobble
        cs, rs = (np.nonzero(v >= 0.5 * v.max())[0] for v in (m.sum(0), m.sum(1)))  # or overshoot is ignored
        rect = np.array([x + cs[0], y + rs[0], x + cs[-1] + 1, y + rs[-1] + 1], float)
        fill = 1.0 if hole else holes / max((w - 2 * kc) * (h - 2 * kc), 1)
        out.append((rect, hole, (ang + 45) % 90 - 45, max(w, h), fill))
    return out, kc, slanted


def _select(ink, cands, kc):
    """Boxes (an outer edge and its hole are one); frames and boxes inside boxes dropped."""
    cands = sorted(cands, key=lambda c: -(c[0][2] - c[0][0]) * (c[0][3] - c[0][1]))
    tol, used, ents, strokes = 2 * kc + 6, set(), [], []
    for i, (r, hole, _, _, fill) in enumerate(cands):
        near = [j for j in range(i + 1, len(cands)) if {i, j}.isdisjoint(used) and cands[j][1] != hole]
        twin = next((j for j in near if np.abs(cands[j][0] - r).max() <= tol), None)
        if twin is not None:
            used.add(twin)
            outer, inner = (cands[twin][0], r) if hole else (r, cands[twin][0])
            strokes.append(np.median((inner - outer) * [1, 1, -1, -1]))
            ents.append(((outer + inner) / 2, None))
        elif fill >= 0.15 and i not in used:
            ents.append((r, hole))
    half = float(np.median(strokes)) / 2 if strokes else kc / 2 + 2
    rects = []
    for r, hole in ents:
        if hole is not None:  # a lone edge: moved to the stroke's middle; mostly paper inside
            r = r + np.array([-half, -half, half, half]) * (1 if hole else -1)
            m = 2 * half + 3
            inside = ink[int(r[1] + m):int(r[3] - m), int(r[0] + m):int(r[2] - m)]
            if inside.size == 0 or (inside > 0).mean() > 0.55:
                continue
        rects.append(r)

    def within(a, b):
        return a is not b and all(a[:2] >= b[:2] - tol) and all(a[2:] <= b[2:] + tol)
    rects = [b for b in rects if sum(within(a, b) for a in rects) < 2]
    return [b for b in rects if not any(within(b, a) for a in rects)], half


def _has_x(lines, r):
    """Long strokes along both of the box's diagonals: an X, a picture placeholder."""
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    diag, got = np.degrees(np.arctan2(h, w)), {1: 0.0, -1: 0.0}
    for ax, ay, bx, by in lines:
        mx, my = (ax + bx) / 2 - x0, (ay + by) / 2 - y0
        sign = 1 if (bx - ax) * (by - ay) > 0 else -1
        off = abs(my - (h * mx / w if sign > 0 else h - h * mx / w)) * w / np.hypot(w, h)
        turn = abs(np.degrees(np.arctan2(abs(by - ay), abs(bx - ax))) - diag)
        if 0 < mx < w and 0 < my < h and off <= 0.08 * min(w, h) + 6 and \
                turn <= max(3, 0.3 * min(diag, 90 - diag)):
            got[sign] += np.hypot(bx - ax, by - ay)
    return min(got.values()) >= 0.35 * np.hypot(w, h)


def _read_labels(ink, rects, inset) -> list[str]:
    """Every box's label in one Tesseract run: inside each box, the ink that does not touch the
    crop's edge (the outline and an X do), trimmed and stacked on one sheet, a band each."""
    import cv2
    import pytesseract
    bands, y, parts = [], 30, []
    for x0, y0, x1, y1 in (np.round(r).astype(int) for r in rects):
        sub = ink[max(0, y0 + inset):y1 - inset, max(0, x0 + inset):x1 - inset]
        _, lab, st, _ = cv2.connectedComponentsWithStats(sub, connectivity=8)
        h, w = sub.shape
        keep = (st[:, 4] >= 15) & (st[:, 0] > 0) & (st[:, 1] > 0) & (st[:, 0] + st[:, 2] < w) & \
            (st[:, 1] + st[:, 3] < h) & (st[:, 3] < 0.9 * h) & (np.arange(len(st)) > 0)
        bands.append(None)
        if keep.any():
            ys, xs = np.nonzero(keep[lab])
            c = np.where(keep[lab], 0, 255).astype(np.uint8)[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            f = min(3.0, max(0.5, 44 / c.shape[0])) if c.shape[0] < 90 else 1.0  # letters ~44 px tall
            c = cv2.resize(c, None, fx=f, fy=f, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
            parts.append((y, c))
            bands[-1], y = (y, y + c.shape[0]), y + c.shape[0] + 50
    if not parts:
        return [""] * len(rects)
    sheet = np.full((y, max(c.shape[1] for _, c in parts) + 60), 255, np.uint8)
    for top, c in parts:
        sheet[top:top + c.shape[0], 30:30 + c.shape[1]] = c
    try:
        d = pytesseract.image_to_data(sheet, lang="eng", config="--psm 6", timeout=60,
                                      output_type=pytesseract.Output.DICT)
    except (pytesseract.TesseractError, RuntimeError) as e:
        raise MuseError(f"OCR failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    words: list[list] = [[] for _ in rects]
    for text, top, left, hgt in zip(d["text"], d["top"], d["left"], d["height"]):
        text = re.sub(r"[^A-Za-z0-9&'!?.,-]", "", text or "")
        i = next((i for i, b in enumerate(bands) if b and b[0] - 20 <= top + hgt / 2 <= b[1] + 20), None)
        words[i].append((top // 20, left, text)) if text and i is not None else None
    return [" ".join(t for _, _, t in sorted(ws)) for ws in words]


def read_sketch(img, ocr: bool | None = None) -> list[Box]:
    """The boxes of a sketched page layout (a PIL image), top to bottom then left to right; a
    MediaError when there is none. ``ocr``: None reads labels when Tesseract is installed (else no
    labels), True requires it (a one-line MuseError when it is missing), False skips it."""
    import cv2
    if ocr and shutil.which("tesseract") is None:
        raise MuseError("reading a sketch's labels needs Tesseract: apt-get install tesseract-ocr "
                        "tesseract-ocr-eng")
    ocr = shutil.which("tesseract") is not None if ocr is None else ocr
    rgba = np.asarray(img.convert("RGBA"), np.float32)  # see-through pixels are white paper
    gray = (rgba[..., :3] @ [0.299, 0.587, 0.114] * rgba[..., 3] / 255 + 255 - rgba[..., 3]).astype(np.uint8)
    s = 1400 / max(gray.shape)
    gray = gray if abs(s - 1) < 0.01 else cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    H, W = gray.shape
    for turned in (False, True):  # a photo taken askew is turned straight, then read again
        ink = _ink(gray)
        cands, kc, lines = _candidates(ink)
        angle = float(np.median([c[2] for c in cands if c[3] > 0.15 * max(H, W)] or [0]))
        if turned or not 0.3 < abs(angle) < 10:
            break
        rot = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
        gray = cv2.warpAffine(gray, rot, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    rects, half = _select(ink, cands, kc)
    if not rects:
        raise MediaError("no layout boxes found in the sketch: draw the sections as rectangles")
    labels = _read_labels(ink, rects, int(max(1.5, half - kc / 2) + 3)) if ocr else [""] * len(rects)
    kinds = [kind_of(t) for t in labels]
    kinds = ["image" if k in (None, "section") and _has_x(lines, r) else k for k, r in zip(kinds, rects)]
    rects = [np.clip(r, 0, [W, H, W, H]) / [W, H, W, H] for r in rects]
    top, bottom, found = min(r[1] for r in rects), max(r[3] for r in rects), []
    for (x0, y0, x1, y1), label, kind in zip(rects, labels, kinds):
        wide = x1 - x0 >= 0.6 and len(rects) > 1  # unlabelled: wide at the top is a header, ...
        kind = kind or ("header" if wide and y0 <= top + .02 else "footer" if wide and y1 >= bottom - .02
                        else "button" if x1 - x0 < .4 and y1 - y0 < .1 else "section")
        found.append(Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0), label, kind))
    rows = [sorted(row, key=lambda i: found[i].x) for *_, row in _bands(range(len(found)), found, True)]
    return [found[i] for row in rows for i in row]


# ---------------------------------------------------------------- the page

FILLER = ("Short, clear words tell visitors what this part of the page is about. Each block keeps to one "
          "idea, so the page reads quickly anywhere. Replace this text with your own story and offer. ") * 8
HEADINGS = {"hero": "Welcome to {t}", "text": "About {t}", "card": "Feature {n}", "section": "More about {t}",
            "form": "Stay in touch", "header": "{t}", "footer": "{t}"}
CSS = """*{box-sizing:border-box}html,body{margin:0}body{background:%(bg)s;color:%(text)s;display:flex;
flex-direction:column;overflow-x:hidden;font:16px/1.4 system-ui,sans-serif}.rowc{display:flex;width:100%%}
main,.band,.cell{display:flex;flex-direction:column;align-items:flex-start;width:100%%}a{color:%(text)s}h1,h2{
margin:0 0 .3em;line-height:1.15;font-size:var(--hs)}.box p{margin:0;color:%(muted)s}.k-image{border:0}.box{
flex:none;overflow-wrap:anywhere;background:%(surface)s;border:1px solid %(muted)s;border-radius:6px}.k-hero{
background:%(primary)s;color:%(on_primary)s;border:0}.box.k-hero p{color:%(on_primary)s}.k-nav ul{
list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}.v ul{flex-direction:column}
input{font:inherit;color:%(text)s;background:%(surface)s;border:1px solid %(muted)s;border-radius:6px;
padding:.4em;min-width:0;flex:1}.k-button,form button{background:%(primary)s;color:%(on_primary)s;border:0;
border-radius:8px;font:inherit;font-weight:600;cursor:pointer;display:flex;align-items:center;
justify-content:center;padding:.45em 1em}.fr{display:flex;flex-wrap:wrap;gap:.5em;align-items:center}
:focus-visible{outline:3px solid %(accent)s;outline-offset:2px}.sr{position:absolute;width:1px;height:1px;
overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}@media (max-width:600px){.rowc{flex-direction:column}
.cell,.box{width:100%% !important;margin-left:0 !important}}"""
SCRIPT = """document.querySelectorAll('form').forEach(f=>f.addEventListener('submit',e=>{e.preventDefault();
f.querySelector('[role=status]').textContent='Thank you! We will be in touch.';}));document.querySelectorAll(
'button.k-button').forEach(b=>b.addEventListener('click',()=>{document.getElementById('status').textContent=
'Thanks for your interest!';}));"""
PICTURE = ('<rect width="100" height="60" fill="var(--accent)" opacity=".18"/><circle cx="72" cy="18" '
           'r="7" fill="var(--accent)"/><path d="M0 60 L35 27 L60 45 L78 33 L100 60Z" fill="var(--accent)" '
           'opacity=".7"/>')
BAND = '<div class="band" style="margin-top:{};min-height:{}">{}</div>'
TAGS = {"header": "header", "footer": "footer", "card": "article", "form": "form"}
LINKS, LINKED = ["Home", "Features", "About", "Contact", "Blog"], {"hero", "text", "card", "form", "section"}
FORM = ('<div class="fr"><label for="email{i}">Email</label><input id="email{i}" type="email" name="email" '
        'autocomplete="email" required><button type="submit">Subscribe</button></div><p role="status"></p>')


def _bands(ids, boxes, vertical):
    """``ids`` cut into rows (or columns): [[start, end, members], ...]; overlapping boxes share."""
    span = (lambda b: (b.y, b.y + b.h)) if vertical else (lambda b: (b.x, b.x + b.w))
    out: list[list] = []
    for a, z, i in sorted((*span(boxes[i]), i) for i in ids):
        if out and a < out[-1][1] - 0.25 * min(z - a, out[-1][1] - out[-1][0]):
            out[-1][1:] = [max(out[-1][1], z), out[-1][2] + [i]]
        else:
            out.append([max(a, out[-1][1]) if out else a, z, [i]])
    return out


class _Page:
    def __init__(self, boxes, title, aspect, texts):
        self.b, self.t, self.a, self.texts, self.used, self.navs, self.cards = (
            boxes, title, aspect, texts, set(), 0, 0)
        self.h1 = next((i for k in ("header", *HEADINGS) for i, b in enumerate(boxes) if b.kind == k), None)

    def v(self, f: float) -> str:  # a height on the sheet, in units of 1% of the sheet's height
        return f"calc(var(--u)*{f * 100:.3f})"

    def node(self, ids, rx0, rx1, ry0, ry1, part):
        rows = _bands(ids, self.b, True)
        if len(rows) > 1:
            return "".join(BAND.format(self.v(a - (rows[k - 1][1] if k else ry0)), self.v(z - a), self.node(
                m, rx0, rx1, a, z, part)) for k, (a, z, m) in enumerate(rows))
        cols, rw = _bands(ids, self.b, False), max(rx1 - rx0, 1e-6)
        if len(cols) == 1:  # one box, or boxes overlapping every way: one after the other
            return "".join(self.leaf(i, rx0, rw, ry0, part) for i in ids)
        return '<div class="rowc">' + "".join(
            f'<div class="cell" style="margin-left:{(a - (cols[k - 1][1] if k else rx0)) / rw * 100:.3f}%;'
            f'width:{(z - a) / rw * 100:.3f}%">{self.node(m, a, z, ry0, ry1, part)}</div>'
            for k, (a, z, m) in enumerate(cols)) + "</div>"

    def leaf(self, i, rx0, rw, ry0, part):
        b, e, attrs = self.b[i], html.escape, f'data-box="{i}" id="b{i}"'
        wpx, hpx = b.w * 1024, b.h * self.a * 1024  # its size when the sheet is 1024 px wide
        pad, fs = int(max(4, min(16, hpx * 0.12, wpx * 0.06))), int(max(13, min(17, hpx * 0.2)))
        style = (f"margin-left:{(b.x - rx0) / rw * 100:.3f}%;width:{b.w / rw * 100:.3f}%;margin-top:"
                 f"{self.v(max(0.0, b.y - ry0))};min-height:{self.v(b.h)}")
        words = " ".join(re.findall(r"[\w&'!?.,-]+", b.label)) if b.kind not in ("header", "footer") else ""
        said = any(len(w) > 2 and _vocab(w) in SHOWN | {None} for w in re.findall("[a-z]+", words.lower()))
        own = self.texts.get(i, self.texts.get(b.kind)) or (words.capitalize() if said else None)
        if b.kind == "image":
            return (f'<svg class="box k-image" {attrs} role="img" aria-label="{e(own or "Picture")}" '
                    f'viewBox="0 0 100 60" preserveAspectRatio="none" style="{style};height:{self.v(b.h)}"'
                    f'>{PICTURE}</svg>')
        if b.kind == "button":
            return (f'<button type="button" class="box k-button" {attrs} style="{style};font-size:{fs + 1}'
                    f'px">{e(own or "Get started")}</button>')
        style += f";padding:{pad}px;font-size:{fs}px"
        if b.kind == "nav":
            self.navs, vertical = self.navs + 1, hpx > wpx
            n = int(max(1, min(5, (hpx - 2 * pad) / (fs * 1.7) if vertical else (wpx - 2 * pad) / 115)))
            names = [t.strip() for t in re.split(r"[,|]", own or "") if t.strip()] or LINKS
            to = [j for j, o in enumerate(self.b) if o.kind in LINKED] or [i]
            links = "".join(f'<li><a href="#b{to[k % len(to)]}">{e(t)}</a></li>'
                            for k, t in enumerate(names[:n]))
            name = ["Main", "Secondary"][self.navs - 1] if self.navs <= 2 else f"Menu {self.navs}"
            return (f'<nav class="box k-nav{" v" if vertical else ""}" {attrs} aria-label="{name}" '
                    f'style="{style}"><ul>{links}</ul></nav>')
        tag = TAGS.get(b.kind, "section")
        if tag in ("header", "footer") and (part != b.kind or tag in self.used):
            tag = "section"  # a banner or contentinfo landmark only once, and only outside <main>
        self.used.add(tag)
        self.cards += b.kind == "card"
        heading = e(own or HEADINGS.get(b.kind, "{t}").format(t=self.t, n=self.cards))
        level = "h1" if i == self.h1 else "h2"
        hs = int(max(16, min(30 + 10 * (level == "h1"), hpx * .3, (wpx - 2 * pad) / (.6 * len(heading) + 2))))
        room = hpx - 2 * pad - hs * 1.5
        hide = ' class="sr"' if b.kind == "form" and room < 60 else ""  # a form's heading when no room
        body = f'<p id="h{i}">&copy; {heading}</p>' if b.kind == "footer" and level == "h2" else \
            f'<{level} id="h{i}"{hide}>{heading}</{level}>'
        chars = int(room // (fs * 1.45) * (wpx - 2 * pad) / (fs * 0.55) * 0.7)
        if b.kind == "form":
            body += FORM.format(i=i)
        elif chars > 20 and b.kind != "footer":
            body += f"<p>{e(FILLER[:chars].rsplit(' ', 1)[0])}</p>"
        named = f' aria-labelledby="h{i}"' if tag in ("section", "form") else ""
        return f'<{tag} class="box k-{b.kind}" {attrs}{named} style="{style};--hs:{hs}px">{body}</{tag}>'


def layout_html(boxes: list[Box], title: str, palette: dict[str, str], csp: str | None = None,
                texts: dict | None = None, aspect: float | None = None) -> str:
    """One self-contained page: header and nav rows before ``<main>``, footer rows after it; box i is
    ``[data-box=i]``, where the box is in a viewport of the sheet's aspect (``viewport_for``). With
    ``aspect`` (sheet height / width) heights follow the page's width, else the viewport's height.
    ``texts``: a box's index or kind -> its words (heading, button label, picture description, nav
    links "a, b"). All text is escaped; colours are the palette's AA pairs; ``csp``: spec.CSP."""
    from .spec import CSP
    p = _Page(list(boxes), title, aspect or 0.6, texts or {})  # no aspect: words sized for a wide sheet
    bands = _bands(range(len(p.b)), p.b, True)
    head = next((k for k, (*_, m) in enumerate(bands) if {p.b[i].kind for i in m} - {"header", "nav"}),
                len(bands))
    foot = len(bands)
    while foot > head and all(p.b[i].kind == "footer" for i in bands[foot - 1][2]):
        foot -= 1
    out = [BAND.format(p.v(a - (bands[k - 1][1] if k else 0.0)), p.v(z - a), p.node(m, 0.0, 1.0, a, z, (
        "header" if k < head else "footer" if k >= foot else "main"))) for k, (a, z, m) in enumerate(bands)]
    out.insert(foot, '<p id="status" role="status" class="sr"></p></main>')
    out.insert(head, "<main>" + ("" if p.h1 is not None else f'<h1 class="sr">{html.escape(title)}</h1>'))
    c = {k: html.escape(str(v)) for k, v in palette.items()}
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta http-equiv="Content-Security-Policy" '
            f'content="{html.escape(csp or CSP)}"><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title><style>:root{{'
            f'--accent:{c["accent"]};--u:{f"{aspect:.5f}vw" if aspect else "1vh"}}}{CSS % c}</style></head>'
            f'<body>{"".join(out)}<script>{SCRIPT}</script></body></html>\n')


def layout_iou(page, boxes: list[Box], width: int = 1024) -> dict:
    """IoU of each ``[data-box=i]`` element of a loaded Playwright page with box i, normalised to the
    viewport (a missing element counts 0): {"mean_iou": float, "per_box": [float, ...]}."""
    vw, vh, per = *(page.viewport_size or {"width": width, "height": width}).values(), []
    for i, b in enumerate(boxes):
        loc = page.locator(f'[data-box="{i}"]')
        r = loc.first.bounding_box() if loc.count() else None
        x, y, w, h = (r["x"] / vw, r["y"] / vh, r["width"] / vw, r["height"] / vh) if r else (0, 0, 0, 0)
        inter = max(0.0, min(x + w, b.x + b.w) - max(x, b.x)) * max(0.0, min(y + h, b.y + b.h) - max(y, b.y))
        per.append(round(inter / (w * h + b.w * b.h - inter), 4) if r and w * h + b.w * b.h > inter else 0.0)
    return {"mean_iou": round(sum(per) / len(per), 4) if per else 0.0, "per_box": per}
