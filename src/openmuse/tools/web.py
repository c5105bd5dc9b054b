"""The web tools, both off by default: ``fetch`` (read one web page) and ``web_search`` (ask a
SearXNG-style search endpoint the operator configured).

What ``fetch`` covers (it reuses the media fetcher's SSRF guard, ``media/fetch.py``):

- It refuses unless the operator turned it on (``ToolSettings.fetch``).
- Only ``http``/``https``; every hop (at most ``MAX_HOPS`` redirects, followed here one at a
  time) is resolved and checked by ``check_hop``: loopback, private, link-local, CGNAT,
  reserved and cloud-metadata addresses are refused, unless the host is in
  ``ToolSettings.fetch_allow`` (metadata addresses never). The connection goes to the checked
  address, the host name in ``Host`` and TLS SNI, so DNS rebinding does not reach another one.
- One total deadline (``timeout_s``, at most ``MAX_SECONDS``) for resolution, every hop and the
  body; the body is read to ``MAX_BYTES`` at most and the rest left unread (the page is marked
  cut); no content encoding (``identity``), no proxy or netrc from the environment.
- Text only: HTML is turned into readable text with the standard library's ``html.parser``
  (scripts, styles, templates, SVG and the like dropped; blocks become lines; whitespace
  collapsed); ``text/*``, JSON and XML pass as text; anything else is refused.
- The model is told that a URL was refused by the rules or could not be fetched, and an HTTP
  status, never the addresses a host resolved to or why a connection failed (logged, INFO).

What it does not cover: JavaScript-rendered pages, logins and cookies, robots.txt, rate limits
across calls, the truth or safety of the page (``ToolBox`` flags injected instructions).

``web_search`` sends ``GET <web_search_url>?q=<query>&format=json`` to the endpoint the operator
configured (trusted as configuration is, like an engine URL: it may be on the local network, so
the SSRF rules do not apply to it; no redirects are followed) and turns its ``results`` into
sources. The result URLs are not fetched.
"""

from __future__ import annotations

import json
import logging
import re
import time
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from ..media.fetch import CHUNK, MAX_HOPS, Refused, check_hop, parse_allow
from .base import BuiltinTool, Observation, Source, ToolError

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024  # read at most this much of a page
MAX_SECONDS = 20.0
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")
SKIP = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"})
BLOCK = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header", "footer",
                   "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", "dd", "dt", "main", "nav",
                   "aside", "form", "figure", "figcaption"})
VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})


