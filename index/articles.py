"""Reading articles from disk: metadata, body text and a stable id."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from index.errors import ArticleError
from index.text import clean_text

log = logging.getLogger(__name__)

ARTICLE_SUFFIXES = (".txt", ".md", ".html", ".htm")
HTML_SUFFIXES = (".html", ".htm")
# Larger files are skipped: a news article is tens of kilobytes; 20 MB takes minutes to split.
MAX_ARTICLE_BYTES = 5_000_000
_FRONT_MATTER_LINE = re.compile(r"^(title|date|source|url)\s*:\s*(.*?)\s*$", re.IGNORECASE)
# A wire-style opening: "date 2021-03-01 YEREVAN -- Armenia has ...".
_DATELINE = re.compile(
    r"^\s*(?:date\s+)?(?P<date>\d{4}-\d{2}-\d{2})\s+"
    r"(?P<place>[A-Z][A-Z .,'’-]{1,60}?)\s*(?:--|—|–)\s*"
)
_PLACE_ONLY_DATELINE = re.compile(r"^\s*(?P<place>[A-Z][A-Z .,'’-]{1,60}?)\s*(?:--|—)\s*")


@dataclass(frozen=True)
class Article:
    """One news article: metadata plus the body text every offset refers to."""

    id: str
    path: str
    title: str
    text: str
    date: str | None = None
    dateline: str | None = None
    source: str | None = None
    url: str | None = None

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that reaches the index changes."""
        digest = hashlib.sha256()
        for part in (self.title, self.date or "", self.dateline or "", self.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
        return digest.hexdigest()[:16]


def parse_article(raw: str, *, path: str, article_id: str) -> Article:
    """Split front matter and dateline off the raw text of one article."""
    text = clean_text(raw)
    meta: dict[str, str] = {}
    lines = text.split("\n")
    consumed = 0
    for line in lines:
        match = _FRONT_MATTER_LINE.match(line)
        if match is None:
            break
        meta[match.group(1).lower()] = match.group(2)
        consumed += 1
    if consumed:
        text = "\n".join(lines[consumed:])

    dateline = None
    match = _DATELINE.match(text) or _PLACE_ONLY_DATELINE.match(text)
    if match is not None:
        dateline = match.group("place").strip(" ,")
        if "date" in match.groupdict() and match.group("date"):
            meta.setdefault("date", match.group("date"))
        text = text[match.end() :]
    # Markdown titles ("# Headline") count as front matter too.
    if "title" not in meta:
        heading = re.match(r"^\s*#\s+(.+?)\s*\n", text)
        if heading is not None:
            meta["title"] = heading.group(1)
            text = text[heading.end() :]
    text = text.strip()
    if not text:
        raise ArticleError(f"{path}: it has no text to index; add the article's body below any metadata")
    title = meta.get("title") or _first_sentence(text) or Path(path).stem
    return Article(
        id=article_id,
        path=path,
        title=title,
        text=text,
        date=meta.get("date") or None,
        dateline=dateline,
        source=meta.get("source") or None,
        url=meta.get("url") or None,
    )


@dataclass(frozen=True)
class KnownArticle:
    """An article file an index already holds, unchanged: what a build needs of it (its id, its
    file and its content hash) without reading it."""

    id: str
    path: str
    content_hash: str


def load_articles(
    paths: Iterable[str | Path],
    *,
    max_bytes: int = MAX_ARTICLE_BYTES,
    on_skip: Callable[[str], None] | None = None,
) -> list[Article]:
    """Read every article file named, or found in the folders named, in a stable order.

    A file that cannot be an article (unreadable, empty, binary, not UTF-8, too large, or a link
    out of its folder) is skipped with one message to `on_skip` (else a logged warning) and the
    rest are read: one bad file in a folder of news must not stop the bot. Only when no file can
    be read at all is that an error.
    """
    return [a for a in survey_articles(paths, max_bytes=max_bytes, on_skip=on_skip) if isinstance(a, Article)]


def survey_articles(
    paths: Iterable[str | Path],
    *,
    max_bytes: int = MAX_ARTICLE_BYTES,
    on_skip: Callable[[str], None] | None = None,
    known: Callable[[Path, str], KnownArticle | None] | None = None,
) -> list[Article | KnownArticle]:
    """`load_articles`, except that a file `known` recognises (by path and id: an index holds it
    unchanged) is not read: an update of a large archive reads only the files that changed."""
    files, skipped = find_article_files(paths)
    if not files and not skipped:
        raise ArticleError("no articles found: name .txt, .md or .html files, or folders holding them")
    ids = _article_ids(files)
    articles: list[Article | KnownArticle] = []
    for file in files:
        held = known(file, ids[file]) if known is not None else None
        if held is not None:
            articles.append(held)
            continue
        try:
            articles.append(read_article(file, ids[file], max_bytes))
        except ArticleError as error:
            skipped.append(str(error))
    if not articles:
        more = f" (and {len(skipped) - 1} more files skipped)" if len(skipped) > 1 else ""
        raise ArticleError(f"{skipped[0]}{more}")
    for reason in skipped:
        (on_skip or log.warning)(f"skipped {reason}")
    return articles


def file_signatures(paths: Iterable[str | Path]) -> dict[str, tuple[int, int]]:
    """Size and modification time (ns) of each file, by path: what tells, without reading a file,
    that it has not changed since an index was built from it. Paths that are not files are left out."""
    signatures = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        signatures[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return signatures


def read_article(file: Path, article_id: str, max_bytes: int = MAX_ARTICLE_BYTES) -> Article:
    """One article file, or an ArticleError that says why it cannot be one."""
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise ArticleError(
                f"{file}: {size / 1e6:.1f} MB is over the limit of {max_bytes / 1e6:g} MB for one article "
                "(max_article_mb in the config)"
            )
        data = file.read_bytes()
    except OSError as error:
        raise ArticleError(f"{file}: it cannot be read: {error.strerror}") from None
    if file.suffix.lower() in HTML_SUFFIXES:
        return _read_html_article(file, data, article_id)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ArticleError(f"{file}: it is UTF-16 text, not UTF-8; save it as UTF-8 and try again")
    if b"\0" in data:
        raise ArticleError(f"{file}: it holds NUL bytes, so it is not a text file")
    try:
        raw = data.decode("utf-8-sig")  # a byte-order mark is dropped, so front matter still reads
    except UnicodeDecodeError:
        raise ArticleError(f"{file}: it is not UTF-8 text; save it as UTF-8 and try again") from None
    return parse_article(raw, path=str(file), article_id=article_id)


def _read_html_article(file: Path, data: bytes, article_id: str) -> Article:
    """A saved web page: its article body and metadata, found as for a page fetched from the web."""
    from index.web.extract import extract_html  # trafilatura loads only when a page is read

    if b"\0" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ArticleError(f"{file}: it holds NUL bytes, so it is not a web page")
    try:
        page = extract_html(data)
    except ArticleError as error:
        raise ArticleError(f"{file}: {error}") from None
    return Article(
        id=article_id,
        path=str(file),
        title=page.title or _first_sentence(page.text) or file.stem,
        text=page.text,
        date=page.date,
        source=page.site,
        url=page.url,
    )


def find_article_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """The article files (resolved, as an Article's `path` holds them), and why any file found
    in a folder was passed over."""
    names, skipped = article_file_names(paths)
    return [Path(name) for name in names], skipped


def article_file_names(paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """`find_article_files` with the files as strings: a start that only checks an archive of a
    hundred thousand files against its index need not make a Path of each (a second, measured)."""
    files: list[str] = []
    skipped: list[str] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found, outside = _folder_files(path)
            if not found and not outside:
                raise ArticleError(f"{path} holds no .txt or .md articles or .html pages")
            files.extend(found)
            # A link out of the folder (to /etc/passwd, say) is not followed unless named itself.
            skipped.extend(
                f"{link}: it links outside {path} (name the file itself to index it)" for link in outside
            )
        elif path.is_file():
            files.append(os.path.realpath(path))
        else:
            raise ArticleError(f"article not found: {path}")
    return list(dict.fromkeys(files)), skipped


def _folder_files(folder: Path) -> tuple[list[str], list[str]]:
    """Article files under `folder` (resolved) in path order, and links among them that lead out
    of it. One scandir per folder and no system call per plain file: an archive's folder holds
    tens of thousands. Linked folders are not entered (as pathlib's rglob does not)."""
    root = os.path.realpath(folder)
    found: list[tuple[tuple[str, ...], str]] = []
    outside: list[str] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while pending:
        directory, parts = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, (*parts, entry.name)))
                elif os.path.splitext(entry.name)[1].lower() in ARTICLE_SUFFIXES and entry.is_file():
                    # Under the resolved root, only a link can lead out of it.
                    resolved = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
                    if resolved is entry.path or os.path.commonpath((resolved, root)) == root:
                        found.append(((*parts, entry.name), resolved))
                    else:
                        outside.append(str(folder.joinpath(*parts, entry.name)))
    found.sort()
    return [file for _, file in found], sorted(outside)


def _article_ids(files: Sequence[Path]) -> dict[Path, str]:
    """Ids are the file's name as a slug; two files of one name get a hash of their path."""
    slugs = {file: _slug(file.stem) for file in files}
    counts: dict[str, int] = {}
    for slug in slugs.values():
        counts[slug] = counts.get(slug, 0) + 1
    return {
        file: slug if counts[slug] == 1 else f"{slug}-{hashlib.sha1(str(file).encode()).hexdigest()[:6]}"
        for file, slug in slugs.items()
    }


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or "article"


def _first_sentence(text: str, limit: int = 70) -> str:
    first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].strip()
    return first if len(first) <= limit else first[: limit - 1].rsplit(" ", 1)[0] + "…"
