"""Media preparation in process, with the real offline models: speech made by espeak-ng is
transcribed by faster-whisper (packaged Whisper tiny.en), a sign drawn with Pillow is read by
Tesseract, a video muxed with PyAV is sampled into timestamped frames plus its transcript, and
every file of the bad-media corpus gets its one-line error naming the part.
Run: `.venv/bin/pytest tests/test_media.py` (needs espeak-ng, tesseract-ocr, tesseract-ocr-eng)."""

from __future__ import annotations

import base64

import pytest

from openmuse.errors import ConfigError, MediaError
from openmuse.media import MediaSettings, parts_from_files, prepare_media
from openmuse.media.validate import sniff
from openmuse.media.video import sample_times
from openmuse.modes.base import check_messages
from openmuse.types import Capabilities, Message

from . import media_samples as ms

TEXT_ONLY = Capabilities()
SETTINGS = MediaSettings()


def _prepare(kind: str, path, caps=TEXT_ONLY, settings=SETTINGS, question: str = "What is this?"):
    part, name = parts_from_files(kind, [str(path)], settings)[0]
    msgs = [Message(role="user", content=[{"type": "text", "text": question}, part])]
    return prepare_media(msgs, caps, settings, {(0, 1): name})


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    return ms.standard_set(tmp_path_factory.mktemp("media"))


def test_speech_is_transcribed(media_dir):
    p = _prepare("audio", media_dir / "q.wav", question="What did I say?")
    (entry,) = p.report()["parts"]
    assert (entry["part"], entry["seen"], entry["via"], entry["format"]) == ("audio 1", "fallback", "asr", "wav")
    spoken = " ".join(s["text"] for s in entry["transcript"]).lower()
    assert "capital" in spoken and "france" in spoken
    # one plain string for a text-only engine: the question, then the labelled transcript
    text = p.messages[0].content
    assert isinstance(text, str) and text.startswith("What did I say?")
    assert '[Audio 1 (q.wav, 0:0' in text and "transcript:" in text and "France" in text


def test_sign_is_read_by_ocr(media_dir):
    p = _prepare("image", media_dir / "sign.png")
    (entry,) = p.report()["parts"]
    assert entry["via"] == "ocr" and "STOP" in entry["ocr"]
    assert (entry["width"], entry["height"]) == (900, 260)
    assert entry["colours"][0]["name"] == "white"
    assert '[Image 1 (sign.png, 900×260, mostly white' in p.messages[0].text()
    assert 'text read by OCR: "STOP"' in p.messages[0].text()


def test_video_frames_at_the_rate_with_timestamps_and_transcript(media_dir):
    p = _prepare("video", media_dir / "clip.mp4")
    (entry,) = p.report()["parts"]
    assert entry["via"] == "frames-ocr+asr" and entry["duration_s"] == pytest.approx(3.0, abs=0.1)
    assert [f["t"] for f in entry["frames"]] == [0.0, 1.0, 2.0]
    assert [f["ocr"] for f in entry["frames"]] == ["ONE", "TWO", "THREE"]
    assert "france" in " ".join(s["text"] for s in entry["transcript"]).lower()
    text = p.messages[0].text()
    assert '[Video 1 at 0:01.0, text read by OCR: "TWO"]' in text and "audio track, transcript" in text

    # twice the rate: frames every half second
    p2 = _prepare("video", media_dir / "clip.mp4", settings=MediaSettings(frame_rate=2.0))
    assert [f["t"] for f in p2.report()["parts"][0]["frames"]] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    # more frames than allowed: spread evenly over the clip
    p3 = _prepare("video", media_dir / "clip.mp4", settings=MediaSettings(frame_rate=4.0, max_frames=3))
    assert [f["t"] for f in p3.report()["parts"][0]["frames"]] == [0.0, 1.0, 2.0]


def test_sample_times():
    assert sample_times(3.0, 1.0, 16) == [0.0, 1.0, 2.0]
    assert sample_times(10.0, 1.0, 4) == [0.0, 2.5, 5.0, 7.5]
    assert sample_times(0.2, 1.0, 4) == [0.0]


def test_video_to_an_image_engine_is_frames_plus_transcript(media_dir):
    p = _prepare("video", media_dir / "clip.mp4", caps=Capabilities(input_modalities=("text", "image")))
    content = p.messages[0].content
    images = [c for c in content if c["type"] == "image_url"]
    assert len(images) == 3 and all(c["image_url"]["url"].startswith("data:image/jpeg;base64,") for c in images)
    texts = [c["text"] for c in content if c["type"] == "text"]
    assert any("[Video 1, frame at 0:02.0]" in t for t in texts)
    assert any("transcript" in t and "France" in t for t in texts)
    assert p.report()["parts"][0]["via"] == "frames+asr"


