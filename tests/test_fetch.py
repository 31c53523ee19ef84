"""Fetching pages and feeds from a real HTTP server on loopback, and the address check."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from news_site import PAGES, NewsSite

from index.errors import FetchError
from index.web.extract import extract_html
from index.web.feeds import FeedEntry, is_feed, parse_feed
from index.web.fetch import (
    USER_AGENT,
    Fetcher,
    IPAddress,
    _CheckedBackend,
    address_kind,
    is_public_address,
    pin_backend,
)

SERVER = ipaddress.ip_address("127.0.0.1")


def server_is_public(address: IPAddress) -> bool:
    """An address check that takes the test server, and it alone, for a public site."""
    return address == SERVER


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    """A fetcher that may reach the test server on loopback."""
    with Fetcher(allow_private=True, timeout=5) as fetcher:
        yield fetcher


@pytest.fixture
def site(news_site: NewsSite) -> NewsSite:
    news_site.serve_folder(PAGES, "/news/")
    return news_site


def one_line(error: pytest.ExceptionInfo[FetchError]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# Pages -------------------------------------------------------------------------------------------


def test_a_page_is_fetched(site: NewsSite, fetcher: Fetcher) -> None:
    fetched = fetcher.get(site.url("/news/harbour-strike.html"))
    assert fetched.url == site.url("/news/harbour-strike.html")
    assert fetched.content == (PAGES / "harbour-strike.html").read_bytes()
    assert (fetched.media_type, fetched.charset, fetched.not_modified) == ("text/html", None, False)
    (request,) = site.requests_to("/news/harbour-strike.html")
    assert request.headers["user-agent"] == USER_AGENT
    assert "text/html" in request.headers["accept"]


def test_a_fetched_page_gives_its_article(site: NewsSite, fetcher: Fetcher) -> None:
    fetched = fetcher.get(site.url("/news/cafe-muller.html"))
    article = extract_html(fetched.content, url=fetched.url, charset=fetched.charset)
    assert article.text.startswith("Café Müller on the Lendkai reopened")
    assert article.url == site.url("/news/cafe-muller.html")


def test_the_charset_comes_from_the_header(news_site: NewsSite, fetcher: Fetcher) -> None:
    news_site.route(
        "/p", "<p>café</p>".encode("cp1252"), headers={"Content-Type": "text/html; Charset=Windows-1252"}
    )
    fetched = fetcher.get(news_site.url("/p"))
    assert (fetched.media_type, fetched.charset) == ("text/html", "windows-1252")


def test_a_gzipped_page_is_unpacked_and_its_unpacked_size_counts(news_site: NewsSite) -> None:
    page = (PAGES / "council-budget.html").read_bytes()
    news_site.route("/gz", gzip.compress(page), headers={"Content-Encoding": "gzip"})
    news_site.route("/bomb", gzip.compress(b" " * 5_000_000), headers={"Content-Encoding": "gzip"})
    with Fetcher(allow_private=True, max_bytes=1_000_000) as fetcher:
        assert fetcher.get(news_site.url("/gz")).content == page
        with pytest.raises(FetchError, match="sent more than the limit of 1 MB") as caught:
            fetcher.get(news_site.url("/bomb"))
    one_line(caught)


@pytest.mark.parametrize(("status", "words"), [(404, "404 Not Found"), (500, "500 Internal Server Error")])
def test_an_error_status_is_one_line(news_site: NewsSite, fetcher: Fetcher, status: int, words: str) -> None:
    news_site.route("/gone", "<h1>Oops</h1>", status=status)
    with pytest.raises(FetchError) as caught:
        fetcher.get(news_site.url("/gone"))
    assert one_line(caught) == f"{news_site.url('/gone')} answered {words}"


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/pdf", "application/pdf"),
        ("image/png", "image/png"),
        ("Application/Octet-Stream", "application/octet-stream"),
    ],
)
def test_a_file_that_is_not_a_page_is_refused_naming_its_type(
    news_site: NewsSite, fetcher: Fetcher, content_type: str, named: str
) -> None:
    news_site.route("/file", b"%PDF-1.7 ...", headers={"Content-Type": content_type})
    with pytest.raises(FetchError) as caught:
        fetcher.get(news_site.url("/file"))
    assert one_line(caught).startswith(f"{news_site.url('/file')} is {named}:")


def test_a_body_without_a_content_type_is_taken_for_markup_only(
    news_site: NewsSite, fetcher: Fetcher
) -> None:
    news_site.route("/untyped", "<!doctype html><p>Hello</p>", headers={"Content-Type": ""})
    news_site.route("/binary", b"\x89PNG\r\n\x1a\n", headers={"Content-Type": ""})
    assert fetcher.get(news_site.url("/untyped")).media_type == "text/html"
    with pytest.raises(FetchError, match="names no content type"):
        fetcher.get(news_site.url("/binary"))


# Redirects ---------------------------------------------------------------------------------------


def test_redirects_are_followed(site: NewsSite, fetcher: Fetcher) -> None:
    site.redirect("/latest", "/news/harbour-strike.html", status=301)
    site.redirect("/short", site.url("/latest"))
    fetched = fetcher.get(site.url("/short"))
    assert fetched.url == site.url("/news/harbour-strike.html")
    assert fetched.content.startswith(b"<!DOCTYPE html>")


def test_a_redirect_loop_is_one_line(news_site: NewsSite, fetcher: Fetcher) -> None:
    news_site.redirect("/a", "/b")
    news_site.redirect("/b", "/a")
    with pytest.raises(FetchError, match="redirect loop") as caught:
        fetcher.get(news_site.url("/a"))
    one_line(caught)
    assert len(news_site.requests) == 2


def test_at_most_five_redirects(news_site: NewsSite, fetcher: Fetcher) -> None:
    for hop in range(6):
        news_site.redirect(f"/hop{hop}", f"/hop{hop + 1}")
    news_site.route("/hop6", "<p>Arrived.</p>")
    assert fetcher.get(news_site.url("/hop1")).url == news_site.url("/hop6")  # five redirects
    with pytest.raises(FetchError) as caught:
        fetcher.get(news_site.url("/hop0"))  # six
    assert one_line(caught) == f"{news_site.url('/hop0')}: more than 5 redirects"


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("file:///etc/passwd", "redirects to file:///etc/passwd: file: URLs are not fetched"),
        ("ftp://news.example/a.html", "redirects to ftp://news.example/a.html: ftp: URLs are not fetched"),
        ("javascript:alert(1)", "redirects to a URL that cannot be followed"),  # httpx cannot read it
    ],
)
def test_a_redirect_off_the_web_is_refused(
    news_site: NewsSite, fetcher: Fetcher, target: str, words: str
) -> None:
    news_site.redirect("/away", target)
    with pytest.raises(FetchError) as caught:
        fetcher.get(news_site.url("/away"))
    assert one_line(caught).startswith(f"{news_site.url('/away')} {words}")


# Limits ------------------------------------------------------------------------------------------


def test_an_endless_body_stops_at_the_limit(news_site: NewsSite) -> None:
    news_site.endless("/forever")
    started = time.monotonic()
    with (
        Fetcher(allow_private=True, max_bytes=50_000, timeout=10) as fetcher,
        pytest.raises(FetchError) as caught,
    ):
        fetcher.get(news_site.url("/forever"))
    assert one_line(caught) == f"{news_site.url('/forever')} sent more than the limit of 50000 bytes"
    assert time.monotonic() - started < 3


def test_a_too_large_content_length_is_refused_before_reading(news_site: NewsSite) -> None:
    news_site.route("/big", b"<p>" + b"x" * 200_000 + b"</p>")
    with Fetcher(allow_private=True, max_bytes=100_000) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get(news_site.url("/big"))
    assert one_line(caught) == f"{news_site.url('/big')} is 0.2 MB, over the limit of 0.1 MB"


def test_a_time_out_is_one_line(news_site: NewsSite) -> None:
    news_site.slow("/hang", "<p>Too late.</p>", delay=30)
    started = time.monotonic()
    with Fetcher(allow_private=True, timeout=0.5) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get(news_site.url("/hang"))
    assert one_line(caught) == f"{news_site.url('/hang')}: timed out after 0.5 s"
    assert time.monotonic() - started < 3


def test_a_refused_connection_is_one_line(fetcher: Fetcher) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(FetchError, match="cannot connect") as caught:
        fetcher.get(f"http://127.0.0.1:{port}/news")
    one_line(caught)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://files.example/news.html", "ftp: URLs are not fetched"),
        ("file:///etc/passwd", "file: URLs are not fetched"),
        ("mailto:desk@news.example", "mailto: URLs are not fetched"),
        ("news.example/today", "not a full URL"),
        ("http://", "the URL names no host"),
        ("http://[::1/news", "not a valid URL"),
    ],
)
def test_only_http_and_https_urls_are_fetched(fetcher: Fetcher, url: str, words: str) -> None:
    with pytest.raises(FetchError, match=words) as caught:
        fetcher.get(url)
    one_line(caught)


# Conditional requests -------------------------------------------------------------------------------


def test_etag_and_last_modified_make_the_request_conditional(news_site: NewsSite, fetcher: Fetcher) -> None:
    modified = "Wed, 08 Nov 2023 21:30:00 GMT"
    news_site.route(
        "/feed",
        (PAGES / "feed.rss").read_bytes(),
        headers={"Content-Type": "application/rss+xml", "ETag": '"v7"', "Last-Modified": modified},
    )
    first = fetcher.get(news_site.url("/feed"))
    assert (first.etag, first.last_modified, first.not_modified) == ('"v7"', modified, False)
    again = fetcher.get(news_site.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.content == b""
    assert (again.etag, again.last_modified) == ('"v7"', modified)
    sent = news_site.requests_to("/feed")[1].headers
    assert (sent["if-none-match"], sent["if-modified-since"]) == ('"v7"', modified)
    assert "if-none-match" not in news_site.requests_to("/feed")[0].headers
    # By date alone, too.
    assert fetcher.get(news_site.url("/feed"), last_modified=modified).not_modified
    # A changed feed comes back whole.
    changed = fetcher.get(news_site.url("/feed"), etag='"v6"')
    assert not changed.not_modified and changed.content.startswith(b"<?xml")


# The address check ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2", "[::ffff:127.0.0.1]"])
def test_loopback_is_refused_unless_allowed(site: NewsSite, host: str) -> None:
    url = f"http://{host}:{site.port}/news/harbour-strike.html"
    with Fetcher() as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get(url)
    message = one_line(caught)
    assert message.startswith(f"{url}: ") and "loopback address" in message
    assert "ingest.allow_private" in message
    assert site.requests == []  # refused before connecting


@pytest.mark.parametrize("private", ["169.254.169.254", "10.0.0.8", "192.168.1.1", "[::1]", "[fd00::5]"])
def test_a_redirect_to_a_private_address_is_refused(site: NewsSite, private: str) -> None:
    """The first hop is to a site the check takes for public; the redirect it sends is checked too."""
    site.redirect("/story", f"http://{private}/latest/meta-data/")
    with Fetcher(is_public=server_is_public) as fetcher:
        assert fetcher.get(site.url("/news/harbour-strike.html")).content  # the server itself is let through
        with pytest.raises(FetchError) as caught:
            fetcher.get(site.url("/story"))
    message = one_line(caught)
    assert message.startswith(f"http://{private}/latest/meta-data/: {private.strip('[]')} is a ")
    assert " address: only public addresses are fetched" in message


class FakeDns:
    """Names the system resolver does not know, each answered in turn from a list of answers
    (the last one repeats), every lookup counted; numeric hosts go to the real resolver."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.asked: Counter[str] = Counter()
        self._real = socket.getaddrinfo

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in self.answers:
            return self._real(host, port, *args, **kwargs)
        self.asked[host] += 1
        turns = self.answers[host]
        addresses = turns[min(self.asked[host], len(turns)) - 1]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    dns = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    return dns


