"""Media through `muse serve` (a real process on loopback, embedded text-only model): an image
part sent with the official `openai` client is read by OCR and answered, the stored conversation
keeps a reference to the part (name, size, hash, how it was seen); bad media gets a 400 OpenAI
error object naming the part and stores nothing, streamed or not; and, in Debian's Chromium, the
web app attaches a file through its file input, shows it as a chip and gets an answer.
Run: `.venv/bin/pytest tests/test_media_server.py` (needs espeak-ng, tesseract-ocr; chromium for
the web-app test, which is skipped without it outside CI)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil

import httpx
import openai
import pytest

from . import media_samples as ms
from .test_server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("mediahome"))
    yield s
    s.stop()


def _image_part(data: bytes) -> dict:
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()}}


def test_image_part_through_the_openai_client(server):
    png = ms.sign(None, "STOP")
    r = server.client().chat.completions.create(
        model="muse-instant", max_tokens=24, extra_body={"muse": {"media_names": ["sign.png"]}},
        messages=[{"role": "user", "content": [{"type": "text", "text": "What does this sign say?"},
                                               _image_part(png)]}])
    assert r.choices[0].message.content.strip()
    muse = r.model_extra["muse"]
    (part,) = muse["media"]["parts"]
    assert (part["part"], part["name"], part["via"], part["ocr"]) == ("image 1", "sign.png", "ocr", "STOP")
    assert part["text"].startswith("[Image 1 (sign.png, 900×260")
    conv = httpx.get(f"{server.url}/v1/conversations/{muse['conversation_id']}").json()
    user = conv["messages"][0]
    assert user["content"] == "What does this sign say?"
    (ref,) = user["extra"]["media"]
    assert ref["sha256"] == hashlib.sha256(png).hexdigest() and ref["bytes"] == len(png)
    assert (ref["part"], ref["name"], ref["format"], ref["via"]) == ("image 1", "sign.png", "png", "ocr")


def test_audio_part_streamed(server, tmp_path):
    wav = ms.speech(tmp_path / "q.wav", "What is the capital of France?").read_bytes()
    stream = server.client().chat.completions.create(
        model="muse-instant", max_tokens=24, stream=True,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What did I say?"},
            {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}}]}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "Paris" in text


@pytest.mark.parametrize("stream", [False, True])
def test_bad_media_is_a_400_naming_the_part(server, tmp_path, stream):
    before = len(httpx.get(f"{server.url}/v1/conversations").json()["data"])
    for name in ms.BAD:
        flag, path, words = ms.bad_corpus(tmp_path)[name]
        data = path.read_bytes()
        if flag == "--image":
            part = _image_part(data)
        elif flag == "--audio":
            part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"}}
        else:
            part = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(data).decode()}}
        body = {"model": "muse-instant", "stream": stream,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, part]}]}
        r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 400, (name, r.text)
        err = r.json()["error"]
        assert err["code"] == "invalid_media" and err["type"] == "invalid_request_error"
        assert err["message"].startswith(f"{flag[2:]} 1 (") and words in err["message"], err["message"]
        assert "Traceback" not in r.text
    assert len(httpx.get(f"{server.url}/v1/conversations").json()["data"]) == before  # nothing stored
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(model="muse-instant", messages=[
            {"role": "user", "content": [{"type": "text", "text": "q"}, _image_part(ms.png_bomb())]}])
    assert "image 1 (image/png data URL): declares 100000×100000 pixels" in e.value.body["message"]


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="Chromium is not installed")
def test_web_app_attaches_a_file(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from .test_webapp import FLAGS

    ms.sign(tmp_path / "sign.png", "STOP")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.set_default_timeout(180_000)
        page.goto(server.url)
        page.set_input_files("#files", str(tmp_path / "sign.png"))
        page.locator("#chips .chip", has_text="sign.png").wait_for()
        page.fill("#prompt", "What does this sign say?")
        page.click("#send")
        page.locator(".msg.assistant .answer").first.wait_for()  # locators: the app's CSP forbids eval
        expect(page.locator("#send")).to_be_enabled(timeout=180_000)
        assert page.locator("#chips .chip").count() == 0  # sent, the composer is clear again
        assert page.locator(".msg.user .chip", has_text="sign.png").count() == 1  # shown in the stored message
        assert page.locator(".msg.assistant .answer").last.inner_text().strip()
        assert "error" not in (page.locator("#status").get_attribute("class") or "")
        page.screenshot(path=str(tmp_path / "media.png"))
        browser.close()