@pytest.mark.parametrize("name", ms.BAD)
def test_bad_media_named_error(tmp_path, name):
    flag, path, words = ms.bad_corpus(tmp_path)[name]
    with pytest.raises(MediaError) as e:
        _prepare(flag[2:], path)
    msg = str(e.value)
    assert msg.startswith(f"{flag[2:]} 1 ({name}): ") and words in msg and "\n" not in msg


def test_duration_limit_is_checked(media_dir):
    with pytest.raises(MediaError, match=r"audio 1 \(q.wav\): .* over the limit of 0:01 \(1 s\)"):
        _prepare("audio", media_dir / "q.wav", settings=MediaSettings(max_duration_s=1.0))
    with pytest.raises(MediaError, match=r"video 1 \(clip.mp4\): declares 0:03 long"):
        _prepare("video", media_dir / "clip.mp4", settings=MediaSettings(max_duration_s=2.0))


def test_size_and_pixel_limits(media_dir):
    with pytest.raises(MediaError, match=r"image 1 \(sign.png\): .* over the limit of 0.001 MB"):
        _prepare("image", media_dir / "sign.png", settings=MediaSettings(max_media_mb=0.001))
    with pytest.raises(MediaError, match=r"image 1 \(sign.png\): declares 900×260 pixels"):
        _prepare("image", media_dir / "sign.png", settings=MediaSettings(max_megapixels=0.1))


def test_request_parts_errors():
    def run(part):
        prepare_media([Message(role="user", content=[{"type": "text", "text": "q"}, part])], TEXT_ONLY, SETTINGS)

    with pytest.raises(MediaError, match=r"image 1 \(image/png data URL\): the data is not valid base64"):
        run({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@not-base64@@@"}})
    with pytest.raises(MediaError, match=r"only data URLs and http\(s\) URLs"):
        run({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}})
    with pytest.raises(MediaError, match=r"unknown content part type 'hologram'"):
        run({"type": "hologram", "hologram": {}})
    with pytest.raises(MediaError, match=r"audio 1 \(input_audio.wav\): the data is a PNG image, not audio"):
        run({"type": "input_audio", "input_audio": {"data": base64.b64encode(ms.sign(None, "X")).decode(),
                                                    "format": "wav"}})
    with pytest.raises(MediaError, match=r"fetching URLs is off"):
        prepare_media([Message(role="user", content=[{"type": "image_url",
                                                      "image_url": {"url": "http://127.0.0.1:9/a.png"}}])],
                      TEXT_ONLY, MediaSettings(fetch_urls=False))


def test_one_bad_part_stops_the_whole_request(media_dir, tmp_path):
    good, _ = parts_from_files("image", [str(media_dir / "sign.png")], SETTINGS)[0]
    bad = {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                              + base64.b64encode(ms.sign(None, "X")[:300]).decode()}}
    msgs = [Message(role="user", content=[{"type": "text", "text": "q"}, good, bad])]
    with pytest.raises(MediaError, match=r"^image 2 \(image/png data URL\): truncated PNG file$"):
        prepare_media(msgs, TEXT_ONLY, SETTINGS)


def test_sniffing_and_media_only_questions():
    assert sniff(ms.wav_bytes()) == "wav" and sniff(ms.png_bomb()) == "png" and sniff(b"hello") is None
    check_messages([Message(role="user", content=[{"type": "image_url", "image_url": {"url": "data:,"}}])])
    with pytest.raises(ConfigError):
        check_messages([Message(role="user", content=[{"type": "text", "text": " "}])])


def test_modes_run_on_prepared_messages(media_dir, engine):
    from openmuse.modes import create_mode

    p = _prepare("audio", media_dir / "q.wav", caps=engine.capabilities, question="What did I say?")
    t = create_mode("thinking", {"budget": 16, "max_tokens": 24}).run(engine, p.messages)
    assert t.answer and t.usage.reasoning_tokens <= 16
    c = create_mode("contemplating", {"agents": 2, "agent_tokens": 16, "max_tokens": 24, "early_stop": False}).run(
        engine, p.messages)
    assert len(c.agents) == 2 and c.answer