def test_the_connection_goes_to_the_address_that_was_checked(site: NewsSite, fake_dns: FakeDns) -> None:
    """DNS rebinding: the name first resolves to the checked server, then to a private address.

    The fetcher resolves once, checks, and connects to the address it checked; had httpcore
    resolved the name again for the connection it would have got 10.0.0.9 (which the loopback-only
    test fixture refuses to connect to)."""
    fake_dns.answers["rebind.example"] = [["127.0.0.1"], ["10.0.0.9"]]
    with Fetcher(is_public=server_is_public) as fetcher:
        fetched = fetcher.get(f"http://rebind.example:{site.port}/news/harbour-strike.html")
    assert fetched.content == (PAGES / "harbour-strike.html").read_bytes()
    assert fake_dns.asked["rebind.example"] == 1
    (request,) = site.requests
    assert request.headers["host"] == f"rebind.example:{site.port}"


def test_every_address_a_name_resolves_to_is_checked(site: NewsSite, fake_dns: FakeDns) -> None:
    fake_dns.answers["mixed.example"] = [["127.0.0.1", "192.168.0.20"]]
    with Fetcher(is_public=server_is_public) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get(f"http://mixed.example:{site.port}/news/harbour-strike.html")
    assert "mixed.example (192.168.0.20) is a private address" in one_line(caught)
    assert site.requests == []


