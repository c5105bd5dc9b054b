"""Media URLs: the guard against server-side request forgery (SSRF), and the fetch itself.

What it covers:

- Only ``http`` and ``https``, on every hop. Redirects are followed here, one hop at a time
  (at most ``MAX_HOPS``), never by the HTTP library.
- Every hop's host is resolved and each address it resolves to is checked: loopback, private,
  link-local, unspecified, multicast, reserved, shared (CGNAT) and other non-global addresses
  are refused (IPv4 inside IPv6 — mapped, 6to4, NAT64 — is judged by its IPv4 address), and
  cloud-metadata addresses (``ALWAYS_REFUSED``) are refused even when an allow-list entry covers
  them. The connection goes to the address that was checked (the host name travels in the
  ``Host`` header and TLS SNI, and the certificate is verified against it), so DNS rebinding
  between the check and the connection does not reach another address.
- A total deadline for the whole fetch (resolution, every hop, the body), not a per-read
  timeout; a size cap while the body streams (``Content-Length`` is checked first); no content
  encoding (``identity`` only, so no compression bomb); no proxy or netrc from the environment.
- One generic error for every failure (``image 1 (a.png): the URL could not be fetched``): no
  refused or timed-out connections told apart, no resolved addresses, no upstream status or
  text. The reason is logged (``openmuse.media.fetch``, level INFO) for the operator.
- ``check_url`` applies the same address rules to a URL passed on unfetched to an engine that
  takes the modality (one hop: the engine fetches it, and follows its redirects, itself).
- The allow-list (``--fetch-allow``): CIDR ranges, addresses or host names (``.corp.example``
  matches its subdomains), each optionally with ``:PORT``; a covered hop skips the address
  rules, except for cloud metadata.

What it does not cover: what an engine does with a URL it is given (it resolves the name again
in its own network and may follow redirects: configure the engine's own limits, e.g. vLLM's
allowed media domains); rate limits across requests; content checks (``validate.py`` does those).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urljoin, urlsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    from .parts import MediaPart
    from .settings import MediaSettings

log = logging.getLogger(__name__)

GENERIC = "the URL could not be fetched"
MAX_HOPS = 3  # redirects followed after the first request
CHUNK = 64 * 1024
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
ALWAYS_REFUSED = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean… instance metadata
    "169.254.170.2",  # AWS ECS task metadata
    "fd00:ec2::254",  # AWS instance metadata over IPv6
    "100.100.100.200",  # Alibaba Cloud metadata
    "192.0.0.192",  # Oracle Cloud metadata
    "168.63.129.16",  # Azure wire server (a public address)
))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST = re.compile(r"^\.?(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?$")


class Refused(Exception):
    """Why a fetch failed; logged, never shown to the client."""


@dataclass(frozen=True)
class Allow:
    """One allow-list entry: a network or a host name, and a port (None: any)."""

    net: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    host: str | None = None
    port: int | None = None

    def covers(self, host: str, ip: IP | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return host == self.host or (self.host.startswith(".") and host.endswith(self.host))
        return ip is not None and self.net is not None and ip.version == self.net.version and ip in self.net


def parse_allow(entries: tuple[str, ...] | list[str]) -> tuple[Allow, ...]:
    """``--fetch-allow`` entries (several may be given in one, separated by commas or spaces)."""
    out = []
    for entry in (e for item in entries for e in re.split(r"[,\s]+", item) if e):
        out.append(_parse_one(entry))
    return tuple(out)


def _parse_one(entry: str) -> Allow:
    text, port = entry.lower(), None
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text) or re.fullmatch(r"([^:]+):(\d+)", text)
    if m:
        text, port = m.group(1), int(m.group(2)) if m.group(2) else None
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"--fetch-allow {entry}: the port must be 1-65535")
    try:
        return Allow(net=ipaddress.ip_network(text, strict=False), port=port)
    except ValueError:
        pass
    if not _HOST.match(text):
        raise ConfigError(f"--fetch-allow {entry}: not a CIDR range, address or host name (HOST[:PORT])")
    return Allow(host=text, port=port)


def is_public(ip: IP) -> bool:
    """True for a globally routable unicast address that is no cloud-metadata endpoint."""
    if ip in ALWAYS_REFUSED:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return is_public(inner)
        if ip.teredo:
            return False
    bad = (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_multicast
           or getattr(ip, "is_site_local", False)
           or ip.is_reserved)
    return ip.is_global and not bad


def is_loopback_host(host: str) -> bool:
    """Whether a bind address is loopback only (``localhost``, 127.0.0.0/8, ::1)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetching_on(host: str, requested: bool | None) -> bool:
    """Whether ``muse serve`` on ``host`` fetches media URLs: as asked (``--fetch-urls`` /
    ``--no-fetch-urls``), else only on a loopback bind."""
    return requested if requested is not None else is_loopback_host(host)


@dataclass(frozen=True)
class Hop:
    url: str  # as given (the host name kept)
    parts: SplitResult
    host: str
    port: int
    ip: IP


