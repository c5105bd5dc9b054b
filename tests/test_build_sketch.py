"""A page built from a sketch (``openmuse.build.sketch``): sketches drawn by the test itself with
``openmuse.build.sketchgen`` (wobbly hand-drawn boxes with labels, X-crossed pictures; clean, and
photo-like with tinted paper, uneven light, noise, blur, a small rotation) must give back every
drawn box (count equal, IoU >= 0.8 each) and most of their kinds; the page written from them,
rendered in headless Chromium at the sketch's aspect, must put each box's element where the box
is (mean IoU >= 0.7), log no console error and pass axe-core with no serious or critical
violation; a blank or noisy image gives the one-line MediaError; hostile text is escaped.

Run: `.venv/bin/pytest tests/test_build_sketch.py -q` (needs OpenCV, Tesseract with English; the
browser tests need Debian's `chromium`, and are skipped with a reason without it unless CI is set).
"""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from openmuse.build import sketch as sk
from openmuse.build.sketch import Box, kind_of, layout_html, layout_iou, read_sketch, viewport_for
from openmuse.build.sketchgen import make_sketch, match
from openmuse.build.spec import CSP, palettes
from openmuse.errors import MediaError, MuseError

pytest.importorskip("cv2")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SKETCHES = [(1, False), (2, False), (7, False), (12, False), (1, True), (6, True), (13, True)]
needs_ocr = pytest.mark.skipif(shutil.which("tesseract") is None and not os.environ.get("CI"),
                               reason="Tesseract is not installed (apt-get install tesseract-ocr)")


@pytest.fixture(scope="module")
def sketches():
    out = {}
    for seed, photo in SKETCHES:
        img, truth = make_sketch(seed, photo=photo)
        out[seed, photo] = (img, truth, read_sketch(img))
    return out


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _open(browser, html: str, size: tuple[int, int]):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("about:", "data:")) else errors.append(r.url))
    page.set_content(html)
    return page, errors


@needs_ocr
@pytest.mark.parametrize("seed,photo", SKETCHES)
def test_every_drawn_box_is_found(sketches, seed, photo):
    _, truth, found = sketches[seed, photo]
    assert len(found) == len(truth), (truth, found)
    pairs = match(truth, found)
    assert all(v >= 0.8 for _, _, v in pairs), [(t.kind, round(v, 2)) for t, _, v in pairs]
    right = sum(f is not None and f.kind == t.kind for t, f, _ in pairs)
    assert right >= 0.75 * len(truth), [(t.kind, f and f.kind, f and f.label) for t, f, _ in pairs]
    assert all(0 <= b.x <= 1 and 0 <= b.y <= 1 and b.x + b.w <= 1.001 and b.y + b.h <= 1.001 for b in found)
    for a, b in zip(found, found[1:]):  # top to bottom, then left to right within a row
        assert b.y >= a.y - 0.03 and (b.x > a.x or b.y > a.y + 0.03)


@needs_ocr
def test_kinds_overall_and_x_cross(sketches):
    pairs = [p for _, truth, found in sketches.values() for p in match(truth, found)]
    assert sum(f is not None and f.kind == t.kind for t, f, _ in pairs) >= 0.9 * len(pairs)
    pictures = [(t, f) for t, f, _ in pairs if t.kind == "image"]
    assert pictures and all(f.kind == "image" for _, f in pictures)


def test_kind_words_and_synonyms():
    words = {"HEADER": "header", "LOGO": "nav", "MENU": "nav", "BANNER": "hero", "PHOTO": "image",
             "IMG": "image", "SIGN UP": "button", "BUY NOW": "button", "EMAIL": "form", "CONTACT": "form",
             "CARD": "card", "PARAGRAPH": "text", "FOOTER": "footer", "HEADFR": "header", "": None,
             "xyzzy": None}
    assert {w: kind_of(w) for w in words} == words
    assert kind_of("SIGN UP FORM") == "form" and kind_of("HERO IMAGE") == "hero"


def test_unlabelled_boxes_get_kinds_by_position():
    img, truth = make_sketch(5)  # a full-width header, an X-crossed picture, a small button
    found = read_sketch(img, ocr=False)
    assert len(found) == len(truth) and all(b.label == "" for b in found)
    kinds = {t.kind: f.kind for t, f, _ in match(truth, found)}
    assert all(kinds[k] == k for k in ("header", "footer", "image", "button")), kinds


def test_a_frame_around_the_sheet_is_not_a_box():
    img, truth = make_sketch(5)
    framed = img.copy()
    ImageDraw.Draw(framed).rectangle((12, 12, img.width - 12, img.height - 12), outline=(20, 20, 20), width=3)
    found = read_sketch(framed, ocr=False)
    assert len(found) == len(truth) and all(v >= 0.8 for _, _, v in match(truth, found))


def test_blank_or_noise_is_a_one_line_media_error():
    rng = np.random.default_rng(0)
    images = [Image.new("RGB", (800, 1000), "white"), Image.new("RGB", (640, 480), (240, 230, 210)),
              Image.fromarray(rng.integers(0, 256, (900, 700, 3), dtype=np.uint8)),
              Image.fromarray(np.clip(rng.normal(128, 60, (700, 900)), 0, 255).astype(np.uint8))]
    for img in images:
        with pytest.raises(MediaError) as e:
            read_sketch(img)
        assert str(e.value) == "no layout boxes found in the sketch: draw the sections as rectangles"


