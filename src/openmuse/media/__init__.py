"""Multimodal input: image, audio and video parts in the OpenAI chat format, checked and made
ready for the engine that will read them.

What it covers:

- Parts: ``image_url`` (data URL or http(s) URL), ``input_audio`` (base64 wav/mp3/ogg/flac),
  ``audio_url`` and ``video_url`` (mp4/webm/mov/mkv), from requests or from local files
  (``parts.py``).
- Validation before anything is decoded at length (``validate.py``, ``limits.py``): the number
  of parts and URL parts, pixels and seconds across the request, size per part, empty
  data, content sniffing against the declared kind, image dimensions read from the header
  (decompression bombs), declared audio/video duration, then a decode check for truncated or
  corrupt files. Every error names the part (``image 1 (sign.png): truncated PNG file``) and is
  raised before any part is processed further or any engine is called.
- Visual grounding (``grounding.py``): asks a vision engine for points or boxes, parses the
  common conventions into one schema (0–1 of the original image) and draws them numbered.
- Preparation per engine (``prepare.py``): a part goes unchanged to an engine that declares its
  modality; otherwise it goes through an offline fallback: speech to text with faster-whisper
  and the packaged Whisper tiny.en model (``audio.py``), OCR with Tesseract plus basic facts
  for images (``image.py``), sampled frames with timestamps plus the audio track for videos
  (``video.py``). Fallback text is inserted where the part was, clearly labelled, and the
  report says how each part was seen. No part is dropped silently.

What it does not cover: grounding without a vision engine, image generation,
audio output, documents (PDF), and understanding of pictures beyond the text in them and
their colours when the engine cannot see images. http(s) URLs going natively to an engine are
checked (``fetch.py``: public addresses only, unless allowed) and passed on unfetched (the
engine fetches them); they are fetched only when a fallback needs their bytes, through the same
guard, and never when ``fetch_urls`` is off (then URL parts are refused). Limits per request
(parts, URL parts, pixels, seconds, decode time) are in ``limits.py``.
"""

from __future__ import annotations

from .parts import MediaPart, parts_from_files
from .prepare import Prepared, prepare_media
from .settings import MODALITIES, MediaSettings

__all__ = ["MODALITIES", "MediaPart", "MediaSettings", "Prepared", "parts_from_files", "prepare_media"]
