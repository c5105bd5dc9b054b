"""Security of media input: server-side request forgery through URL parts, and memory bombs
spread across parts. Most tests run against `muse serve` (a real process on loopback, the
embedded text-only model, so every URL part goes through the fetching fallback) and loopback
HTTP listeners that stand in for internal services and for an allowed "public" server (test
doubles at the network seam, counting their hits). The attacks come from tests/attacks/media.json.

It proves: an internal listener is never hit, directly or through redirects (also to ftp://);
every fetch failure reads the same (closed port, open port, 404, timeout, oversized);
a slow-drip body is cut off by the total deadline and a big body by the size cap; URL parts
and parts are counted; fetching is off on a non-loopback bind by default; pixels are totalled
across parts; a thin PNG that OCR would enlarge to 36 GB is refused before decoding, and the
server lives on. Run: `.venv/bin/pytest tests/test_security_media.py` (needs tesseract-ocr)."""

from __future__ import annotations

import base64
import http.server
import io
import ipaddress
import json
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from PIL import Image

from openmuse.errors import MediaError
from openmuse.media import MediaSettings, prepare_media
from openmuse.media.fetch import fetching_on, is_public
from openmuse.media.limits import ocr_scale
from openmuse.types import Capabilities, Message

from . import media_samples as ms
from .conftest import free_port
from .test_server import Server

ATTACKS = json.loads((Path(__file__).parent / "attacks" / "media.json").read_text())
GENERIC = "the URL could not be fetched"
DRIP_BYTES, DRIP_EVERY = 60, 0.2  # 12 s of drip against a 2 s deadline
BIG_BYTES = 64 * 1024 * 1024  # streamed in 64 KiB chunks against a 1 MB cap


class Listener:
    """A loopback HTTP server in a thread (test double): counts hits; /ok.png serves a sign,
    /redirect?to=URL redirects, /drip drips its body, /big streams more than the cap."""

    def __init__(self):
        self.hits, self.sent, self.done = 0, {}, {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                owner.hits += 1
                owner.route(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, h) -> None:
        url = urlsplit(h.path)
        if url.path == "/ok.png":
            body = ms.sign(None, "STOP")
            h.send_response(200)
            h.send_header("content-type", "image/png")
            h.send_header("content-length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        elif url.path == "/redirect":
            h.send_response(302)
            h.send_header("location", parse_qs(url.query)["to"][0])
            h.end_headers()
        elif url.path in ("/drip", "/big"):
            self._stream(h, url.path)
        else:
            h.send_error(404, "internal secret banner")

    def _stream(self, h, path: str) -> None:
        h.send_response(200)
        h.send_header("content-type", "image/png")
        if path == "/drip":
            h.send_header("content-length", str(DRIP_BYTES))
        h.end_headers()
        chunk, count, pause = (b"\x89", DRIP_BYTES, DRIP_EVERY) if path == "/drip" else (
            b"\0" * 65536, BIG_BYTES // 65536, 0)
        self.sent[path], self.done[path] = 0, False
        try:
            for _ in range(count):  # bounded
                h.wfile.write(chunk)
                h.wfile.flush()
                self.sent[path] += len(chunk)
                time.sleep(pause)
            self.done[path] = True
        except OSError:  # the client hung up
            pass

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def listeners():
    internal, public = Listener(), Listener()
    yield internal, public
    internal.close()
    public.close()


@pytest.fixture(scope="module")
def closed_port():
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory, listeners, closed_port):
    """`muse serve` on loopback; the public listener's port and a closed port are allow-listed."""
    _, public = listeners
    s = Server(tmp_path_factory.mktemp("securityhome"), "--fetch-allow", f"127.0.0.1:{public.port}",
               "--fetch-allow", f"127.0.0.1:{closed_port}", "--fetch-timeout", "2", "--max-media-mb", "1")
    yield s
    s.stop()


def _url(template: str, listeners, closed: int = 0) -> str:
    internal, public = listeners
    return template.format(internal=internal.port, public=public.port, closed=closed)


def _ask(server, parts: list[dict], max_tokens: int = 8) -> httpx.Response:
    body = {"model": "muse-instant", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, *parts]}]}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)


