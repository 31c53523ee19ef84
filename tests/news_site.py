"""A small news site on 127.0.0.1 for tests that fetch: pages, feeds, redirects and misbehaviour.

Use it through the `news_site` fixture (tests/conftest.py), which starts one per test on a free
port and stops it afterwards:

    def test_add_a_page(news_site: NewsSite) -> None:
        news_site.serve_folder(PAGES, "/news/")                 # every file in tests/data/pages
        news_site.route("/about", "<html>...</html>")           # str or bytes, text/html by default
        news_site.route("/old", b"", status=410)
        news_site.route("/report.pdf", b"%PDF-1.7", headers={"Content-Type": "application/pdf"})
        news_site.redirect("/latest", "/news/harbour-strike.html")  # 302; a path or a full URL
        news_site.endless("/stream")                            # a chunked body that never ends
        news_site.slow("/slow", "<html>...</html>", delay=5)    # headers only after `delay` s
        url = news_site.url("/news/harbour-strike.html")        # http://127.0.0.1:PORT/news/...
        ...
        assert news_site.requests_to("/latest")[0].headers["user-agent"].startswith("articlebot")

Bodies may hold `{base}` (e.g. in a feed's links); it is replaced by `news_site.base` when served.
A route with an ETag or Last-Modified header answers a matching If-None-Match or
If-Modified-Since with 304 Not Modified, as a real server does. Every request is recorded (method,
path, headers in lower case) in `news_site.requests`, so a test can check what was sent. Routes can
be changed while the server runs (a feed that gains an entry between two polls).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

PAGES = Path(__file__).parent / "data" / "pages"
# What serve_folder sends each kind of file as. A .html file goes without a charset, so a page's
# own <meta> declaration is what names its encoding.
CONTENT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".xml": "application/xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".pdf": "application/pdf",
}


@dataclass(frozen=True)
class Recorded:
    """One request the site received."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case


@dataclass
class _Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "static"  # "static", "endless" or "slow"
    delay: float = 0.0


class NewsSite:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving the routes a test registers."""

    def __init__(self) -> None:
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[Recorded] = []
        handler = type("Handler", (_Handler,), {"site": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self.port: int = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="news-site", daemon=True
        )

    # Registering routes ----------------------------------------------------------------------

    def route(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Serve `body` at `path` (Content-Type text/html; charset=utf-8 unless `headers` name
        one); returns the route's full URL."""
        given = dict(headers or {})
        if not any(name.lower() == "content-type" for name in given):
            given["Content-Type"] = "text/html; charset=utf-8"
        data = body.encode("utf-8") if isinstance(body, str) else body
        return self._add(path, _Route(status=status, body=data, headers=given))

    def serve_folder(self, folder: Path = PAGES, prefix: str = "/news/") -> None:
        """Serve every file in `folder` at `prefix` + its name, typed by its suffix."""
        for file in sorted(folder.iterdir()):
            if file.is_file():
                kind = CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")
                self.route(prefix + file.name, file.read_bytes(), headers={"Content-Type": kind})

    def redirect(self, path: str, to: str, *, status: int = 302) -> str:
        """Answer `path` with a redirect to `to`, a path on this site or any URL, sent as given."""
        return self._add(path, _Route(status=status, headers={"Location": to, "Content-Length": "0"}))

    def endless(self, path: str, *, content_type: str = "text/html") -> str:
        """A chunked body that never ends (until the client goes away or the site stops)."""
        return self._add(path, _Route(kind="endless", headers={"Content-Type": content_type}))

    def slow(self, path: str, body: bytes | str, *, delay: float) -> str:
        """Answer only after `delay` seconds (a site that hangs); the site's stop cuts it short."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        html = {"Content-Type": "text/html; charset=utf-8"}
        return self._add(path, _Route(body=data, kind="slow", delay=delay, headers=html))

    # Using the site --------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        return self.base + path

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def start(self) -> NewsSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> NewsSite:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _add(self, path: str, route: _Route) -> str:
        if not path.startswith("/"):
            raise ValueError(f"a route's path starts with /: {path!r}")
        with self._lock:
            self._routes[path] = route
        return self.url(path)

    def _find(self, path: str) -> _Route | None:
        with self._lock:
            return self._routes.get(path)

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)


_HTML = {"Content-Type": "text/html"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still writing an endless body does not hold up the stop

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a client that hangs up mid-answer (a fetcher at its limit) is what tests do."""


