"""What a text-only engine is told about an image: the text in it, read by Tesseract OCR
(Debian's ``tesseract-ocr`` + ``tesseract-ocr-eng``, through ``pytesseract``; fully offline),
and basic facts: size and dominant colours. OCR enlarges small images, never past the pixel
limit it is given (``limits.ocr_scale``)."""

from __future__ import annotations

import shutil
from typing import Any

from ..errors import MuseError

# Named colours for describing dominant colours (sRGB).
COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "silver": (192, 192, 192),
    "red": (220, 20, 30), "dark red": (128, 0, 0), "orange": (255, 140, 0), "yellow": (250, 220, 20),
    "green": (30, 160, 50), "dark green": (0, 90, 30), "blue": (30, 80, 220), "navy": (0, 0, 110),
    "light blue": (135, 200, 240), "purple": (128, 40, 160), "pink": (245, 150, 190), "brown": (130, 80, 30),
    "beige": (225, 205, 165), "teal": (0, 128, 128),
}


def _nearest(rgb: tuple[int, int, int]) -> str:
    return min(COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(COLOURS[n], rgb)))


def facts(img) -> dict[str, Any]:
    """Width, height and up to three dominant colours (with their share of the image)."""
    small = img.convert("RGB")
    small.thumbnail((128, 128))
    q = small.quantize(colors=6)
    palette = q.getpalette() or []
    shares: dict[str, float] = {}
    total = small.width * small.height
    for count, idx in sorted(q.getcolors() or [], reverse=True):
        rgb = tuple(palette[idx * 3: idx * 3 + 3])
        name = _nearest(rgb)  # type: ignore[arg-type]
        shares[name] = shares.get(name, 0.0) + count / total
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:3]
    return {"width": img.width, "height": img.height,
            "colours": [{"name": n, "share": round(v, 2)} for n, v in top if v >= 0.05]}


def colour_words(f: dict[str, Any]) -> str:
    return ", ".join(f"{c['name']} {c['share']:.0%}" for c in f["colours"]) or "mixed colours"


def ocr(img, max_pixels: int) -> str:
    """The text Tesseract reads in ``img``, whitespace tidied ('' when none). A small image is
    enlarged (short side to 300 px), to at most ``max_pixels``."""
    from .limits import ocr_scale

    import pytesseract

    if shutil.which("tesseract") is None:
        raise MuseError("image OCR needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-eng")
    gray = img.convert("L")
    scale = ocr_scale(gray.width, gray.height, max_pixels)
    if scale > 1:  # small text reads better enlarged; floor: never past max_pixels
        gray = gray.resize((int(gray.width * scale), int(gray.height * scale)))
    try:
        text = pytesseract.image_to_string(gray, lang="eng", timeout=60)
    except (pytesseract.TesseractError, RuntimeError) as e:
        raise MuseError(f"OCR failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
