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
    # Fetch http(s) URLs when a fallback needs their bytes.
    fetch_urls: bool = True
    fetch_timeout_s: float = Field(default=30.0, gt=0)

    @property
    def max_bytes(self) -> int:
        return int(self.max_media_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)