def test_an_unknown_host_is_one_line(fetcher: Fetcher, fake_dns: FakeDns) -> None:
    fake_dns.answers["nowhere.example"] = [[]]
    with pytest.raises(FetchError, match=r"^http://nowhere.example/: cannot find nowhere.example") as caught:
        fetcher.get("http://nowhere.example/")
    one_line(caught)


def test_the_checked_backend_is_in_place() -> None:
    """fetch.py sets a private attribute of httpx's transport; this notices if httpx moves it."""
    with Fetcher() as fetcher:
        transport = fetcher._client._transport
        assert isinstance(transport, httpx.HTTPTransport)
        assert isinstance(transport._pool._network_backend, _CheckedBackend)
    with pytest.raises(RuntimeError, match="update pin_backend"):
        pin_backend(SimpleNamespace(), _CheckedBackend(is_public_address))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "private"),  # reserved for future use; Python counts it private too
        ("255.255.255.255", "private"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("172.32.0.1", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ],
)
def test_address_kind(address: str, kind: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert address_kind(ip) == kind
    assert is_public_address(ip) is (kind is None)


# Feeds -------------------------------------------------------------------------------------------


HARBOUR_TITLE = "Dock workers strike halts container traffic at Port Aldwych"
COUNCIL_TITLE = "Riverton council approves budget with cuts to library hours"
CAFE_TITLE = "Café Müller reopens after flood repairs"


@pytest.mark.parametrize("feed", ["feed.rss", "feed.atom"])
def test_a_feed_gives_absolute_links_newest_first(site: NewsSite, fetcher: Fetcher, feed: str) -> None:
    fetched = fetcher.get(site.url(f"/news/{feed}"))
    assert is_feed(fetched.media_type, fetched.content)
    entries = parse_feed(fetched.content, fetched.url)
    assert entries == [
        FeedEntry(site.url("/news/harbour-strike.html"), HARBOUR_TITLE, "2024-03-14"),
        # 21:30 in New York on the 8th, though it is the 9th in UTC.
        FeedEntry(site.url("/news/council-budget.html"), COUNCIL_TITLE, "2023-11-08"),
        FeedEntry(site.url("/news/cafe-muller.html"), CAFE_TITLE, "2022-09-03"),
    ]
    for entry in entries:  # every link leads to its page's article
        page = fetcher.get(entry.url)
        assert extract_html(page.content, url=page.url, charset=page.charset).title == entry.title


@pytest.mark.parametrize("media_type", ["application/xml", "text/xml", "text/html", "text/plain"])
def test_a_feed_is_told_from_a_page_by_its_root_element(media_type: str) -> None:
    rss = (PAGES / "feed.rss").read_bytes()
    atom = (PAGES / "feed.atom").read_bytes()
    rdf = b'<?xml version="1.0"?>\n<!-- RSS 1.0 -->\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    page = (PAGES / "harbour-strike.html").read_bytes()
    xhtml = b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml">'
    assert is_feed(media_type, rss) and is_feed(media_type, atom) and is_feed(media_type, rdf)
    assert is_feed(media_type, b"\xef\xbb\xbf  " + rss)
    assert not is_feed(media_type, page) and not is_feed(media_type, xhtml) and not is_feed(media_type, b"")
    assert is_feed("application/rss+xml", b"") and is_feed("application/atom+xml", page)


def test_a_page_served_as_xml_is_not_a_feed(site: NewsSite, fetcher: Fetcher) -> None:
    site.route(
        "/page.xml", (PAGES / "harbour-strike.html").read_bytes(), headers={"Content-Type": "text/xml"}
    )
    fetched = fetcher.get(site.url("/page.xml"))
    assert fetched.media_type == "text/xml" and not is_feed(fetched.media_type, fetched.content)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>News</title><item><title>Half',
            "a broken feed",
        ),
        ((PAGES / "harbour-strike.html").read_bytes(), "not an RSS or Atom feed"),
        (b"", "not an RSS or Atom feed"),
    ],
)
def test_a_broken_feed_is_one_line(content: bytes, words: str) -> None:
    with pytest.raises(FetchError) as caught:
        parse_feed(content, "https://news.example/rss")
    assert one_line(caught).startswith(f"https://news.example/rss: {words}")