def _refused(r: httpx.Response, *words: str) -> str:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_media" and err["type"] == "invalid_request_error", err
    for w in words:
        assert w in err["message"], err["message"]
    assert "\n" not in err["message"] and "Traceback" not in r.text
    return err["message"]


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def _png(size: tuple[int, int], colour: int = 255) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _data(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# -- server-side request forgery -----------------------------------------------------------
def test_internal_addresses_are_never_fetched(server, listeners):
    internal, _ = listeners
    kinds = [("image_url", "image"), ("video_url", "video"), ("audio_url", "audio")]
    for entry in ATTACKS["internal_urls"]:
        for key, kind in kinds:
            url = _url(entry["url"], listeners)
            msg = _refused(_ask(server, [{"type": key, key: {"url": url}}]), GENERIC)
            assert msg == f"{kind} 1 (a.png): {GENERIC}", (entry["why"], msg)
    assert internal.hits == 0


def test_allowed_server_is_fetched_and_its_redirects_are_checked(server, listeners):
    internal, public = listeners
    r = _ask(server, [_image(f"http://127.0.0.1:{public.port}/ok.png")])
    assert r.status_code == 200, r.text
    (part,) = r.json()["muse"]["media"]["parts"]
    assert (part["via"], part["ocr"], part["format"]) == ("ocr", "STOP", "png")  # the allow knob works
    before = public.hits
    for entry in ATTACKS["redirects"]:
        to = quote(_url(entry["to"], listeners), safe="")
        msg = _refused(_ask(server, [_image(f"http://127.0.0.1:{public.port}/redirect?to={to}")]))
        assert msg == f"image 1 (redirect): {GENERIC}", (entry["why"], msg)
    assert public.hits > before  # the first hop was made, the internal one never
    assert internal.hits == 0


def test_every_failure_reads_the_same(server, listeners, closed_port):
    """Closed port (allowed, so a connection is tried), open non-allowed port, 404 with a
    banner, a name that does not resolve: one message, nothing about the network."""
    internal, public = listeners
    urls = [f"http://127.0.0.1:{closed_port}/a.png", f"http://127.0.0.1:{internal.port}/a.png",
            f"http://127.0.0.1:{public.port}/missing/a.png", "http://no-such-host.invalid/a.png"]
    messages = {_refused(_ask(server, [_image(u)])) for u in urls}
    assert messages == {f"image 1 (a.png): {GENERIC}"}
    assert internal.hits == 0


def test_slow_drip_is_cut_off_by_the_total_deadline(server, listeners):
    _, public = listeners
    t0 = time.monotonic()
    _refused(_ask(server, [_image(f"http://127.0.0.1:{public.port}/drip")]), GENERIC)
    # every byte came within a per-read timeout; only a total deadline (2 s) stops it
    assert time.monotonic() - t0 < DRIP_BYTES * DRIP_EVERY / 2
    assert public.sent["/drip"] < DRIP_BYTES


def test_oversized_body_is_cut_off_while_streaming(server, listeners):
    _, public = listeners
    _refused(_ask(server, [_image(f"http://127.0.0.1:{public.port}/big")]), GENERIC)
    for _ in range(100):  # bounded: wait for the listener to notice the hang-up
        if public.done.get("/big") is False and public.sent["/big"] < BIG_BYTES // 2:
            break
        time.sleep(0.1)
    assert not public.done["/big"] and public.sent["/big"] < BIG_BYTES // 2


def test_too_many_url_parts(server, listeners):
    internal, public = listeners
    n = ATTACKS["shapes"]["url_parts"]["count"]
    parts = [_image(f"http://127.0.0.1:{internal.port}/{i}.png") for i in range(n)]
    _refused(_ask(server, parts), f"image {n} (", f"{n} URL parts", "limit of 4", "--max-url-parts")
    assert internal.hits == 0


def test_fetching_is_off_by_default_on_a_non_loopback_bind(listeners):
    assert not fetching_on("0.0.0.0", None) and not fetching_on("::", None)
    assert not fetching_on("192.168.1.10", None) and not fetching_on("gpu-box.lan", None)
    assert fetching_on("127.0.0.1", None) and fetching_on("localhost", None) and fetching_on("::1", None)
    assert fetching_on("0.0.0.0", True) and not fetching_on("127.0.0.1", False)
    # off means no URL part at all: neither fetched nor handed to an engine that would fetch it
    internal, _ = listeners
    url = f"http://127.0.0.1:{internal.port}/a.png"
    for caps in (Capabilities(), Capabilities(input_modalities=("text", "image"))):
        with pytest.raises(MediaError, match=r"^image 1 \(a.png\): fetching URLs is off"):
            prepare_media([Message(role="user", content=[_image(url)])], caps, MediaSettings(fetch_urls=False))
    assert internal.hits == 0


def test_urls_for_a_native_engine_are_checked_the_same_way(listeners):
    """An engine that takes images gets URLs unfetched: internal ones are refused first."""
    internal, public = listeners
    caps = Capabilities(input_modalities=("text", "image"))
    for entry in ATTACKS["internal_urls"]:
        with pytest.raises(MediaError) as e:
            prepare_media([Message(role="user", content=[_image(_url(entry["url"], listeners))])], caps,
                          MediaSettings())
        assert str(e.value) == f"image 1 (a.png): {GENERIC}", entry["why"]
    ok = f"http://127.0.0.1:{public.port}/ok.png"
    p = prepare_media([Message(role="user", content=[_image(ok)])], caps,
                      MediaSettings(fetch_allow=(f"127.0.0.1:{public.port}",)))
    assert p.messages[0].content == [_image(ok)] and p.report()["parts"][0]["via"] == "native"
    assert internal.hits == 0


def test_metadata_addresses_are_never_public():
    for entry in ATTACKS["metadata_addresses"]:
        assert not is_public(ipaddress.ip_address(entry["ip"])), entry["why"]
    assert is_public(ipaddress.ip_address("1.1.1.1")) and is_public(ipaddress.ip_address("2606:4700::1111"))


# -- memory bombs across parts ---------------------------------------------------------------
def test_too_many_parts(server):
    n = ATTACKS["shapes"]["many_parts"]["count"]
    tiny = _data("image/png", _png(tuple(ATTACKS["shapes"]["many_parts"]["size"])))
    _refused(_ask(server, [_image(tiny)] * n), "image 33 (", f"{n} media parts", "limit of 32", "--max-parts")


def test_pixels_are_totalled_across_parts(server):
    """Three PNGs of 36 MP each pass the 40 MP limit alone; together they pass 100 MP."""
    part = _image(_data("image/png", _png((6000, 6000))))
    _refused(_ask(server, [part] * 3), "image 3 (", "108.0 megapixels", "--max-total-megapixels")


def test_lossless_webp_parts_together_over_the_total(server):
    shape = ATTACKS["shapes"]["webp_lossless"]
    buf = io.BytesIO()
    Image.new("RGB", tuple(shape["size"]), (200, 30, 30)).save(buf, format="WEBP", lossless=True)
    assert len(buf.getvalue()) < 64 * 1024  # tiny on the wire, 108 MB each decoded
    part = _image(_data("image/webp", buf.getvalue()))
    _refused(_ask(server, [part] * shape["count"]), f"image {shape['count']} (", "--max-total-megapixels")


def test_thin_png_is_refused_before_ocr_enlarges_it(server):
    w, h = ATTACKS["shapes"]["thin_png"]["size"]
    png = _png((w, h))
    assert len(png) < 200 * 1024 and w * h <= MediaSettings().max_pixels  # passes the per-image check
    msg = _refused(_ask(server, [_image(_data("image/png", png))]), "image 1 (", "enlarged for OCR",
                   "--max-megapixels")
    assert f"{w:,}×{h:,}".replace(",", "") in msg.replace(",", "")
    assert server.proc.poll() is None and httpx.get(f"{server.url}/health").status_code == 200


def test_ocr_never_enlarges_past_the_cap():
    cap = MediaSettings().max_pixels
    for w, h in [(4_000_000, 10), (1000, 1), (200, 150), (299, 299), (10, 4_000_000)]:
        s = ocr_scale(w, h, cap)
        assert s >= 1.0 and int(w * s) * int(h * s) <= max(cap, w * h)
    assert ocr_scale(100, 100, cap) == 3.0  # small, square: short side to 300 px as before