class _Handler(BaseHTTPRequestHandler):
    site: NewsSite
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read `site.requests` instead."""

    def _answer(self, *, send_body: bool) -> None:
        site = self.site
        path = self.path.split("?", 1)[0]
        site._record(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = site._find(path)
        if route is None:
            self._send(404, b"<html><body><h1>Not Found</h1></body></html>", _HTML, send_body)
            return
        if route.kind == "slow" and site._stopping.wait(route.delay):
            return
        if route.kind == "endless":
            self._endless(route)
            return
        headers = {name: value.replace("{base}", site.base) for name, value in route.headers.items()}
        if self._not_modified(headers):
            validators = {k: v for k, v in headers.items() if k.lower() in ("etag", "last-modified")}
            self._send(304, b"", validators, send_body=False)
            return
        body = route.body.replace(b"{base}", site.base.encode("ascii"))
        self._send(route.status, body, headers, send_body)

    def _not_modified(self, headers: dict[str, str]) -> bool:
        lower = {name.lower(): value for name, value in headers.items()}
        etag, modified = lower.get("etag"), lower.get("last-modified")
        asked_etag, asked_since = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        if etag and asked_etag:
            return etag in (tag.strip() for tag in asked_etag.split(","))
        return bool(modified and asked_since and modified == asked_since)

    def _send(self, status: int, body: bytes, headers: Mapping[str, str], send_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304 and not any(name.lower() == "content-length" for name in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def _endless(self, route: _Route) -> None:
        self.send_response(200)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"<p>" + b"news " * 200 + b"</p>\n"
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            while not self.site._stopping.is_set():
                self.wfile.write(frame)
                time.sleep(0.001)
        except OSError:  # the client stopped reading and closed the connection
            pass
        self.close_connection = True


# Two short stories and a feed of both, for the tests of adding articles (`serve_stories`).
STORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Storm closes harbour | Coast Courier</title>
<meta property="og:site_name" content="Coast Courier">
<meta property="article:published_time" content="2024-05-02T08:00:00Z">
<link rel="canonical" href="{base}/news/storm"></head>
<body><nav><a href="/">Home</a> <a href="/sport">Sport</a></nav>
<article><h1>Storm closes harbour</h1>
<p>A storm closed the harbour of Port Ellis on Monday, and the ferry to Marrow Island was cancelled.</p>
<p>Harbour master Dalia Fenwick said the ferry would sail again on Thursday if the wind dropped.</p>
<p>Three fishing boats were damaged at their moorings, the coastguard said.</p>
</article><footer>Copyright Coast Courier</footer></body></html>
"""

MARKET = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Market reopens</title>
<meta property="article:published_time" content="2024-05-03"></head>
<body><article><h1>Market reopens after fire</h1>
<p>The covered market of Port Ellis reopened on Friday, six months after a fire destroyed its roof.</p>
<p>The new roof was built by the carpenter Joss Amberley and cost two million crowns.</p>
</article></body></html>
"""

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Coast Courier</title><link>{base}/</link>
<description>News</description>
<item><title>Market reopens after fire</title><link>{base}/news/market</link>
<pubDate>Fri, 03 May 2024 09:00:00 GMT</pubDate></item>
<item><title>Storm closes harbour</title><link>{base}/news/storm</link>
<pubDate>Thu, 02 May 2024 08:00:00 GMT</pubDate></item>
</channel></rss>
"""


def serve_stories(site: NewsSite) -> NewsSite:
    """`site` serving /news/storm, /news/market and /feed.xml (RSS, with an ETag)."""
    site.route("/news/storm", STORM)
    site.route("/news/market", MARKET)
    site.route("/feed.xml", FEED, headers={"Content-Type": "application/rss+xml", "ETag": '"v1"'})
    return site