def test_missing_tesseract(monkeypatch):
    img, truth = make_sketch(2)
    real = shutil.which
    monkeypatch.setattr(sk.shutil, "which", lambda name: None if name == "tesseract" else real(name))
    with pytest.raises(MuseError) as e:
        read_sketch(img, ocr=True)
    assert "\n" not in str(e.value) and "Tesseract" in str(e.value)
    found = read_sketch(img)  # without it: the boxes, unlabelled
    assert len(found) == len(truth) and all(b.label == "" for b in found)


def test_hostile_text_is_escaped():
    bad = '<script>alert(1)</script><img src=x onerror=alert(2)>"'
    boxes = [Box(0.05, 0.03, 0.9, 0.1, bad, "header"), Box(0.05, 0.2, 0.9, 0.3, bad, "text"),
             Box(0.05, 0.55, 0.4, 0.2, bad, "image"), Box(0.3, 0.8, 0.4, 0.07, bad, "button"),
             Box(0.55, 0.55, 0.4, 0.2, bad, "nav")]
    html = layout_html(boxes, bad, palettes()["ocean"], CSP, texts={"hero": bad, 1: bad, "nav": bad},
                       aspect=1.4)
    assert html.count("<script") == 1 and "<img" not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(1)" in html
    assert html.index('<meta http-equiv="Content-Security-Policy"') < html.index("<title>")
    csp = re.search(r'<head><meta http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert csp == CSP.replace("'", "&#x27;")


def test_page_structure():
    img, _ = make_sketch(4)
    boxes = read_sketch(img, ocr=False)
    html = layout_html(boxes, "Acme", palettes()["night"], CSP, aspect=img.height / img.width)
    assert html.startswith("<!DOCTYPE html>") and '<html lang="en">' in html
    assert html.count("<h1") == 1 and html.count("<main>") == 1
    assert sorted(int(i) for i in re.findall(r'data-box="(\d+)"', html)) == list(range(len(boxes)))
    assert "http://" not in html and "https://" not in html


@needs_ocr
@pytest.mark.parametrize("seed,photo", SKETCHES)
def test_rendered_page_matches_the_sketch(browser, sketches, seed, photo):
    img, _, found = sketches[seed, photo]
    html = layout_html(found, "Acme Tools", palettes()[sorted(palettes())[seed % 8]], CSP,
                       aspect=img.height / img.width)
    page, errors = _open(browser, html, viewport_for(img.size))
    try:
        iou = layout_iou(page, found)
        assert iou["mean_iou"] >= 0.7, iou
        assert len(iou["per_box"]) == len(found)
        from axe_playwright_python.sync_playwright import Axe

        bad = [(v["id"], v["impact"]) for v in Axe().run(page).response["violations"]
               if v["impact"] in ("serious", "critical")]
        assert bad == []
        assert page.locator("h1").count() == 1 and page.locator("main").count() == 1
        assert errors == []
    finally:
        page.close()


def test_page_without_aspect_fits_the_viewport(browser):
    img, _ = make_sketch(9, photo=True)
    boxes = read_sketch(img, ocr=False)
    html = layout_html(boxes, "Acme", palettes()["sunset"], CSP)  # heights as shares of the viewport's
    page, errors = _open(browser, html, viewport_for(img.size))
    try:
        assert layout_iou(page, boxes)["mean_iou"] >= 0.7 and errors == []
    finally:
        page.close()


def test_form_and_button_work_under_the_csp(browser):
    boxes = [Box(0.05, 0.03, 0.9, 0.1, "", "header"), Box(0.05, 0.2, 0.9, 0.25, "CONTACT", "form"),
             Box(0.3, 0.55, 0.4, 0.08, "SIGN UP", "button"), Box(0.05, 0.8, 0.9, 0.1, "", "footer")]
    html = layout_html(boxes, "Acme", palettes()["forest"], CSP, aspect=1.0)
    page, errors = _open(browser, html, (1024, 1024))
    try:
        page.fill("input[type=email]", "a@b.co")
        page.click("form button[type=submit]")
        page.get_by_text("Thank you! We will be in touch.").wait_for(timeout=4000)
        page.click("button.k-button")
        page.get_by_text("Thanks for your interest!").wait_for(timeout=4000, state="attached")
        assert page.get_by_role("button", name="Sign up").count() == 1
        assert page.get_by_label("Email").count() == 1
        assert page.url == "about:blank" and errors == []
    finally:
        page.close()


def test_missing_element_counts_zero(browser):
    html = ("<!DOCTYPE html><html lang='en'><title>x</title><div data-box='0' "
            "style='position:absolute;left:0;top:0;width:512px;height:512px'></div></html>")
    page, _ = _open(browser, html, (1024, 1024))
    try:
        r = layout_iou(page, [Box(0, 0, 0.5, 0.5), Box(0.5, 0.5, 0.5, 0.5)])
        assert r["per_box"] == [1.0, 0.0] and r["mean_iou"] == 0.5
    finally:
        page.close()
