"""Checks on a part's bytes before anything is decoded at length.

Order: empty data, size, content sniffing (the bytes must be of the part's kind), what the
header declares (image dimensions against the pixel limit — decompression bombs — and audio or
video duration against the duration limit), then a decode check that finds truncated or corrupt
files. Each failure is a ``MediaError`` naming the part. The request's totals (pixels across
images and frames, seconds across audio and video) are counted into a ``limits.Budget`` from the
headers, before decoding. A decoded image or audio track is checked and then let go: ``Checked``
keeps the bytes and what was learnt, and the preparation decodes each part again, one at a time.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .limits import Budget, DecodeClock
from .parts import MediaPart
from .settings import MediaSettings

NAMES = {
    "png": "PNG image", "jpeg": "JPEG image", "gif": "GIF image", "webp": "WebP image", "bmp": "BMP image",
    "tiff": "TIFF image", "wav": "WAV audio", "mp3": "MP3 audio", "ogg": "Ogg audio", "flac": "FLAC audio",
    "m4a": "M4A audio", "mp4": "MP4 video", "mov": "QuickTime video", "webm": "WebM video",
    "mkv": "Matroska video",
}
FAMILY = {"png": "image", "jpeg": "image", "gif": "image", "webp": "image", "bmp": "image", "tiff": "image",
          "wav": "audio", "mp3": "audio", "ogg": "audio", "flac": "audio", "m4a": "audio",
          "mp4": "video", "mov": "video", "webm": "video", "mkv": "video"}
MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp", "bmp": "image/bmp",
        "tiff": "image/tiff"}
KIND_WORDS = {"image": "an image", "audio": "audio", "video": "a video"}
SAMPLE_RATE = 16000  # what the speech recogniser takes


@dataclass
class Checked:
    """A part that passed every check, with what was learnt about it."""

    part: MediaPart
    data: bytes
    fmt: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def decode_image(self):
        """The image decoded (again): a PIL image, released by the caller when done."""
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(self.data))
            img.load()
        return img


def sniff(data: bytes) -> str | None:
    """The format the bytes are in, by their signature."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "mov" if brand == b"qt  " else "m4a" if brand in (b"M4A ", b"M4B ") else "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head else "mkv"
    return None


def _a(fmt: str) -> str:
    return NAMES[fmt] if FAMILY[fmt] == "audio" else f"a {NAMES[fmt]}"


def clock(t: float, frac: bool = False) -> str:
    """Seconds as m:ss (h:mm:ss past an hour); ``frac`` adds tenths."""
    t = max(t, 0.0)
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    sec = f"{s:04.1f}" if frac else f"{int(s):02d}"
    return f"{int(h)}:{int(m):02d}:{sec}" if h else f"{int(m)}:{sec}"


def check(mp: MediaPart, data: bytes, settings: MediaSettings, budget: Budget | None = None) -> Checked:
    """Every check on one part; ``budget`` counts it into the request's totals (a budget of its
    own when None)."""
    budget = budget or Budget(settings)
    if not data:
        raise mp.error("the data is empty (0 bytes)")
    if len(data) > settings.max_bytes:
        raise mp.error(f"{len(data) / 1048576:.1f} MB, over the limit of {settings.max_media_mb:g} MB")
    fmt = sniff(data)
    if fmt is None:
        raise mp.error(f"the data is not a {mp.kind} format OpenMuse reads "
                       f"({', '.join(n for f, n in NAMES.items() if FAMILY[f] == mp.kind)})")
    if FAMILY[fmt] != mp.kind and not (mp.kind == "video" and fmt in ("ogg", "m4a")):
        declared = f" (declared {mp.declared})" if mp.declared else ""
        raise mp.error(f"the data is {_a(fmt)}, not {KIND_WORDS[mp.kind]}{declared}")
    ck = Checked(part=mp, data=data, fmt=fmt)
    {"image": _image, "audio": _audio, "video": _video}[mp.kind](ck, settings, budget)
    return ck


# -- images ---------------------------------------------------------------------------------
def _image(ck: Checked, s: MediaSettings, budget: Budget) -> None:
    from PIL import Image, UnidentifiedImageError

    mp, name = ck.part, NAMES[ck.fmt]
    if ck.fmt == "png" and len(ck.data) >= 24:  # IHDR: the size, before Pillow reads anything
        w, h = struct.unpack(">II", ck.data[16:24])
        _pixels(mp, w, h, s)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(ck.data))
            _pixels(mp, *img.size, s)
            budget.image(mp, *img.size)  # the request's total, OCR's enlargement: before decoding
            img.verify()  # structure and checksums (PNG chunks to the end)
            img = Image.open(io.BytesIO(ck.data))
            img.load()  # the decode check; the pixels are let go at once
            ck.width, ck.height = img.width, img.height
            del img
    except Image.DecompressionBombError as e:
        raise mp.error(f"declares too many pixels ({e}); a decompression bomb?") from None
    except UnidentifiedImageError:
        raise mp.error(f"truncated or corrupt {name} file (no readable header)") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        text = str(e)
        if "truncat" in text.lower() or isinstance(e, EOFError):
            raise mp.error(f"truncated {ck.fmt.upper()} file") from None
        raise mp.error(f"corrupt {name} file ({text.splitlines()[0] if text else type(e).__name__})") from None


