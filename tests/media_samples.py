"""Media made by the tests themselves: speech from espeak-ng, signs drawn with Pillow, a short
video muxed with PyAV (a different word on screen each second plus a speech track), and a
corpus of bad files (truncated, empty, a decompression bomb, wrong types, a WAV header that
declares hours). Nothing is downloaded."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import wave
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont


def need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        if __import__("os").environ.get("CI"):
            raise RuntimeError("espeak-ng is missing (.ci/run installs it)")
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def speech(path: Path, text: str) -> Path:
    """``text`` spoken by espeak-ng into a WAV file (22.05 kHz mono)."""
    need_espeak()
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), text], check=True)
    return path


def sign(path: Path | None, text: str, size: tuple[int, int] = (900, 260), fmt: str = "PNG") -> bytes:
    """Large black ``text`` on white; written to ``path`` if given. Returns the bytes."""
    img = sign_image(text, size)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


def sign_image(text: str, size: tuple[int, int] = (900, 260), bg: str = "white") -> Image.Image:
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=size[1] // 3)
    d.text((size[0] // 20, size[1] // 3), text, fill="black", font=font)
    return img


def video(path: Path, words: list[str], speech_wav: Path | None, fps: int = 10) -> Path:
    """An MP4 (MPEG-4 video, AAC audio): one second per word, the word drawn large; the speech
    muxed in as its audio track."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        vs.bit_rate = 800_000
        a_stream = None
        if speech_wav is not None:
            with wave.open(str(speech_wav)) as w:
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            a_stream = out.add_stream("aac", rate=rate)
            a_stream.layout = "mono"
        for i, word in enumerate(words):
            img = sign_image(word, (320, 240))
            for k in range(fps):
                frame = av.VideoFrame.from_image(img)
                frame.pts = i * fps + k
                frame.time_base = Fraction(1, fps)
                for p in vs.encode(frame):
                    out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if a_stream is not None:
            af = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            af.sample_rate, af.pts = rate, 0
            for p in a_stream.encode(af):
                out.mux(p)
            for p in a_stream.encode():
                out.mux(p)
    return path


def wav_bytes(seconds: float = 1.0, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.zeros(int(seconds * rate), dtype=np.int16).tobytes())
    return buf.getvalue()


def long_wav_header(hours: float = 3.0, rate: int = 16000) -> bytes:
    """A WAV whose header declares ``hours`` of audio, with one second of data behind it."""
    data_size = int(hours * 3600 * rate * 2)
    head = b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return head + fmt + b"data" + struct.pack("<I", data_size) + b"\x00" * rate * 2


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares ``width``×``height`` pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD = ["truncated.png", "empty.png", "bomb.png", "sound.png", "picture.wav", "hours.wav", "noise.mp4"]


def bad_corpus(tmp: Path) -> dict[str, tuple[str, Path, str]]:
    """name -> (flag, file, words the error must contain). Each file is bad in one way."""
    good_png = sign(None, "STOP")
    files = {
        "truncated.png": ("--image", good_png[: len(good_png) // 2], "truncated PNG file"),
        "empty.png": ("--image", b"", "empty (0 bytes)"),
        "bomb.png": ("--image", png_bomb(), "100000×100000"),
        "sound.png": ("--image", wav_bytes(), "WAV audio, not an image"),
        "picture.wav": ("--audio", good_png, "PNG image, not audio"),
        "hours.wav": ("--audio", long_wav_header(3.0), "over the limit"),
        "noise.mp4": ("--video", b"\x00\x00\x00\x18ftypisom" + b"\x13" * 500, "corrupt MP4 video"),
    }
    out = {}
    for name, (flag, data, words) in files.items():
        p = tmp / name
        p.write_bytes(data)
        out[name] = (flag, p, words)
    return out


def standard_set(d: Path) -> Path:
    """The media most tests use, written into ``d``: a spoken question, a STOP sign, and a
    three-second video of words with that question as its sound track."""
    speech(d / "q.wav", "What is the capital of France?")
    sign(d / "sign.png", "STOP")
    video(d / "clip.mp4", ["ONE", "TWO", "THREE"], d / "q.wav")
    return d
