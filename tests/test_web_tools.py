"""The off-by-default web tools (``openmuse.tools.web``): ``fetch`` and ``web_search``.

Test doubles at the outer network seam, named as such: ``FakeSearchEndpoint`` (a SearXNG-style
JSON endpoint) and ``FakeSite`` (web pages, a redirect to a private address, an oversized page),
both tiny HTTP servers on 127.0.0.1 started by the test, counting the requests they get.

It proves: fetch refuses while off, and refuses loopback, private and cloud-metadata addresses
while on (metadata even when allow-listed), directly and through a redirect; an allow-listed
loopback page is read as text, scripts and styles dropped; a page over the size cap is cut, not
refused; web_search refuses until configured, then turns results into sources (and reports an
empty answer as nothing found). Run: `.venv/bin/pytest -q tests/test_web_tools.py`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from openmuse.errors import ConfigError
from openmuse.tools.base import ToolBox, ToolError, ToolSettings
from openmuse.tools.web import MAX_BYTES, Fetch, WebSearch, html_text, with_query
from openmuse.types import ToolCall

PAGE = b"""<!doctype html><html><head><title>Test  page</title><style>body{color:red}</style>
<script>var secret = "SCRIPT-TEXT";</script></head>
<body><h1>Hello</h1><p>First   paragraph &amp; more.</p><noscript>NOSCRIPT-TEXT</noscript>
<ul><li>one</li><li>two</li></ul><script type="module">alert("x")</script></body></html>"""


class _Server:
    """A loopback HTTP server whose GETs go to ``self.route(path) -> (status, headers, body)``."""

    def __init__(self):
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits.append(self.path)
                status, headers, body = outer.route(self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeSite(_Server):
    """Test double: web pages at the network seam."""

    def route(self, path):
        html = {"content-type": "text/html; charset=utf-8"}
        if path == "/page":
            return 200, html, PAGE
        if path == "/big":
            return 200, html, b"<p>" + b"word " * (MAX_BYTES // 5 + 200_000) + b"</p>"
        if path == "/to-private":
            return 302, {"location": "http://10.1.2.3/admin"}, b""
        if path == "/to-metadata":
            return 302, {"location": "http://169.254.169.254/latest/meta-data/"}, b""
        if path == "/to-other-loopback":
            return 302, {"location": f"http://127.0.0.2:{self.port}/page"}, b""
        if path == "/to-page":
            return 301, {"location": "/page"}, b""
        if path == "/image":
            return 200, {"content-type": "image/png"}, b"\x89PNG\r\n\x1a\n"
        return 404, {"content-type": "text/plain"}, b"not found"


class FakeSearchEndpoint(_Server):
    """Test double: a SearXNG-style JSON search endpoint at the network seam."""

    def route(self, path):
        q = parse_qs(urlsplit(path).query)
        if q.get("format") != ["json"]:
            return 400, {}, b"format=json expected"
        query = q.get("q", [""])[0]
        results = [] if "nothing" in query else [
            {"title": f"Result {i} for {query}", "url": f"https://example.org/{i}", "content": f"Snippet {i}."}
            for i in range(1, 6)] + [{"title": "no url"}]
        return 200, {"content-type": "application/json"}, json.dumps({"results": results}).encode()


@pytest.fixture(scope="module")
def site():
    s = FakeSite()
    yield s
    s.close()


@pytest.fixture(scope="module")
def endpoint():
    s = FakeSearchEndpoint()
    yield s
    s.close()


def call(tool: str, settings: ToolSettings, **args):
    return ToolBox.load([tool], settings).call(ToolCall(id="c1", name=tool, arguments=json.dumps(args)))


def test_off_by_default():
    box = ToolBox.load(None, ToolSettings())
    assert "fetch" not in box.names and "web_search" not in box.names
    assert Fetch.default is False and WebSearch.default is False


def test_fetch_refuses_while_off(site):
    before = len(site.hits)
    with pytest.raises(ConfigError, match="fetch"):  # the ToolBox does not offer it
        ToolBox.load(["fetch"], ToolSettings())
    with pytest.raises(ToolError, match="fetch is off.*--fetch-tool"):  # nor does the tool run
        Fetch(ToolSettings()).call(url=site.url + "/page")
    assert len(site.hits) == before


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/page", "http://localhost:{port}/page",
                                 "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/",
                                 "http://192.168.1.1/", "http://[::1]:{port}/page", "ftp://example.org/x",
                                 "file:///etc/passwd"])
def test_fetch_refuses_non_public(site, url):
    before = len(site.hits)
    obs = call("fetch", ToolSettings(fetch=True), url=url.format(port=site.port))
    assert not obs.ok and ("refused" in obs.text or "only http" in obs.text)
    assert len(site.hits) == before  # the listener was never reached


def test_metadata_refused_even_when_allowed():
    with pytest.raises(ToolError, match="refused"):
        Fetch(ToolSettings(fetch=True, fetch_allow=("169.254.0.0/16",))).call(url="http://169.254.169.254/")


def test_fetch_reads_allowed_loopback_page(site):
    obs = call("fetch", ToolSettings(fetch=True, fetch_allow=("127.0.0.1",)), url=site.url + "/page")
    assert obs.ok, obs.text
    assert "Hello" in obs.text and "First paragraph & more." in obs.text and "one\ntwo" in obs.text
    for junk in ("SCRIPT-TEXT", "alert", "color:red", "NOSCRIPT-TEXT", "<p>"):
        assert junk not in obs.text
    assert len(obs.sources) == 1 and obs.sources[0].ref == site.url + "/page"
    assert obs.sources[0].title == "Test page"


def test_relative_redirect_followed(site):
    obs = call("fetch", ToolSettings(fetch=True, fetch_allow=("127.0.0.1",)), url=site.url + "/to-page")
    assert obs.ok and "Hello" in obs.text and obs.sources[0].ref == site.url + "/page"


@pytest.mark.parametrize("path", ["/to-private", "/to-metadata", "/to-other-loopback"])
def test_redirect_to_private_refused(site, path):
    obs = call("fetch", ToolSettings(fetch=True, fetch_allow=("127.0.0.1",)), url=site.url + path)
    assert not obs.ok and "refused" in obs.text
    assert "/page" not in site.hits[-1:]  # the redirect's target was never requested


def test_oversized_page_is_cut(site):
    settings = ToolSettings(fetch=True, fetch_allow=("127.0.0.1",), output_chars=3000)
    obs = call("fetch", settings, url=site.url + "/big")
    assert obs.ok and obs.truncated
    assert "[… page cut]" in obs.text and len(obs.text) < 3200


def test_fetch_refuses_non_text_and_reports_status(site):
    settings = ToolSettings(fetch=True, fetch_allow=("127.0.0.1",))
    obs = call("fetch", settings, url=site.url + "/image")
    assert not obs.ok and "not a text page" in obs.text
    obs = call("fetch", settings, url=site.url + "/missing")
    assert not obs.ok and "HTTP 404" in obs.text


def test_html_text_keeps_blocks_and_drops_code():
    title, text = html_text("<title>T</title><div>a<br>b</div><template>x</template><svg><text>y</text></svg>c")
    assert title == "T" and text == "a\nb\nc"


def test_web_search_refuses_until_configured():
    with pytest.raises(ConfigError, match="web_search"):
        ToolBox.load(["web_search"], ToolSettings())
    with pytest.raises(ToolError, match="not configured.*--web-search-url"):
        WebSearch(ToolSettings()).call(query="anything")


def test_web_search_results_become_sources(endpoint):
    settings = ToolSettings(web_search_url=endpoint.url + "/search?lang=en", search_k=3)
    obs = call("web_search", settings, query="mona lisa painter")
    assert obs.ok, obs.text
    assert [s.id for s in obs.sources] == ["S1", "S2", "S3"]
    assert obs.sources[0].ref == "https://example.org/1" and obs.sources[0].text == "Snippet 1."
    assert obs.sources[0].title == "Result 1 for mona lisa painter"
    assert "[S1] Result 1 for mona lisa painter — Snippet 1. (https://example.org/1)" in obs.text
    q = parse_qs(urlsplit(endpoint.hits[-1]).query)
    assert q == {"lang": ["en"], "q": ["mona lisa painter"], "format": ["json"]}


def test_web_search_nothing_found(endpoint):
    obs = call("web_search", ToolSettings(web_search_url=endpoint.url + "/search"), query="nothing at all")
    assert not obs.ok and "nothing found" in obs.text


def test_web_search_bad_endpoint(endpoint):
    obs = call("web_search", ToolSettings(web_search_url=endpoint.url + "/search?format=html"), query="x")
    assert obs.ok  # format=json replaces the configured one
    dead = ToolSettings(web_search_url="http://127.0.0.1:9/search", timeout_s=3)
    obs = call("web_search", dead, query="x")
    assert not obs.ok and "could not be reached" in obs.text


def test_with_query_replaces_params():
    assert with_query("http://h/s?q=old&x=1", q="new", format="json") == "http://h/s?x=1&q=new&format=json"
