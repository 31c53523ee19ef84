"""Articles arriving from the web and from files, saved once each into an articles folder.

An `ArticleFolder` is a folder of plain article files that articlebot adds to. Each article is
saved as a `.txt` file with front matter (Title, Date, Source, URL) that `index.articles` reads
like any other, so the folder stays something a person can read, edit and back up. Beside the
articles, a ledger (`.articlebot-sources.json`) remembers where each one came from, its text's
hash, and each feed's ETag and Last-Modified, which is how the same URL or the same text twice
adds nothing, a changed page updates its article, and a poll asks a feed only for what is new.

Every change happens under a lock on the folder, and every file is written whole and renamed
into place, so two processes adding at once (a feed poll and an admin on Telegram) and a build
reading the folder meanwhile all see whole articles. A source that fails changes nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from index.articles import ARTICLE_SUFFIXES, MAX_ARTICLE_BYTES, Article, parse_article, read_article
from index.errors import ArticlebotError
from index.files import atomic_write

if TYPE_CHECKING:
    from index.web.fetch import Fetcher

log = logging.getLogger(__name__)

LEDGER = ".articlebot-sources.json"
LOCK = ".articlebot-add.lock"
LEDGER_VERSION = 1
# A file name keeps this much of the title's slug, then a hash of where the article came from.
SLUG_CHARS = 60

ADDED, UPDATED, UNCHANGED, REMOVED, FAILED = "added", "updated", "already there", "removed", "failed"


@dataclass(frozen=True)
class Outcome:
    """What became of one source (or one entry of a feed)."""

    source: str
    status: str
    detail: str = ""
    title: str | None = None
    date: str | None = None
    path: Path | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def changed(self) -> bool:
        return self.status in (ADDED, UPDATED, REMOVED)

    @property
    def reason(self) -> str:
        """Why it failed, without repeating the source the message already starts with."""
        for prefix, instead in ((f"{self.source}: ", ""), (f"{self.source} ", "it ")):
            if self.detail.startswith(prefix):
                return instead + self.detail[len(prefix) :]
        return self.detail

    @property
    def label(self) -> str:
        """The article as people name it: its title, and its date when known."""
        title = self.title or self.source
        return f"{title} ({self.date})" if self.date else title

    def line(self) -> str:
        """One line for a terminal or a log."""
        if self.failed:
            return f"failed: {self.source}: {self.reason}"
        return f"{self.status}: {self.label}" + (f" <- {self.source}" if self.source != self.title else "")


class ArticleFolder:
    """A folder that articles are added to, from URLs, feeds and files."""

    def __init__(
        self,
        folder: Path,
        *,
        allow_private: bool = False,
        max_bytes: int = MAX_ARTICLE_BYTES,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._fetcher = fetcher
        self._allow_private = allow_private

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            from index.web.fetch import Fetcher  # httpx: imported by the commands that fetch, not by `ask`

            self._fetcher = Fetcher(allow_private=self._allow_private, max_bytes=self.max_bytes)
        return self._fetcher

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()

    def __enter__(self) -> ArticleFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Adding -----------------------------------------------------------------------------------

    def add(self, sources: Iterable[str]) -> list[Outcome]:
        """Add each source: a page URL, a feed URL (each entry's link), or a local article file."""
        outcomes: list[Outcome] = []
        for source in sources:
            source = source.strip()
            try:
                if _is_url(source):
                    outcomes.extend(self._add_url(source))
                else:
                    outcomes.append(self._add_file(Path(source).expanduser()))
            except ArticlebotError as error:
                outcomes.append(Outcome(source, FAILED, str(error)))
            except OSError as error:  # the folder cannot be written: full, read-only, not ours
                outcomes.append(Outcome(source, FAILED, f"cannot save it in {self.folder}: {error.strerror}"))
        return outcomes

    def add_document(self, name: str, data: bytes) -> Outcome:
        """An article sent as a file's bytes (a Telegram document): `.html`, `.htm`, `.txt` or `.md`."""
        suffix = Path(name).suffix.lower()
        try:
            if suffix not in ARTICLE_SUFFIXES:
                raise ArticlebotError(f"{name} is not an article file: send .html, .txt or .md")
            if len(data) > self.max_bytes:
                raise ArticlebotError(f"{name} is over the limit of {self.max_bytes / 1e6:g} MB")
            with tempfile.TemporaryDirectory() as scratch:
                copy = Path(scratch) / f"document{suffix}"
                copy.write_bytes(data)
                article = read_article(copy, "document", self.max_bytes)
            return self._save(
                replace(article, path=name), key=f"document:{_text_hash(article.text)}", source=name
            )
        except ArticlebotError as error:
            return Outcome(name, FAILED, str(error))
        except OSError as error:
            return Outcome(name, FAILED, f"cannot save it in {self.folder}: {error.strerror}")

    def _add_file(self, path: Path) -> Outcome:
        if not path.is_file():
            raise ArticlebotError("no such file")
        if path.suffix.lower() not in ARTICLE_SUFFIXES:
            raise ArticlebotError(f"{path.name} is not an article file: give .html, .htm, .txt or .md")
        article = read_article(path, "file", self.max_bytes)
        return self._save(article, key=path.resolve().as_uri(), source=str(path))

    def _add_url(self, url: str, feed: str | None = None) -> list[Outcome]:
        from index.web.feeds import is_feed, parse_feed

        fetched = self.fetcher.get(url)
        if feed is None and is_feed(fetched.media_type, fetched.content):
            entries = parse_feed(fetched.content, fetched.url)
            return self._add_entries(url, [entry.url for entry in entries])
        article = self._article_from_page(fetched.content, fetched.media_type, fetched.charset, fetched.url)
        keys = {_url_key(url), _url_key(fetched.url), *([_url_key(article.url)] if article.url else [])}
        return [self._save(article, key=_url_key(url), source=url, aliases=keys, feed=feed)]

    def _add_entries(self, feed: str, links: Sequence[str]) -> list[Outcome]:
        """The feed's entries not yet in the folder, fetched and saved; known ones are not fetched again."""
        with self._locked():
            known = _known_urls(self._read_ledger())
        outcomes = []
        for link in links:
            if _url_key(link) in known:
                outcomes.append(Outcome(link, UNCHANGED, "already in the folder"))
                continue
            try:
                outcomes.extend(self._add_url(link, feed=feed))
            except ArticlebotError as error:
                outcomes.append(Outcome(link, FAILED, str(error)))
            except OSError as error:
                outcomes.append(Outcome(link, FAILED, f"cannot save it in {self.folder}: {error.strerror}"))
        if not links:
            outcomes.append(Outcome(feed, UNCHANGED, "the feed lists no articles"))
        return outcomes

    def _article_from_page(self, content: bytes, media_type: str, charset: str | None, url: str) -> Article:
        if media_type == "text/plain":
            from index.web.extract import decode_html

            article = parse_article(decode_html(content, charset), path=url, article_id="page")
            return article if article.url else replace(article, url=url)
        from index.web.extract import extract_html

        page = extract_html(content, url=url, charset=charset)
        return Article(
            id="page",
            path=url,
            title=page.title or _fallback_title(page.text, url),
            text=page.text,
            date=page.date,
            source=page.site,
            url=page.url or url,
        )

    # Feeds ------------------------------------------------------------------------------------

    def poll(self, feeds: Sequence[str], keep: int) -> list[Outcome]:
        """Ask each feed for what is new (a conditional request), add its new entries, then keep
        only the newest `keep` articles that came from feeds. Entries already in the folder are
        not fetched again."""
        outcomes: list[Outcome] = []
        for feed in feeds:
            try:
                outcomes.extend(self._poll_one(feed, keep))
            except ArticlebotError as error:
                outcomes.append(Outcome(feed, FAILED, str(error)))
            except OSError as error:
                outcomes.append(Outcome(feed, FAILED, f"cannot save in {self.folder}: {error.strerror}"))
        outcomes.extend(self.prune(keep))
        return outcomes

    def _poll_one(self, feed: str, keep: int) -> list[Outcome]:
        from index.web.feeds import parse_feed

        with self._locked():
            state = self._read_ledger()["feeds"].get(_url_key(feed), {})
        fetched = self.fetcher.get(feed, etag=state.get("etag"), last_modified=state.get("last_modified"))
        if fetched.not_modified:
            return []
        entries = parse_feed(fetched.content, fetched.url)
        found = self._add_entries(feed, [entry.url for entry in entries[:keep]])
        if not any(outcome.failed for outcome in found):
            # Remembered only when every entry is in: else the next poll's 304 would hide the
            # entries that failed this time.
            with self._locked():
                ledger = self._read_ledger()
                ledger["feeds"][_url_key(feed)] = {
                    "etag": fetched.etag,
                    "last_modified": fetched.last_modified,
                    "polled": _now(),
                }
                self._write_ledger(ledger)
        return [outcome for outcome in found if outcome.status != UNCHANGED]

    def prune(self, keep: int) -> list[Outcome]:
        """Remove all but the newest `keep` articles that came from feeds (by date, then arrival).
        Articles added by hand stay however old they are."""
        with self._locked():
            ledger = self._read_ledger()
            from_feeds = [(name, entry) for name, entry in ledger["articles"].items() if entry.get("feed")]
            from_feeds.sort(key=lambda item: (item[1].get("date") or "", item[1]["added"]), reverse=True)
            outcomes = []
            for name, entry in from_feeds[keep:]:
                (self.folder / name).unlink(missing_ok=True)
                del ledger["articles"][name]
                outcomes.append(
                    Outcome(
                        entry["source"],
                        REMOVED,
                        "older than the newest kept",
                        entry.get("title"),
                        entry.get("date"),
                    )
                )
            if outcomes:
                self._write_ledger(ledger)
        return outcomes

    # Removing ---------------------------------------------------------------------------------

    def remove(self, path: Path) -> Outcome:
        """Remove one article file of this folder (and what the ledger knows of it)."""
        name = path.name
        if path.resolve().parent != self.folder.resolve():
            return Outcome(str(path), FAILED, f"it is not in {self.folder}, the folder articles are added to")
        with self._locked():
            ledger = self._read_ledger()
            entry = ledger["articles"].pop(name, {})
            try:
                article = read_article(path, "removed", self.max_bytes)
                title, date = article.title, article.date
            except ArticlebotError:
                title, date = entry.get("title"), entry.get("date")
            try:
                path.unlink()
            except FileNotFoundError:
                return Outcome(str(path), FAILED, "the file is gone already")
            except OSError as error:
                return Outcome(str(path), FAILED, f"cannot remove it: {error.strerror}")
            self._write_ledger(ledger)
        return Outcome(entry.get("source", str(path)), REMOVED, "", title, date, path)

    # Saving -----------------------------------------------------------------------------------

    def _save(
        self,
        article: Article,
        *,
        key: str,
        source: str,
        aliases: Iterable[str] = (),
        feed: str | None = None,
    ) -> Outcome:
        """Write the article unless the folder holds it already: same source and text, or the same
        text from elsewhere. A source whose text changed has its file rewritten."""
        text_hash = _text_hash(article.text)
        keys = {key, *aliases}
        with self._locked():
            ledger = self._read_ledger()
            articles: dict[str, dict[str, Any]] = ledger["articles"]
            name = next((n for n, e in articles.items() if keys & set(e.get("keys", [e.get("key")]))), None)
            if name is not None and (self.folder / name).is_file():
                if articles[name]["hash"] == text_hash:
                    return Outcome(source, UNCHANGED, "", article.title, article.date, self.folder / name)
                status = UPDATED
            else:
                twin = next((n for n, e in articles.items() if e["hash"] == text_hash), None)
                if twin is not None and (self.folder / twin).is_file():
                    return Outcome(source, UNCHANGED, f"the same text as {twin}", article.title, article.date)
                name = _file_name(article.title, key)
                status = ADDED
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(self.folder / name, _front_matter(article) + article.text.strip() + "\n")
            articles[name] = {
                "key": key,
                "keys": sorted(keys),
                "source": source,
                "hash": text_hash,
                "title": article.title,
                "date": article.date,
                "feed": feed,
                "added": articles.get(name, {}).get("added") or _now(),
            }
            self._write_ledger(ledger)
        return Outcome(source, status, "", article.title, article.date, self.folder / name)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time changes the folder; the kernel drops the lock if it dies."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _read_ledger(self) -> dict[str, Any]:
        path = self.folder / LEDGER
        try:
            ledger = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(ledger, dict) or ledger.get("version") != LEDGER_VERSION:
                raise ValueError("not a ledger of this version")
        except FileNotFoundError:
            ledger = {"version": LEDGER_VERSION}
        except (OSError, ValueError) as error:
            # The articles themselves are whole; only what was known of their sources is lost.
            log.warning("%s cannot be read (%s): starting a new one", path, error)
            ledger = {"version": LEDGER_VERSION}
        ledger.setdefault("articles", {})
        ledger.setdefault("feeds", {})
        return ledger

    def _write_ledger(self, ledger: dict[str, Any]) -> None:
        atomic_write(self.folder / LEDGER, json.dumps(ledger, ensure_ascii=False, indent=1, sort_keys=True))


def _is_url(source: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*://", source, re.IGNORECASE) is not None


def _url_key(url: str) -> str:
    """The same page however its address is written: scheme and host in lower case, no fragment."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _known_urls(ledger: dict[str, Any]) -> set[str]:
    return {key for entry in ledger["articles"].values() for key in entry.get("keys", [entry.get("key")])}


def _text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:24]


def _file_name(title: str, key: str) -> str:
    ascii_title = title.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:SLUG_CHARS].strip("-") or "article"
    return f"{slug}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}.txt"


def _front_matter(article: Article) -> str:
    lines = [f"Title: {_one_line(article.title)}"]
    for label, value in (("Date", article.date), ("Source", article.source), ("URL", article.url)):
        if value:
            lines.append(f"{label}: {_one_line(value)}")
    return "\n".join(lines) + "\n\n"


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _fallback_title(text: str, url: str) -> str:
    first = text.strip().split("\n", 1)[0]
    return first[:80] if first else url


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
