"""News feeds, RSS and Atom: telling one from a page, and the articles it links to, newest first.

feedparser reads the feed, and is only ever handed the bytes the fetcher already holds, wrapped
in a stream: given a str or bytes it takes them for a URL to fetch or a local file to open.
"""

from __future__ import annotations

import calendar
import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from index.errors import FetchError

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml"})
# The root element of RSS 2.0 (rss), Atom (feed) and RSS 1.0 (rdf:RDF), after any XML declaration,
# comments, processing instructions and doctype.
_ROOT = re.compile(
    rb"""\A(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>)*<([A-Za-z_][\w.:-]*)""",
    re.DOTALL | re.IGNORECASE,
)
_FEED_ROOTS = {"rss", "feed", "rdf"}
_SNIFF_BYTES = 4096
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class FeedEntry:
    """One article a feed links to."""

    url: str  # the entry's link, absolute
    title: str | None
    date: str | None  # YYYY-MM-DD, the day as the feed wrote it, when the feed gives one


def is_feed(media_type: str, content: bytes) -> bool:
    """Whether a fetched body is an RSS or Atom feed: by its media type, else by its root element.

    A feed is often served as text/xml or application/xml, and a page now and then as either, so
    those (and any other type) are told apart by the document's first element.
    """
    if media_type.lower() in FEED_TYPES:
        return True
    head = content[:_SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    match = _ROOT.match(head.removeprefix(b"\xef\xbb\xbf"))
    if match is None:
        return False
    return match.group(1).decode("ascii").rpartition(":")[2].lower() in _FEED_ROOTS


def parse_feed(content: bytes, base_url: str) -> list[FeedEntry]:
    """The entries of an RSS or Atom feed, newest first, links made absolute against `base_url`.

    Entries without a link are left out, and entries without a date come after the dated ones in
    the feed's order. A feed feedparser recovers entries from despite a fault is read; one with
    a fault and no entry, or no feed in it at all, is a FetchError of one line.
    """
    import feedparser  # loaded by the commands that read feeds, not by every start

    parsed = feedparser.parse(
        io.BytesIO(content),
        # The feed's own address resolves its relative links; the type is what is_feed decided.
        response_headers={"content-location": base_url, "content-type": "application/xml"},
        resolve_relative_uris=False,
        sanitize_html=False,
    )
    dated: list[tuple[datetime, FeedEntry]] = []
    undated: list[FeedEntry] = []
    seen: set[str] = set()
    for entry in parsed.entries:
        url = _entry_url(entry, base_url)
        if url is None or url in seen:
            continue
        seen.add(url)
        when = _entry_time(entry)
        item = FeedEntry(url=url, title=_entry_title(entry), date=when.date().isoformat() if when else None)
        if when is None:
            undated.append(item)
        else:
            dated.append((when, item))
    if not dated and not undated and (parsed.get("bozo") or not parsed.get("version")):
        reason = parsed.get("bozo_exception")
        why = f" ({' '.join(str(reason).split())})" if reason else ""
        what = "a broken feed" if parsed.get("version") else "not an RSS or Atom feed"
        raise FetchError(f"{base_url}: {what}{why}")
    dated.sort(key=lambda pair: pair[0], reverse=True)  # stable: same-time entries keep feed order
    return [item for _, item in dated] + undated


def _entry_title(entry: Any) -> str | None:
    title = entry.get("title", "")
    if entry.get("title_detail", {}).get("type") in ("text/html", "application/xhtml+xml"):
        title = html.unescape(_TAG.sub("", title))
    return " ".join(title.split()) or None


def _entry_url(entry: Any, base_url: str) -> str | None:
    """The entry's web page: its alternate link (Atom), else its link, absolute, http(s) only."""
    alternates = [link.get("href") for link in entry.get("links") or [] if link.get("rel") == "alternate"]
    href = next((link for link in alternates if link), None) or entry.get("link")
    if not href and entry.get("guidislink"):
        href = entry.get("id")
    if not href:
        return None
    url = urljoin(base_url, href.strip())
    return url if urlsplit(url).scheme in ("http", "https") else None


def _entry_time(entry: Any) -> datetime | None:
    """When the entry was published (else updated), in the time zone the feed wrote it in."""
    for key in ("published", "updated", "created"):
        raw = entry.get(key)
        if not raw:
            continue
        written = _parse_written(raw)
        if written is not None:
            return written
        parsed = entry.get(f"{key}_parsed")  # feedparser's reading of odd formats, in UTC
        if parsed:
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    return None


def _parse_written(raw: str) -> datetime | None:
    """An RFC 822 (RSS) or ISO 8601 (Atom) date with its own offset kept, so its day is the
    publisher's day: 21:30 on 8 November in New York is not 9 November."""
    raw = raw.strip()
    try:
        written = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        try:
            written = datetime.fromisoformat(raw)
        except ValueError:
            return None
    return written if written.tzinfo else written.replace(tzinfo=UTC)