def test_an_empty_feed_has_no_entries() -> None:
    empty = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet day</title></channel></rss>'
    assert parse_feed(empty, "https://news.example/rss") == []


def test_feed_entries_without_a_web_link_or_date() -> None:
    feed = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Mixed</title>
      <item><title>No date</title><link>https://news.example/a</link></item>
      <item><title>Dated</title><link>https://news.example/b</link>
        <pubDate>Mon, 01 Jan 2024 08:00:00 +0000</pubDate></item>
      <item><title>No link</title><pubDate>Tue, 02 Jan 2024 08:00:00 +0000</pubDate></item>
      <item><title>Not the web</title><link>javascript:alert(1)</link></item>
      <item><title>Twice</title><link>https://news.example/a</link></item>
    </channel></rss>"""
    assert parse_feed(feed, "https://news.example/rss") == [
        FeedEntry("https://news.example/b", "Dated", "2024-01-01"),
        FeedEntry("https://news.example/a", "No date", None),
    ]


def test_feedparser_is_never_given_a_name_it_could_open(tmp_path: Path) -> None:
    """Handed bytes, feedparser would take them for a file name; the feed's bytes must be read as a feed."""
    secret = tmp_path / "secret.xml"
    secret.write_bytes((PAGES / "feed.rss").read_bytes())
    with pytest.raises(FetchError, match="not an RSS or Atom feed"):
        parse_feed(str(secret).encode(), "https://news.example/rss")