class _Text(HTMLParser):
    """Readable text of an HTML page, and its ``<title>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0  # depth inside elements whose text is dropped
        self._in_title = False

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in SKIP and tag not in VOID:
            self._skip += 1
        elif tag in BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        return "\n".join(line for line in lines if line)


def html_text(html: str) -> tuple[str, str]:
    """(title, readable text) of an HTML document."""
    p = _Text()
    p.feed(html)
    p.close()
    return " ".join(p.title.split()), p.text()


def _charset(ctype_header: str) -> str:
    m = re.search(r"charset=[\"']?([\w.:-]+)", ctype_header, re.IGNORECASE)
    return m.group(1) if m else "utf-8"


def _decode(body: bytes, ctype_header: str) -> str:
    try:
        return body.decode(_charset(ctype_header), errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


class Fetch(BuiltinTool):
    name = "fetch"
    description = ("Fetch one public web page (http/https) and return its readable text. Only public addresses; "
                   "pages are cut to a few thousand characters.")
    parameters = {"type": "object", "properties": {"url": {"type": "string", "description":
                  "The page's full URL, starting with http:// or https://."}}, "required": ["url"]}
    default = False

    def call(self, url: str) -> Observation:
        if not self.settings.fetch:
            raise ToolError("fetch is off: the operator enables it with --fetch-tool")
        url = url.strip()
        if not re.match(r"^https?://", url, re.IGNORECASE):
            raise ToolError("only http:// and https:// URLs can be fetched")
        deadline = time.monotonic() + min(self.settings.timeout_s, MAX_SECONDS) - 0.2
        try:
            final, body, ctype, cut = self._get(url, deadline)
        except Refused as e:
            log.info("fetch %s refused: %s", url, e)
            raise ToolError(f"fetch refused {url[:200]}: only public http(s) addresses may be fetched") from None
        except _Failed as e:
            log.info("fetch %s failed: %s", url, e.why)
            raise ToolError(str(e)) from None
        mime = ctype.split(";")[0].strip().lower()
        if mime and not mime.startswith(TEXT_TYPES):
            raise ToolError(f"{url[:200]} is not a text page ({mime})")
        raw = _decode(body, ctype)
        title, text = html_text(raw) if (mime in ("text/html", "application/xhtml+xml") or not mime
                                         and "<html" in raw[:2000].lower()) else ("", raw.strip())
        if not text.strip():
            raise ToolError(f"{url[:200]} has no readable text")
        head = f"[S1] {title} — {final}" if title else f"[S1] {final}"
        cap = max(100, self.settings.output_chars - len(head) - 20)  # the whole answer fits output_chars
        truncated = cut or len(text) > cap
        text = text[:cap] + ("\n[… page cut]" if truncated else "")
        src = Source(id="S1", title=title or final, text=text, ref=final)
        return Observation(tool=self.name, ok=True, text=f"{head}\n{text}", sources=[src], truncated=truncated)

    def _get(self, url: str, deadline: float) -> tuple[str, bytes, str, bool]:
        """(final URL, body, Content-Type, cut) after following checked redirects."""
        import httpx

        allow = parse_allow(self.settings.fetch_allow)
        with httpx.Client(trust_env=False, follow_redirects=False) as client:
            for _ in range(MAX_HOPS + 1):
                hop = check_hop(url, allow)
                assert hop is not None
                resp = _send(client, hop, deadline)
                try:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(hop.url, resp.headers["location"])
                        continue
                    if resp.status_code != 200:
                        raise _Failed(f"{url[:200]} answered HTTP {resp.status_code}", "status")
                    body, cut = _read(resp, deadline)
                    return url, body, resp.headers.get("content-type", ""), cut
                finally:
                    resp.close()
        raise _Failed(f"{url[:200]}: more than {MAX_HOPS} redirects", "redirects")


class _Failed(Exception):
    """A fetch that failed for a reason the model may read (``str``); ``why`` is logged."""

    def __init__(self, shown: str, why: str):
        super().__init__(shown)
        self.why = why


def _send(client, hop, deadline: float):
    """A streamed GET to the checked address (the media fetcher's pinned request)."""
    import httpx

    from ..media.fetch import pinned_request

    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Failed("the fetch ran out of time", "deadline before a hop")
    try:
        return client.send(pinned_request(client, hop, remaining, "text/html, text/plain;q=0.9, */*;q=0.5"),
                           stream=True)
    except httpx.HTTPError as e:
        raise _Failed(f"{hop.url[:200]} could not be fetched", f"{type(e).__name__}: {e}") from None


def _read(resp, deadline: float) -> tuple[bytes, bool]:
    """At most ``MAX_BYTES`` of the body (and whether more was left unread)."""
    import httpx

    if resp.headers.get("content-encoding", "identity").lower() != "identity":
        raise _Failed("the page came compressed although identity was asked", "content encoding")
    body = bytearray()
    try:
        for chunk in resp.iter_raw(CHUNK):
            body += chunk
            if len(body) >= MAX_BYTES:
                return bytes(body[:MAX_BYTES]), True
            if time.monotonic() > deadline:
                return bytes(body), True
    except httpx.HTTPError as e:
        raise _Failed("the page could not be read", f"{type(e).__name__}: {e}") from None
    return bytes(body), False


def with_query(base: str, **params: str) -> str:
    """``base`` with ``params`` added to (or replacing those in) its query string."""
    parts = urlsplit(base)
    q = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode(q + list(params.items()))))


class WebSearch(BuiltinTool):
    name = "web_search"
    description = ("Search the web through the configured search engine; returns result titles, snippets "
                   "and URLs as sources.")
    parameters = {"type": "object", "properties": {"query": {"type": "string", "description":
                  "What to search for."}}, "required": ["query"]}
    default = False

    def call(self, query: str) -> Observation:
        base = self.settings.web_search_url
        if not base:
            raise ToolError("web_search is not configured: the operator enables it with --web-search-url "
                            "(a SearXNG-style JSON endpoint)")
        if not query.strip():
            raise ToolError("the query is empty")
        results = self._results(base, query.strip())
        sources = []
        for r in results:
            url = str(r.get("url") or "")
            if not url:
                continue
            title = " ".join(str(r.get("title") or url).split())
            content = " ".join(str(r.get("content") or "").split())[:500]
            sources.append(Source(id=f"S{len(sources) + 1}", title=title, text=content, ref=url))
            if len(sources) >= self.settings.search_k:
                break
        if not sources:
            raise ToolError(f"nothing found for {query[:100]!r}")
        text = "\n\n".join(f"[{s.id}] {s.title} — {s.text} ({s.ref})" for s in sources)
        return Observation(tool=self.name, ok=True, text=text, sources=sources)

    def _results(self, base: str, query: str) -> list[dict]:
        import httpx

        url = with_query(base, q=query, format="json")
        timeout = min(self.settings.timeout_s, MAX_SECONDS)
        try:
            with (httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client,
                  client.stream("GET", url, headers={"accept": "application/json"}) as resp):
                if resp.status_code != 200:
                    raise ToolError(f"the search endpoint answered HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_bytes(CHUNK):
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise ToolError("the search endpoint's answer is too large")
        except httpx.HTTPError as e:
            log.info("web_search %s failed: %s: %s", base, type(e).__name__, e)
            raise ToolError("the search endpoint could not be reached") from None
        try:
            data = json.loads(bytes(body))
        except ValueError:
            raise ToolError("the search endpoint did not answer JSON") from None
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise ToolError("the search endpoint's answer has no 'results' list")
        return [r for r in results if isinstance(r, dict)]
