"""Drawing a grounding on its image (numbered discs, boxes, a legend) and reading any image
input (a file, bytes, a PIL image, a base64 ``data:`` URL or an ``image_url`` part) into Pillow.
The parsing and the request live in ``grounding.py``."""

from __future__ import annotations

import base64
import binascii
import io
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from ..errors import ConfigError

if TYPE_CHECKING:
    from .grounding import Grounding

ImageInput = str | Path | bytes | Image.Image | dict


def objects(n: int) -> str:
    return f"{n} object" + ("" if n == 1 else "s")


PALETTE = ((230, 25, 75), (0, 130, 200), (60, 140, 40), (145, 30, 180), (245, 110, 0), (0, 128, 128),
           (170, 110, 40), (128, 0, 0), (70, 70, 200), (200, 0, 140))


def marker_radius(size: tuple[int, int]) -> int:
    """Radius in pixels of the numbered markers on an image of ``size``."""
    return max(7, round(min(size) * 0.02))


def render(image: ImageInput, grounding: Grounding, out_path: str | Path | None = None) -> Image.Image:
    """The image with a rectangle per box, a numbered disc per point and a legend "N objects";
    written as PNG to ``out_path`` when given. The input is not modified."""
    img = _load(image).convert("RGB")
    (w, h), r, draw = img.size, marker_radius(img.size), ImageDraw.Draw(img)
    for a in grounding.annotations:
        if a.box is not None:
            draw.rectangle([v * (s - 1) for v, s in zip(a.box, (w, h, w, h))],
                           outline=PALETTE[(a.index - 1) % len(PALETTE)], width=max(2, r // 4))
    for a in grounding.annotations:
        cx, cy = a.point[0] * (w - 1), a.point[1] * (h - 1)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=PALETTE[(a.index - 1) % len(PALETTE)],
                     outline=(255, 255, 255), width=max(1, r // 6))
        digits = len(str(a.index))
        draw.text((cx, cy), str(a.index), fill=(255, 255, 255), anchor="mm",
                  font=_font(round(r * (1.3 if digits == 1 else 2.4 / digits))))
    legend, font = objects(grounding.count), _font(round(r * 1.4))
    left, top, right, bottom = draw.textbbox((r, r), legend, font=font)
    pad = max(3, r // 3)
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=(0, 0, 0))
    draw.text((r, r), legend, fill=(255, 255, 255), font=font)
    if out_path is not None:
        img.save(out_path, format="PNG")
    return img


def to_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=max(8, size))
    except (OSError, ImportError):  # Pillow built without FreeType: the small bitmap font
        return ImageFont.load_default()


def _load(image: ImageInput) -> Image.Image:
    """A PIL image (a copy) from any ``ImageInput``."""
    return image.copy() if isinstance(image, Image.Image) else _open(_bytes(image))


def _bytes(image: str | Path | bytes | dict) -> bytes:
    """The encoded image: of a file, a base64 ``data:`` URL or an ``image_url`` part carrying one."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, dict):
        part = image.get("image_url") if image.get("type") == "image_url" else None
        image = part.get("url", "") if isinstance(part, dict) else ""
    if isinstance(image, str) and (image.startswith("data:") or "://" in image or not image):
        return _decode_data_url(image)
    path = Path(image)
    if not path.is_file():
        raise ConfigError(f"no image file at {path}")
    return path.read_bytes()


def _decode_data_url(url: str) -> bytes:
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or ";base64" not in head:
        raise ConfigError("grounding needs the image itself: a file, bytes, a PIL image or a base64 data: URL")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("the image data: URL is not valid base64") from None


def _open(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ConfigError(f"not an image Pillow can read ({e.__class__.__name__})") from None
    return img
