"""Limits per request, across parts: the guard against memory and CPU bombs spread over many
parts, and against resizes that grow past the pixel limit.

What it covers:

- The number of media parts (every kind, URL parts included) and of URL parts, refused before
  any part is loaded or fetched.
- Decoded pixels across every image and every sampled video frame of the request, counted from
  the headers before anything is decoded; seconds across every audio and video part.
- OCR's enlargement: an image (or video frame) whose short side would be enlarged to 300 px for
  OCR past the per-image pixel limit is refused before it is decoded (``image.ocr`` also never
  scales past that limit).
- A wall-clock limit on one container (PyAV) decode, checked between packets and frames.

What it does not cover: the size of one part and its own pixel and duration limits
(``validate.py``); the request body (the server's ``--max-body-mb``); a single frame or image
that is slow to decode within those limits (decoding one frame is not interrupted); OCR time
(Tesseract's own timeout, ``image.ocr``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from .parts import MediaPart
from .settings import MediaSettings

OCR_SHORT_SIDE = 300  # OCR enlarges small images until their short side is this long


def ocr_scale(w: int, h: int, max_pixels: int) -> float:
    """How much OCR enlarges a w×h image: its short side to ``OCR_SHORT_SIDE``, never past
    ``max_pixels`` in all, never shrinking (1.0)."""
    want = OCR_SHORT_SIDE / max(min(w, h), 1)
    cap = math.sqrt(max_pixels / max(w * h, 1))
    return max(1.0, min(want, cap))


class Budget:
    """What one request may still decode. ``native``: the modalities the engine takes (a part
    going natively decodes nothing beyond its checks)."""

    def __init__(self, settings: MediaSettings, native: Sequence[str] = ()):
        self.s, self.native = settings, set(native)
        self.pixels = 0
        self.seconds = 0.0

    def count(self, found: list[MediaPart]) -> None:
        s = self.s
        if len(found) > s.max_parts:
            mp = found[s.max_parts]
            raise mp.error(f"{len(found)} media parts in the request, over the limit of {s.max_parts} "
                           "(--max-parts)")
        urls = [mp for mp in found if mp.url is not None]
        if len(urls) > s.max_url_parts:
            raise urls[s.max_url_parts].error(f"{len(urls)} URL parts in the request, over the limit of "
                                              f"{s.max_url_parts} (--max-url-parts)")

    def image(self, mp: MediaPart, w: int, h: int) -> None:
        """An image about to be decoded (from its header)."""
        if "image" not in self.native:
            self._ocr_fits(mp, w, h)
        self._pixels(mp, w * h)

    def video(self, mp: MediaPart, w: int, h: int, duration: float) -> None:
        """A video about to be sampled: its frames' pixels and its seconds."""
        from .video import sample_times

        self._seconds(mp, duration)
        if "video" in self.native:
            frames = 1  # the decode check's first frame
        else:
            frames = len(sample_times(duration, self.s.frame_rate, self.s.max_frames))
            if "image" not in self.native:
                self._ocr_fits(mp, w, h)
        self._pixels(mp, frames * w * h)

    def audio(self, mp: MediaPart, duration: float) -> None:
        self._seconds(mp, duration)

    def _ocr_fits(self, mp: MediaPart, w: int, h: int) -> None:
        short = min(w, h)
        if short >= OCR_SHORT_SIDE:
            return
        scale = OCR_SHORT_SIDE / max(short, 1)
        big = (w * h) * scale * scale
        if big > self.s.max_pixels:
            raise mp.error(f"{w}×{h} pixels would be {round(w * scale):,}×{round(h * scale):,} "
                           f"({big / 1e6:,.0f} megapixels) when enlarged for OCR, over the limit of "
                           f"{self.s.max_megapixels:g} megapixels (--max-megapixels)")

    def _pixels(self, mp: MediaPart, n: int) -> None:
        self.pixels += n
        if self.pixels > self.s.max_total_pixels:
            raise mp.error(f"brings the request to {self.pixels / 1e6:,.1f} megapixels of images and "
                           f"frames, over the limit of {self.s.max_total_megapixels:g} "
                           "(--max-total-megapixels)")

    def _seconds(self, mp: MediaPart, seconds: float) -> None:
        self.seconds += seconds
        if self.seconds > self.s.max_total_duration_s:
            raise mp.error(f"brings the request to {self.seconds:,.0f} s of audio and video, over the "
                           f"limit of {self.s.max_total_duration_s:g} s (--max-total-duration)")


class DecodeClock:
    """The wall-clock limit of one container decode: ``tick()`` between packets or frames."""

    def __init__(self, mp: MediaPart, settings: MediaSettings):
        self.mp, self.limit = mp, settings.max_decode_s
        self.end = time.monotonic() + self.limit

    def tick(self) -> None:
        if time.monotonic() > self.end:
            raise self.mp.error(f"decoding took over {self.limit:g} s, the limit (--max-decode-seconds)")