def _pixels(mp: MediaPart, w: int, h: int, s: MediaSettings) -> None:
    if w <= 0 or h <= 0:
        raise mp.error(f"declares an empty image ({w}×{h})")
    if w * h > s.max_pixels:
        raise mp.error(f"declares {w}×{h} pixels ({w * h / 1e6:,.0f} megapixels), over the limit of "
                       f"{s.max_megapixels:g} megapixels (a decompression bomb?)")


# -- audio ----------------------------------------------------------------------------------
def _audio(ck: Checked, s: MediaSettings, budget: Budget) -> None:
    if ck.fmt == "wav":
        _wav_header(ck, s)
    _, ck.duration_s = decode_audio(ck.part, ck.data, ck.fmt, s)  # the samples are let go
    budget.audio(ck.part, ck.duration_s or 0.0)


def _wav_header(ck: Checked, s: MediaSettings) -> None:
    """Duration from the RIFF header (fmt byte rate, data size) before any decoding."""
    data, mp = ck.data, ck.part
    pos, byte_rate = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt " and pos + 20 <= len(data):
            byte_rate = struct.unpack("<I", data[pos + 16:pos + 20])[0]
        elif cid == b"data":
            if not byte_rate:
                raise mp.error("corrupt WAV file (no format chunk before the data)")
            declared = size / byte_rate
            _duration(mp, declared, s, "declares")
            held = max(len(data) - pos - 8, 0) / byte_rate
            if size != 0xFFFFFFFF and held + 0.05 < declared:
                raise mp.error(f"truncated WAV file (the header declares {clock(declared, True)}, "
                               f"the file holds {clock(held, True)})")
            return
        pos += 8 + size + (size & 1)
    raise mp.error("truncated WAV file (no data chunk)")


def _duration(mp: MediaPart, seconds: float, s: MediaSettings, verb: str = "is") -> None:
    if seconds > s.max_duration_s:
        raise mp.error(f"{verb} {clock(seconds)} long, over the limit of {clock(s.max_duration_s)} "
                       f"({s.max_duration_s:g} s)")


def _container_duration(container) -> float | None:
    if container.duration:
        return container.duration / 1_000_000
    for st in container.streams:
        if st.duration and st.time_base:
            return float(st.duration * st.time_base)
    return None


def decode_audio(mp: MediaPart, data: bytes, fmt: str, s: MediaSettings,
                 required: bool = True) -> tuple[np.ndarray | None, float | None]:
    """The audio track as 16 kHz mono float32 and its duration. The declared duration is checked
    before decoding. ``required=False`` returns (None, None) when there is no audio stream."""
    import av

    name = NAMES.get(fmt, fmt)
    chunks: list[np.ndarray] = []
    timer = DecodeClock(mp, s)
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                if required:
                    raise mp.error(f"the {name} file has no audio stream")
                return None, None
            declared = _container_duration(container)
            if declared is not None:
                _duration(mp, declared, s, "declares")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            limit = int(s.max_duration_s * SAMPLE_RATE)
            total = 0
            for packet in container.demux(stream):
                timer.tick()
                for frame in packet.decode():
                    for out in resampler.resample(frame):
                        arr = out.to_ndarray().reshape(-1)
                        chunks.append(arr)
                        total += arr.size
                if total > limit:
                    _duration(mp, total / SAMPLE_RATE, s)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:
        raise mp.error(f"truncated or corrupt {name} file ({_av_message(e)})") from None
    if not chunks:
        if required:
            raise mp.error(f"the {name} file holds no audio samples")
        return None, None
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    return samples, samples.size / SAMPLE_RATE


def _av_message(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).splitlines()[0]


# -- video ----------------------------------------------------------------------------------
def _video(ck: Checked, s: MediaSettings, budget: Budget) -> None:
    import av

    mp, name = ck.part, NAMES[ck.fmt]
    try:
        with av.open(io.BytesIO(ck.data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                raise mp.error(f"the {name} file has no video stream")
            declared = _container_duration(container)
            if declared is None:
                raise mp.error(f"the {name} file declares no duration")
            _duration(mp, declared, s, "declares")
            st = container.streams.video[0]
            _pixels(mp, st.codec_context.width, st.codec_context.height, s)
            ck.width, ck.height, ck.duration_s = st.codec_context.width, st.codec_context.height, declared
            budget.video(mp, ck.width, ck.height, declared)
            first = next(container.decode(st), None)
            if first is None:
                raise mp.error(f"the {name} file holds no video frames")
    except av.error.FFmpegError as e:
        raise mp.error(f"truncated or corrupt {name} file ({_av_message(e)})") from None