def check_hop(url: str, allow: tuple[Allow, ...], resolve: bool = True) -> Hop | None:
    """The checked hop (its address, to connect to), or ``Refused``. ``resolve=False`` (a URL
    passed on unfetched) returns None without resolving a host name the allow-list covers."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme!r}")
    try:
        host, port = (parts.hostname or "").rstrip(".").lower(), parts.port
    except ValueError:
        raise Refused("bad port") from None
    if not host:
        raise Refused("no host")
    port = port or (443 if parts.scheme == "https" else 80)
    named = [a for a in allow if a.host is not None and a.covers(host, None, port)]
    if named and not resolve:  # allowed by name: the engine resolves it, in its own network
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None
        if any(ipaddress.ip_address(i[4][0].split("%")[0]) in ALWAYS_REFUSED for i in infos):
            raise Refused(f"{host} resolves to a cloud-metadata address")
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise Refused(f"cannot resolve {host}: {e}") from None
    ips = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in ips:
        if ip in ALWAYS_REFUSED:
            raise Refused(f"{host} resolves to a cloud-metadata address {ip}")
        if not (named or is_public(ip) or any(a.covers(host, ip, port) for a in allow)):
            raise Refused(f"{host} resolves to a non-public address {ip}")
    if not ips:
        raise Refused(f"{host} resolves to nothing")
    return Hop(url, parts, host, port, ips[0])


def check_url(mp: MediaPart, settings: MediaSettings) -> None:
    """A URL going to an engine unfetched: the first hop's rules, within the total deadline."""
    allow = parse_allow(settings.fetch_allow)
    _within(settings.fetch_timeout_s, mp, lambda cancel: check_hop(mp.url or "", allow, resolve=False))


def fetch(mp: MediaPart, settings: MediaSettings) -> bytes:
    """The body at ``mp.url`` (at most ``settings.max_bytes``); sets ``mp.declared`` from the
    Content-Type. Any failure is ``mp.error(GENERIC)``."""
    allow = parse_allow(settings.fetch_allow)
    deadline = time.monotonic() + settings.fetch_timeout_s
    data, ctype = _within(settings.fetch_timeout_s, mp,
                          lambda cancel: _get(mp.url or "", allow, settings.max_bytes, deadline, cancel))
    if "/" in ctype and ctype.split("/")[0] in ("image", "audio", "video"):
        mp.declared = ctype.split("/")[1]
    return data


def _within(seconds: float, mp: MediaPart, work):
    """Run ``work(cancel)`` in a thread; the caller waits ``seconds`` at most, whatever blocks
    inside (name resolution included). A late worker sees ``cancel`` and its own timeouts,
    which never exceed the same deadline, and ends on its own."""
    box: dict = {}
    cancel = threading.Event()

    def run():
        try:
            box["value"] = work(cancel)
        except Exception as e:  # reported below, as the generic error
            box["error"] = e

    worker = threading.Thread(target=run, name="muse-media-fetch", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        cancel.set()
        box["error"] = Refused(f"over the total deadline of {seconds:g} s")
    if "error" in box:
        log.info("%s: %s refused: %s", mp.label, mp.url, box["error"])
        raise mp.error(GENERIC)
    return box.get("value")


def _get(url: str, allow: tuple[Allow, ...], max_bytes: int, deadline: float,
         cancel: threading.Event) -> tuple[bytes, str]:
    import httpx

    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        for _ in range(MAX_HOPS + 1):
            hop = check_hop(url, allow)
            assert hop is not None
            resp = _send(client, hop, deadline)
            try:
                if resp.is_redirect:
                    url = urljoin(hop.url, resp.headers["location"])
                    continue
                return _body(resp, max_bytes, deadline, cancel)
            finally:
                resp.close()
    raise Refused(f"more than {MAX_HOPS} redirects")


def _body(resp, max_bytes: int, deadline: float, cancel: threading.Event) -> tuple[bytes, str]:
    """The streamed body, cut off past ``max_bytes`` or the deadline, and its Content-Type."""
    if resp.status_code != 200:
        raise Refused(f"status {resp.status_code}")
    if resp.headers.get("content-encoding", "identity").lower() != "identity":
        raise Refused("a content encoding was sent")
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise Refused(f"declares {length} bytes, over {max_bytes}")
    body = bytearray()
    for chunk in resp.iter_raw(CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise Refused(f"over {max_bytes} bytes")
        if cancel.is_set() or time.monotonic() > deadline:
            raise Refused("over the total deadline")
    return bytes(body), (resp.headers.get("content-type") or "").split(";")[0].strip().lower()


def pinned_request(client, hop: Hop, timeout: float, accept: str):
    """A GET request to ``hop``'s checked address (never re-resolved), its host name in
    ``Host`` and TLS SNI: the media fetcher's and the fetch tool's."""
    import httpx

    address = f"[{hop.ip}]" if hop.ip.version == 6 else str(hop.ip)
    target = hop.parts._replace(netloc=f"{address}:{hop.port}", fragment="").geturl()
    shown = f"[{hop.host}]" if ":" in hop.host else hop.host
    default = 443 if hop.parts.scheme == "https" else 80
    headers = {"host": shown if hop.port == default else f"{shown}:{hop.port}", "user-agent": "openmuse",
               "accept": accept, "accept-encoding": "identity"}
    extensions = {"sni_hostname": hop.host} if hop.parts.scheme == "https" else {}
    return client.build_request("GET", target, headers=headers, extensions=extensions,
                                timeout=httpx.Timeout(timeout))


def _send(client, hop: Hop, deadline: float):
    """A streamed GET to the checked address, the host name in ``Host`` and TLS SNI."""
    import httpx

    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Refused("over the total deadline")
    try:
        return client.send(pinned_request(client, hop, remaining, "image/*, audio/*, video/*"), stream=True)
    except httpx.HTTPError as e:
        raise Refused(f"{type(e).__name__}: {e}") from None
