"""`muse` with --image, --audio and --video on the embedded text-only model: the offline
fallbacks (Whisper transcript, Tesseract OCR) reach the model and `--json` says how each part
was seen; every bad file gives one `error:` line naming the part, a non-zero exit and no
traceback. Run: `.venv/bin/pytest tests/test_media_cli.py` (needs espeak-ng and tesseract-ocr)."""

from __future__ import annotations

import json

import pytest

from . import media_samples as ms
from .conftest import run_muse


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-media")
    ms.speech(d / "q.wav", "What is the capital of France?")
    ms.sign(d / "sign.png", "STOP")
    return d


def test_audio_question_is_answered_through_the_transcript(files):
    r = run_muse("What did I say?", "--audio", str(files / "q.wav"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    (part,) = out["media"]["parts"]
    assert (part["part"], part["name"], part["seen"], part["via"]) == ("audio 1", "q.wav", "fallback", "asr")
    assert "France" in part["text"] and part["text"].startswith("[Audio 1 (q.wav")
    assert out["usage"]["prompt_tokens"] > 25  # the transcript went into the prompt
    assert "Paris" in out["answer"]


def test_image_question_sees_the_ocr_text(files):
    r = run_muse("What does this sign say?", "--image", str(files / "sign.png"), "--max-tokens", "24", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    (part,) = out["media"]["parts"]
    assert part["via"] == "ocr" and part["ocr"] == "STOP"
    assert 'text read by OCR: "STOP"' in part["text"]
    assert out["answer"].strip()


def test_plain_output_says_how_parts_were_seen(files):
    r = run_muse("What does this sign say?", "--image", str(files / "sign.png"), "--max-tokens", "16")
    assert r.returncode == 0, r.stderr
    assert "image 1 (sign.png): text read by OCR" in r.stderr


@pytest.mark.parametrize("name", ms.BAD)
def test_bad_media_one_line_error(tmp_path, name):
    flag, path, words = ms.bad_corpus(tmp_path)[name]
    r = run_muse("What is this?", flag, str(path))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {flag[2:]} 1 ({name}): ") and words in lines[0]


def test_missing_file_and_limits(files, tmp_path):
    r = run_muse("What is this?", "--image", str(tmp_path / "nope.png"))
    assert r.returncode != 0 and r.stderr.strip() == "error: image 1 (nope.png): no such file"
    r = run_muse("What did I say?", "--audio", str(files / "q.wav"), env={"MUSE_MAX_DURATION": "1"})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "error: audio 1 (q.wav): " in r.stderr and "over the limit of 0:01" in r.stderr
    r = run_muse("q", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1", "--modalities", "text,smell")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "error: modalities" in r.stderr
