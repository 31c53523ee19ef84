"""Fetching one web page or feed, safely: public addresses only, bounded in size, time and hops.

A URL someone sends the bot must not make it read the machine's own services (a database's HTTP
port, a cloud's metadata address at 169.254.169.254) and hand their answers to the index. So
every address a host name resolves to is checked, for the first request and for every redirect,
and the connection is then made to the address that was checked: the name is resolved once,
by the check, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot slip a private address through.

How the pinning works: httpx leaves the network to an httpcore connection pool, which opens
each connection through its network backend's `connect_tcp(host, port, ...)`. `_CheckedBackend`
is that backend: it resolves the host, refuses the whole host when any of its addresses is not
public, and connects to a checked address itself. TLS is started afterwards by httpcore on that
socket with the URL's host name, so certificates and SNI are checked against the name as usual.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from index.errors import FetchError

log = logging.getLogger(__name__)

USER_AGENT = "articlebot/0.1 (+https://github.com/articlebot/articlebot; news question answering)"
# A news page is tens to hundreds of kilobytes; 5 MB is a page with its images inlined.
MAX_BYTES = 5_000_000
MAX_REDIRECTS = 5
TIMEOUT_S = 15.0
# What articlebot can read: web pages, feeds and plain text. A PDF or an image is refused before
# its body is read.
READABLE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/xml",
        "text/xml",
        "text/plain",
    }
)
_ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/xml;q=0.9,text/plain;q=0.8"
)
# httpx's Response.is_redirect is any 3xx, 304 Not Modified included.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
# 64:ff9b::/96 (RFC 6052): a NAT64 gateway turns these into the IPv4 address in their last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Fetched:
    """What a URL answered."""

    url: str  # the final URL, after redirects
    content: bytes  # empty when not_modified
    media_type: str  # "text/html": lower case, no parameters; empty when not_modified
    charset: str | None  # as the Content-Type header declared it
    etag: str | None  # the validators to send next time (a 304 without them keeps those sent)
    last_modified: str | None
    not_modified: bool = False  # a 304 to a conditional request: the copy already held is current


def address_kind(address: IPAddress) -> str | None:
    """Why an address is not a public one ("loopback", "private", ...), or None for a public one.

    An IPv6 address that carries an IPv4 one (IPv4-mapped ::ffff:a.b.c.d, 6to4, NAT64) is judged
    by the IPv4 address it reaches.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_kind(embedded)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("private", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("reserved", address.is_reserved),
    )
    for kind, applies in checks:
        if applies:
            return kind
    # Left: shared and special-purpose ranges, such as 100.64.0.0/10 behind carrier-grade NAT.
    return None if address.is_global else "non-public"


def is_public_address(address: IPAddress) -> bool:
    """Whether an address is on the public internet (not loopback, private, link-local, ...)."""
    return address_kind(address) is None


