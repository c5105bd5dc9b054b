"""The native path: media parts reach an engine that declares their modality unchanged. The
engine is the `openai` engine with `--modalities`, talking to the recording OpenAI-compatible
endpoint (tests/recording_endpoint.py), a test double standing in for a vision/audio model
(vLLM serving Qwen2.5-Omni, say), which no package ships. Also: a video to an image-only engine
arrives as timestamped frames plus the transcript, and Contemplating's agents all get the parts.
Run: `.venv/bin/pytest tests/test_media_native.py` (needs espeak-ng and tesseract-ocr)."""

from __future__ import annotations

import base64
import json

import pytest

from openmuse.assistant import Assistant
from openmuse.engines import EngineSettings, create_engine
from openmuse.media import MediaSettings, prepare_media
from openmuse.types import Message

from . import media_samples as ms
from .conftest import run_muse
from .recording_endpoint import RecordingEndpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return ms.standard_set(tmp_path_factory.mktemp("native-media"))


@pytest.fixture()
def endpoint():
    ep = RecordingEndpoint(reasoning="", answer="I see it.", style="reasoning_content")
    yield ep
    ep.close()


def _b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_cli_parts_arrive_unchanged(files, endpoint):
    r = run_muse("Describe these.", "--engine", "openai", "--base-url", endpoint.url,
                 "--modalities", "image,audio,video", "--image", str(files / "sign.png"),
                 "--audio", str(files / "q.wav"), "--video", str(files / "clip.mp4"), "--json")
    assert r.returncode == 0, r.stderr
    (req,) = endpoint.requests
    user = [m for m in req["messages"] if m["role"] == "user"][-1]
    assert user["content"] == [
        {"type": "text", "text": "Describe these."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(files / 'sign.png')}"}},
        {"type": "input_audio", "input_audio": {"data": _b64(files / "q.wav"), "format": "wav"}},
        {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{_b64(files / 'clip.mp4')}"}},
    ]
    parts = json.loads(r.stdout)["media"]["parts"]
    assert [(p["part"], p["seen"]) for p in parts] == [("image 1", "native"), ("audio 1", "native"),
                                                       ("video 1", "native")]


def test_request_parts_and_urls_unchanged_through_modes(files, endpoint):
    engine = create_engine(EngineSettings(engine="openai", base_url=endpoint.url, modalities="image,audio"))
    parts = [
        {"type": "text", "text": "What is on the sign, and what is said?"},
        {"type": "image_url", "image_url": {"url": "https://images.example.invalid/sign.png", "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": _b64(files / "q.wav"), "format": "wav"}},
    ]
    # a URL passed on is checked first: this name does not resolve, so it is allow-listed
    prepared = prepare_media([Message(role="user", content=parts)], engine.capabilities,
                             MediaSettings(fetch_allow=("images.example.invalid",)))
    assert prepared.report()["parts"][0] == {"part": "image 1", "kind": "image", "name": "sign.png",
                                             "url": "https://images.example.invalid/sign.png",
                                             "seen": "native", "via": "native",
                                             "seconds": prepared.report()["parts"][0]["seconds"]}
    assistant = Assistant(engine, MediaSettings(fetch_allow=("images.example.invalid",)))
    asked = [Message(role="user", content=parts)]
    r = assistant.answer(asked, "instant")
    assert r.media.parts[0].via == "native" and r.media.parts[0].name == "sign.png"
    assistant.answer(asked, "contemplating", {"agents": 2, "early_stop": False, "aggregator": "majority",
                                              "agent_tokens": 8})
    agent_requests = [r for r in endpoint.requests if r.get("logprobs")]
    assert len(agent_requests) >= 2
    for req in [endpoint.requests[0], *agent_requests]:
        user = [m for m in req["messages"] if m["role"] == "user"][-1]
        assert user["content"][:3] == parts  # unchanged, the agent's approach after them


def test_video_to_an_image_only_engine_is_frames_and_transcript(files, endpoint):
    r = run_muse("What happens?", "--engine", "openai", "--base-url", endpoint.url, "--modalities", "image",
                 "--video", str(files / "clip.mp4"), "--json")
    assert r.returncode == 0, r.stderr
    user = [m for m in endpoint.requests[0]["messages"] if m["role"] == "user"][-1]
    kinds = [c["type"] for c in user["content"]]
    assert kinds.count("image_url") == 3 and "video_url" not in kinds
    texts = " ".join(c["text"] for c in user["content"] if c["type"] == "text")
    for t in ("0:00.0", "0:01.0", "0:02.0"):
        assert f"[Video 1, frame at {t}]" in texts
    assert "transcript" in texts and "France" in texts
    (part,) = json.loads(r.stdout)["media"]["parts"]
    assert part["via"] == "frames+asr" and [f["t"] for f in part["frames"]] == [0.0, 1.0, 2.0]


def test_video_to_an_image_and_audio_engine_keeps_its_audio_track(files, endpoint):
    engine = create_engine(EngineSettings(engine="openai", base_url=endpoint.url, modalities="image,audio"))
    part = {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{_b64(files / 'clip.mp4')}"}}
    prepared = prepare_media([Message(role="user", content=[{"type": "text", "text": "What happens?"}, part])],
                             engine.capabilities, MediaSettings())
    content = prepared.messages[0].content
    assert [c["type"] for c in content].count("image_url") == 3
    (track,) = [c for c in content if c["type"] == "input_audio"]
    assert track["input_audio"]["format"] == "wav" and base64.b64decode(track["input_audio"]["data"])[:4] == b"RIFF"
    assert prepared.report()["parts"][0]["via"] == "frames+audio"
