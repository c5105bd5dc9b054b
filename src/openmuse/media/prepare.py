"""Native or fallback, part by part, for the engine at hand.

``prepare_media(messages, capabilities, settings)`` first counts the parts against the request's
limits, then loads and checks every media part of the conversation, one at a time, counting
pixels and seconds into the request's budget (any failure stops everything, before any part is
processed further); a URL going to the engine unfetched is checked by the same rules as a fetch.
Then it rewrites the messages for the engine, decoding each part again, one at a time:

- a part whose modality the engine declares goes unchanged;
- a video, to an engine that takes images but not video, becomes its sampled frames (image
  parts, each after a label with its timestamp) plus its audio track (as a 16 kHz WAV
  ``input_audio`` part to an engine that takes audio, else as its transcript);
- anything else becomes labelled text: OCR and facts for images, a transcript for audio, OCR
  of the sampled frames and a transcript for video.

The report (``Completion.extra["media"]``, ``--json``) lists every part and how it was seen.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import prompts
from ..types import Capabilities, Message
from . import audio, image, video
from .fetch import check_url
from .limits import Budget
from .parts import MediaPart, data_url, fetching_off, find_parts, load_bytes
from .settings import MediaSettings
from .validate import Checked, check, clock, decode_audio


@dataclass
class Prepared:
    messages: list[Message]
    parts: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any] | None:
        """What goes into ``Completion.extra["media"]`` (None without media)."""
        return {"parts": self.parts} if self.parts else None


def prepare_media(messages: Sequence[Message], capabilities: Capabilities, settings: MediaSettings,
                  names: dict[tuple[int, int], str] | None = None) -> Prepared:
    found = find_parts(messages, names)
    if not found:
        return Prepared(list(messages))
    native = set(capabilities.input_modalities)
    budget = Budget(settings, native)
    budget.count(found)
    # 1. load and check everything; nothing is processed further until all parts pass
    checked: dict[int, Checked | None] = {}
    for i, mp in enumerate(found):
        if mp.url is not None and mp.kind in native:
            if not settings.fetch_urls:
                raise fetching_off(mp)
            check_url(mp, settings)
            checked[i] = None  # passed on by reference; the engine fetches it
            continue
        checked[i] = check(mp, load_bytes(mp, settings), settings, budget)
    # 2. prepare each part for this engine
    labels = prompts.load("media")
    replace: dict[tuple[int, int], list[dict[str, Any]]] = {}
    report = []
    for i, mp in enumerate(found):
        t0 = time.perf_counter()
        ck = checked[i]
        entry = _entry(mp, ck)
        if mp.kind in native:
            replace[mp.where] = [mp.part]
            entry.update(seen="native", via="native")
        elif mp.kind == "image":
            replace[mp.where] = [_text(_image_text(ck, labels, entry, settings))]
            entry.update(seen="fallback", via="ocr")
        elif mp.kind == "audio":
            replace[mp.where] = [_text(_audio_text(ck, labels, entry, settings))]
            entry.update(seen="fallback", via="asr")
        else:
            replace[mp.where] = _video_parts(ck, labels, entry, settings, frames_native="image" in native,
                                             audio_native="audio" in native)
            entry.update(seen="fallback", via=("frames" if "image" in native else "frames-ocr")
                         + ("+audio" if "audio" in native else "+asr"))
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        report.append(entry)
    out: list[Message] = []
    for mi, m in enumerate(messages):
        if isinstance(m.content, str):
            out.append(m)
            continue
        content: list[dict[str, Any]] = []
        for pi, p in enumerate(m.content):
            content.extend(replace.get((mi, pi), [p]))
        if all(p.get("type") == "text" for p in content):  # text only now: one plain string
            out.append(m.model_copy(update={"content": "\n\n".join(
                t for t in (p["text"].strip() for p in content) if t)}))
        else:
            out.append(m.model_copy(update={"content": content}))
    return Prepared(out, report)


def _entry(mp: MediaPart, ck: Checked | None) -> dict[str, Any]:
    e: dict[str, Any] = {"part": f"{mp.kind} {mp.index}", "kind": mp.kind, "name": mp.name}
    if ck is None:
        e["url"] = mp.url
        return e
    e.update(format=ck.fmt, bytes=len(ck.data), sha256=hashlib.sha256(ck.data).hexdigest())
    if mp.url:
        e["url"] = mp.url
    if ck.width:
        e.update(width=ck.width, height=ck.height)
    if ck.duration_s is not None:
        e["duration_s"] = round(ck.duration_s, 3)
    return e


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": f"{text}\n\n"}


def _image_text(ck: Checked, labels: dict, entry: dict, s: MediaSettings) -> str:
    img = ck.decode_image()  # this part's pixels only, let go on return
    f = image.facts(img)
    text = image.ocr(img, s.max_pixels)
    entry.update(ocr=text, colours=f["colours"])
    fields = dict(n=ck.part.index, name=ck.part.name, width=f["width"], height=f["height"],
                  colours=image.colour_words(f), text=text)
    entry["text"] = (labels["image_ocr"] if text else labels["image_no_text"]).format(**fields)
    return entry["text"]


def _transcript(segments: list[audio.Segment], stamps: bool) -> str:
    if stamps:
        return " ".join(f"[{clock(s.start)}–{clock(s.end)}] {s.text}" for s in segments)
    return " ".join(s.text for s in segments)


def _audio_text(ck: Checked, labels: dict, entry: dict, s: MediaSettings) -> str:
    samples, _ = decode_audio(ck.part, ck.data, ck.fmt, s)  # this part's samples only
    segments = audio.transcribe(samples)
    entry["transcript"] = [{"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text} for s in segments]
    fields = dict(n=ck.part.index, name=ck.part.name, duration=clock(ck.duration_s or 0),
                  text=_transcript(segments, stamps=len(segments) > 1))
    entry["text"] = (labels["audio"] if segments else labels["audio_silent"]).format(**fields)
    return entry["text"]


def _video_parts(ck: Checked, labels: dict, entry: dict, s: MediaSettings, frames_native: bool,
                 audio_native: bool) -> list[dict]:
    n = ck.part.index
    frames = video.frames(ck, s)
    rate = len(frames) / ck.duration_s if ck.duration_s else s.frame_rate
    head = labels["video_head"].format(n=n, name=ck.part.name, duration=clock(ck.duration_s or 0),
                                       width=ck.width, height=ck.height, frames=len(frames),
                                       rate=f"{min(rate, s.frame_rate):g}")
    parts: list[dict[str, Any]] = [_text(head)]
    texts = [head]
    entry["frames"] = []
    for fr in frames:
        t = clock(fr.t, frac=True)
        if frames_native:
            label = labels["video_frame"].format(n=n, t=t)
            buf = io.BytesIO()
            fr.image.convert("RGB").save(buf, format="JPEG", quality=90)
            parts += [_text(label), {"type": "image_url", "image_url": {"url": data_url("image/jpeg", buf.getvalue())}}]
            entry["frames"].append({"t": fr.t})
        else:
            text = image.ocr(fr.image, s.max_pixels)
            label = (labels["video_frame_ocr"].format(n=n, t=t, text=text) if text else
                     labels["video_frame_no_text"].format(n=n, t=t, colours=image.colour_words(image.facts(fr.image))))
            parts.append(_text(label))
            entry["frames"].append({"t": fr.t, "ocr": text})
        texts.append(label)
    samples = video.audio_track(ck, s)
    if samples is None:
        tail = labels["video_no_audio"].format(n=n)
    elif audio_native:  # the track itself, as 16 kHz mono WAV
        parts += [_text(labels["video_audio"].format(n=n)), {"type": "input_audio", "input_audio": {
            "data": base64.b64encode(_wav(samples)).decode("ascii"), "format": "wav"}}]
        entry["text"] = "\n".join([*texts, labels["video_audio"].format(n=n)])
        return parts
    else:
        segments = audio.transcribe(samples)
        entry["transcript"] = [{"start": round(x.start, 2), "end": round(x.end, 2), "text": x.text}
                               for x in segments]
        tail = (labels["video_transcript"].format(n=n, text=_transcript(segments, stamps=True)) if segments
                else labels["video_silent"].format(n=n))
    parts.append(_text(tail))
    texts.append(tail)
    entry["text"] = "\n".join(texts)
    return parts


def _wav(samples) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((samples.clip(-1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()
