"""Limits and sampling for media parts. Every field has a CLI flag and a ``MUSE_*`` variable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MODALITIES = ("text", "image", "audio", "video")


class MediaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Largest part, in MB of decoded bytes (the server's body limit applies to the request too).
    max_media_mb: float = Field(default=20.0, gt=0)
    # Largest image or video frame, in megapixels, read from the header before decoding.
    max_megapixels: float = Field(default=40.0, gt=0)
    # Longest audio or video, in seconds, read from the header before decoding.
    max_duration_s: float = Field(default=600.0, gt=0)
    # Video frames sampled per second when the engine cannot take video, and the most frames.
    frame_rate: float = Field(default=1.0, gt=0, le=30)
    max_frames: int = Field(default=16, ge=1, le=256)
    # Media URLs: fetched (or checked before an engine is given them) only when on; the server
    # turns them off on a non-loopback bind unless asked (see fetch.py for what is refused).
    fetch_urls: bool = True
    # Total time for one fetch (resolution, redirects, the body), not per read.
    fetch_timeout_s: float = Field(default=15.0, gt=0, le=600)
    # Networks, addresses or host names (each optionally :PORT) fetched although not public.
    fetch_allow: tuple[str, ...] = ()
    # Per request: URL parts, media parts of every kind, decoded pixels (images and video
    # frames), seconds of audio and video; and the wall-clock limit of one container decode.
    max_url_parts: int = Field(default=4, ge=0, le=64)
    max_parts: int = Field(default=32, ge=1, le=1024)
    max_total_megapixels: float = Field(default=100.0, gt=0)
    max_total_duration_s: float = Field(default=1200.0, gt=0)
    max_decode_s: float = Field(default=60.0, gt=0)

    @property
    def max_bytes(self) -> int:
        return int(self.max_media_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)

    @property
    def max_total_pixels(self) -> int:
        return int(self.max_total_megapixels * 1_000_000)
