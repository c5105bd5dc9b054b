"""Media parts in the OpenAI chat format: find them in messages, build them from local files or
URLs (the CLI), and get their bytes (data URLs, base64, http(s) fetched through the guard in
``fetch.py``).

Shapes taken (OpenAI's, plus the ``audio_url`` / ``video_url`` parts vLLM reads)::

    {"type": "image_url", "image_url": {"url": "data:image/png;base64,..." | "https://..."}}
    {"type": "input_audio", "input_audio": {"data": "<base64>", "format": "wav"}}
    {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,..." | "https://..."}}
    {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,..." | "https://..."}}
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from ..errors import MediaError
from .settings import MediaSettings

Kind = Literal["image", "audio", "video"]
PART_KIND: dict[str, Kind] = {"image_url": "image", "input_audio": "audio", "audio_url": "audio",
                              "video_url": "video"}
AUDIO_FORMATS = ("wav", "mp3", "ogg", "flac")
EXTENSIONS: dict[Kind, tuple[str, ...]] = {
    "image": ("png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff"),
    "audio": (*AUDIO_FORMATS, "oga", "opus", "m4a"),
    "video": ("mp4", "m4v", "webm", "mov", "mkv"),
}


@dataclass
class MediaPart:
    """One non-text part of a request. ``index`` counts parts of its kind from 1 across the
    conversation; ``where`` is (message index, part index)."""

    kind: Kind
    index: int
    name: str
    part: dict[str, Any]
    where: tuple[int, int]
    url: str | None = None  # an http(s) URL given by reference
    data: bytes | None = None
    declared: str | None = None  # declared format: a MIME subtype or extension ("png", "wav")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.index} ({self.name})"

    def error(self, message: str) -> MediaError:
        return MediaError(f"{self.label}: {message}")


def find_parts(messages, names: dict[tuple[int, int], str] | None = None) -> list[MediaPart]:
    """Every media part of ``messages`` (``Message`` objects), numbered per kind. A part of an
    unknown type is an error, never dropped."""
    names = names or {}
    counts: dict[str, int] = {}
    out: list[MediaPart] = []
    for mi, m in enumerate(messages):
        if isinstance(m.content, str):
            continue
        for pi, p in enumerate(m.content):
            ptype = p.get("type")
            if ptype == "text":
                continue
            if ptype not in PART_KIND:
                raise MediaError(f"message {mi + 1}, part {pi + 1}: unknown content part type {ptype!r} "
                                 f"(known: text, {', '.join(PART_KIND)})")
            kind = PART_KIND[ptype]
            counts[kind] = counts.get(kind, 0) + 1
            out.append(_describe(kind, counts[kind], p, (mi, pi), names.get((mi, pi))))
    return out


def _describe(kind: Kind, index: int, p: dict[str, Any], where: tuple[int, int], name: str | None) -> MediaPart:
    body = p.get(p["type"])
    mp = MediaPart(kind=kind, index=index, name=name or "", part=p, where=where)
    if not isinstance(body, dict):
        mp.name = mp.name or p["type"]
        raise mp.error(f"the {p['type']} part needs an object with its data")
    if p["type"] == "input_audio":
        mp.declared = str(body.get("format") or "").lower() or None
        mp.name = mp.name or f"input_audio{'.' + mp.declared if mp.declared else ''}"
        if not isinstance(body.get("data"), str):
            raise mp.error("input_audio needs base64 'data'")
        return mp
    url = body.get("url")
    if not isinstance(url, str) or not url:
        mp.name = mp.name or p["type"]
        raise mp.error(f"the {p['type']} part needs a 'url'")
    if url.startswith("data:"):
        head = url[5:url.find(",")] if "," in url else url[5:]
        mime = head.split(";")[0].lower()
        mp.declared = mime.split("/")[-1] if "/" in mime else None
        mp.name = mp.name or f"{mime or 'data'} data URL"
    elif urlparse(url).scheme in ("http", "https"):
        mp.url = url
        tail = unquote(urlparse(url).path.rsplit("/", 1)[-1])
        mp.name = mp.name or tail or urlparse(url).netloc
        ext = tail.rsplit(".", 1)[-1].lower() if "." in tail else None
        mp.declared = ext
    else:
        mp.name = mp.name or p["type"]
        raise mp.error(f"only data URLs and http(s) URLs are taken, not {urlparse(url).scheme or 'this'}:")
    return mp


def load_bytes(mp: MediaPart, settings: MediaSettings) -> bytes:
    """The part's bytes, size-checked before base64 is decoded or a download goes past the limit."""
    if mp.data is not None:
        return mp.data
    body = mp.part[mp.part["type"]]
    if mp.part["type"] == "input_audio":
        encoded = body["data"]
    elif mp.url is None:
        url = body["url"]
        if "," not in url or ";base64" not in url[:url.find(",")]:
            raise mp.error("a data URL must be base64 (data:TYPE;base64,...)")
        encoded = url[url.find(",") + 1:]
    else:
        mp.data = _fetch(mp, settings)
        return mp.data
    if len(encoded) * 3 // 4 > settings.max_bytes + 2:
        raise mp.error(f"{_mb(len(encoded) * 3 // 4)}, over the limit of {settings.max_media_mb:g} MB")
    try:
        mp.data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise mp.error("the data is not valid base64") from None
    return mp.data


def fetching_off(mp: MediaPart) -> MediaError:
    return mp.error("fetching URLs is off (--fetch-urls turns it on); send the data inline")


def _fetch(mp: MediaPart, settings: MediaSettings) -> bytes:
    from .fetch import fetch

    if not settings.fetch_urls:
        raise fetching_off(mp)
    return fetch(mp, settings)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def parts_from_files(kind: Kind, sources: list[str], settings: MediaSettings) -> list[tuple[dict[str, Any], str]]:
    """Content parts for local paths or URLs given on the command line, with their names.
    Files are read here (size checked first); URLs become URL parts."""
    out = []
    for i, src in enumerate(sources, 1):
        scheme = urlparse(src).scheme
        if scheme in ("http", "https", "data"):
            name = unquote(urlparse(src).path.rsplit("/", 1)[-1]) if scheme != "data" else "data URL"
            out.append((_url_part(kind, src), name or src))
            continue
        path = Path(src).expanduser()
        name = path.name
        if not path.is_file():
            raise MediaError(f"{kind} {i} ({name}): no such file")
        size = path.stat().st_size
        if size > settings.max_bytes:
            raise MediaError(f"{kind} {i} ({name}): {_mb(size)}, over the limit of {settings.max_media_mb:g} MB")
        data = path.read_bytes()
        ext = path.suffix.lower().lstrip(".")
        b64 = base64.b64encode(data).decode("ascii")
        if kind == "audio" and ext in AUDIO_FORMATS:
            out.append(({"type": "input_audio", "input_audio": {"data": b64, "format": ext}}, name))
            continue
        mime = mimetypes.guess_type(name)[0] or f"{kind}/{ext or 'octet-stream'}"
        out.append((_url_part(kind, f"data:{mime};base64,{b64}"), name))
    return out


def _url_part(kind: Kind, url: str) -> dict[str, Any]:
    key = {"image": "image_url", "audio": "audio_url", "video": "video_url"}[kind]
    return {"type": key, key: {"url": url}}


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