class Fetcher:
    """Fetches web pages and feeds over HTTP(S), one URL at a time; close it when done."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = TIMEOUT_S,
        max_bytes: int = MAX_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        is_public: Callable[[IPAddress], bool] = is_public_address,
    ) -> None:
        """`allow_private` lets loopback, private and link-local addresses be fetched too (a
        newsroom's intranet). `is_public` decides which addresses count as public; a test that
        serves pages on loopback passes one that admits its own server, to test the refusals that
        follow it (a redirect from there to a private address)."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        transport = httpx.HTTPTransport(retries=0)
        pin_backend(transport, _CheckedBackend(_allow_all if allow_private else is_public))
        # trust_env=False: no HTTP(S)_PROXY or ALL_PROXY from the environment. Through a proxy the
        # connection goes to the proxy, which resolves the name itself, so the address check would
        # check the proxy and never the site; and no .netrc credentials are sent to pages.
        self._client = httpx.Client(
            transport=transport,
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT},
        )

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """The page or feed at `url`, following redirects; a FetchError of one line when it fails.

        With `etag` or `last_modified` (from an earlier Fetched) the request is conditional, and an
        unchanged resource comes back as `Fetched(not_modified=True, content=b"")`. The time-out
        is for the whole fetch, every redirect and the body included.
        """
        deadline = time.monotonic() + self.timeout
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = _web_url(url)
        seen = {current}
        try:
            for hops in range(self.max_redirects + 1):
                response = self._send(current, headers, deadline)
                try:
                    location = response.headers.get("Location")
                    if response.status_code not in _REDIRECTS or not location:
                        return self._answer(response, etag, last_modified, deadline)
                    target = _redirect_target(current, location)
                finally:
                    response.close()
                if target in seen:
                    raise FetchError(f"{url}: redirect loop ({current} sends back to {target})")
                if hops == self.max_redirects:
                    raise FetchError(f"{url}: more than {self.max_redirects} redirects")
                log.debug("%s redirects to %s", current, target)
                seen.add(target)
                current = target
        except httpx.TimeoutException:
            raise FetchError(f"{current}: timed out after {self.timeout:g} s") from None
        except httpx.ConnectError as error:
            raise FetchError(f"{current}: cannot connect ({_one_line(error)})") from None
        except httpx.HTTPError as error:
            raise FetchError(f"{current}: {_one_line(error) or type(error).__name__}") from None
        raise AssertionError("unreachable: the loop returns or raises")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, url: httpx.URL, headers: dict[str, str], deadline: float) -> httpx.Response:
        left = deadline - time.monotonic()
        if left <= 0:
            raise httpx.TimeoutException("the time for the whole fetch ran out")
        request = self._client.build_request("GET", url, headers=headers, timeout=min(self.timeout, left))
        try:
            return self._client.send(request, stream=True)
        except _Refused as refused:
            raise FetchError(f"{url}: {refused}") from None
        except httpx.InvalidURL as error:  # httpx reads a redirect's Location even when not following
            why = _one_line(error)
            raise FetchError(f"{url} redirects to a URL that cannot be followed ({why})") from None

    def _answer(
        self, response: httpx.Response, etag: str | None, last_modified: str | None, deadline: float
    ) -> Fetched:
        url = str(response.url)
        status = response.status_code
        if status == 304:
            return Fetched(
                url=url,
                content=b"",
                media_type="",
                charset=None,
                etag=response.headers.get("ETag") or etag,
                last_modified=response.headers.get("Last-Modified") or last_modified,
                not_modified=True,
            )
        if not 200 <= status < 300:
            raise FetchError(f"{url} answered {status} {httpx.codes.get_reason_phrase(status)}".rstrip())
        media_type, charset = _content_type(response.headers.get("Content-Type"))
        if media_type and media_type not in READABLE_TYPES:
            raise FetchError(f"{url} is {media_type}: only web pages, feeds and plain text can be read")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise FetchError(f"{url} is {int(length) / 1e6:.1f} MB, over the limit of {self._limit()}")
        content = self._body(response, deadline)
        if not media_type:
            media_type = _sniff(content)
            if not media_type:
                raise FetchError(f"{url} names no content type and does not look like a web page")
        return Fetched(
            url=url,
            content=content,
            media_type=media_type,
            charset=charset,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )

    def _body(self, response: httpx.Response, deadline: float) -> bytes:
        """The body, decompressed, read no further than max_bytes and no later than the deadline."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"{response.url} sent more than the limit of {self._limit()}")
            chunks.append(chunk)
            # A server that sends a byte now and then never trips the read time-out.
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the time for the whole fetch ran out")
        return b"".join(chunks)

    def _limit(self) -> str:
        return f"{self.max_bytes / 1e6:g} MB" if self.max_bytes >= 100_000 else f"{self.max_bytes} bytes"


def pin_backend(transport: httpx.HTTPTransport, backend: httpcore.NetworkBackend) -> None:
    """Make `transport` open its connections through `backend`.

    httpx.HTTPTransport takes no network backend, so this reaches into its private connection
    pool (`_pool`, an httpcore.ConnectionPool, and the pool's `_network_backend`, which each new
    connection is given). Should a release of httpx or httpcore rename either, this raises rather
    than leave the address check silently out; tests/test_fetch.py checks it is in place.
    """
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool) or not isinstance(
        getattr(pool, "_network_backend", None), httpcore.NetworkBackend
    ):
        raise RuntimeError("this httpx or httpcore keeps its network backend elsewhere: update pin_backend")
    pool._network_backend = backend


class _Refused(Exception):
    """A host the fetcher will not or cannot connect to; raised inside httpcore, reported by Fetcher."""


class _CheckedBackend(httpcore.SyncBackend):
    """httpcore's own sockets, opened only to addresses that passed the check."""

    def __init__(self, allowed: Callable[[IPAddress], bool]) -> None:
        self._allowed = allowed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        for address in addresses:
            if not self._allowed(address):
                kind = address_kind(address) or "refused"
                named = host if host == str(address) else f"{host} ({address})"
                raise _Refused(
                    f"{named} is a {kind} address: only public addresses are fetched "
                    "(ingest.allow_private in the config allows your own network)"
                )
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as failed:  # the next address may answer
                error = failed
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise _Refused("Unix sockets are never fetched from")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` names, in the resolver's order (an address literal names itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise _Refused(f"cannot find {host} ({getattr(error, 'strerror', None) or error})") from None
    addresses = [
        ipaddress.ip_address(str(info[4][0]))
        for info in infos
        if info[0] in (socket.AF_INET, socket.AF_INET6)
    ]
    if not addresses:
        raise _Refused(f"cannot find {host}: it has no IP address")
    return list(dict.fromkeys(addresses))


def _allow_all(address: IPAddress) -> bool:
    return True


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    where = f"{current} redirects to {location}"
    try:
        target = str(current.join(location.strip()))
    except httpx.InvalidURL as error:
        raise FetchError(f"{where}, a URL that cannot be followed ({_one_line(error)})") from None
    return _web_url(target, where=where)


def _web_url(url: str, *, where: str | None = None) -> httpx.URL:
    """An http or https URL with a host, or a FetchError that says what is wrong with it."""
    where = where or url
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as error:
        raise FetchError(f"{where}: not a valid URL ({_one_line(error)})") from None
    if not parsed.scheme:
        raise FetchError(f"{where}: not a full URL (it starts with neither http:// nor https://)")
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"{where}: {parsed.scheme}: URLs are not fetched, only http and https")
    if not parsed.host:
        raise FetchError(f"{where}: the URL names no host")
    return parsed


def _content_type(value: str | None) -> tuple[str, str | None]:
    """("text/html", "utf-8") from "text/html; charset=UTF-8"; ("", None) when there is none."""
    if not value:
        return "", None
    media_type = value.split(";", 1)[0].strip().lower()
    match = _CHARSET.search(value)
    return media_type, match.group(1).lower() if match else None


def _sniff(content: bytes) -> str:
    """A media type for a body sent without one: markup is taken for HTML or XML, nothing else."""
    start = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    if start.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:rdf")):
        return "application/xml"
    if start.startswith(b"<"):
        return "text/html"
    return ""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
