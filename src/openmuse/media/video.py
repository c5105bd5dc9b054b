"""Video as frames and sound, for engines that cannot take video: frames sampled at a rate
(spread wider when the clip would give more than the most frames), each with its timestamp,
decoded with PyAV within the wall-clock limit of one decode; the audio track decoded for
speech recognition."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from .limits import DecodeClock
from .settings import MediaSettings
from .validate import Checked, _av_message, decode_audio


@dataclass(frozen=True)
class Frame:
    t: float  # seconds from the start
    image: Any  # PIL image


def sample_times(duration: float, rate: float, max_frames: int) -> list[float]:
    """Times to sample: every 1/rate s from 0, spread evenly instead when there would be more
    than ``max_frames``."""
    n = max(1, int(duration * rate + 1e-9))
    if n <= max_frames:
        return [i / rate for i in range(n)]
    step = duration / max_frames
    return [i * step for i in range(max_frames)]


def frames(ck: Checked, s: MediaSettings) -> list[Frame]:
    """The first frame at or after each sample time."""
    import av

    times = sample_times(ck.duration_s or 0.0, s.frame_rate, s.max_frames)
    out: list[Frame] = []
    timer = DecodeClock(ck.part, s)
    try:
        with av.open(io.BytesIO(ck.data), mode="r", metadata_errors="ignore") as container:
            st = container.streams.video[0]
            start = float(st.start_time * st.time_base) if st.start_time is not None else 0.0
            want = 0
            for frame in container.decode(st):
                timer.tick()
                if frame.pts is None:
                    continue
                t = float(frame.pts * st.time_base) - start
                while want < len(times) and t + 1e-3 >= times[want]:
                    if not out or out[-1].t != round(t, 3):
                        out.append(Frame(round(t, 3), frame.to_image()))
                    want += 1
                if want >= len(times):
                    break
    except av.error.FFmpegError as e:
        raise ck.part.error(f"corrupt video while decoding frames ({_av_message(e)})") from None
    return out


def audio_track(ck: Checked, s: MediaSettings):
    """16 kHz mono samples of the first audio stream, or None when there is none."""
    samples, _ = decode_audio(ck.part, ck.data, ck.fmt, s, required=False)
    return samples
