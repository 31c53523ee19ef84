"""A web page → its article: the body as paragraphs, and the title, date, author, site and URL.

trafilatura finds the main text and the metadata; this module decides the bytes' character set,
drops the in-article clutter (index/web/clutter.py) and the link paragraphs trafilatura keeps, and
writes the body one paragraph per block so the splitter sees the page's paragraphs. trafilatura
(lxml, justext, htmldate) is imported on the first page, not with this module: reading .txt
articles must not pay for it.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any

from index.errors import ArticleError
from index.text import clean_text
from index.web.clutter import drop_clutter

if TYPE_CHECKING:
    from lxml.html import HtmlElement

# The HTML standard looks for a declaration in the first 1024 bytes; pages with long <head>
# scripts put it later, and 4 KB still costs nothing to scan.
_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9_.:+-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9_.:+-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml\b[^>]*\?>")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# What browsers do (WHATWG Encoding): these labels mean windows-1252, whose curly quotes, dashes
# and euro sign pages declared "iso-8859-1" use all the time; Python's latin-1 turns them into
# invisible C1 control characters.
_WINDOWS_1252_LABELS = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii", "cp819"}
# The guess is made among the legacy encodings the web uses (the WHATWG list): left free,
# charset-normalizer reads a short windows-1252 page as UTF-16 or an IBM code page.
_LEGACY_WEB_ENCODINGS = (
    *("cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "cp874"),
    *("iso8859_2", "iso8859_4", "iso8859_5", "iso8859_7", "iso8859_8", "iso8859_13", "iso8859_15"),
    *("koi8_r", "koi8_u", "gb18030", "big5", "shift_jis", "euc_jp", "iso2022_jp", "euc_kr"),
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SPACE = re.compile(r"\s+")
# A short line above the body naming the author ("By Sabine Grünwald,") that trafilatura keeps when
# the page marks it up as a plain paragraph.
_BYLINE_LIMIT = 100
# A paragraph with at most this many words outside its links is a link ("Read more: <a>…</a>").
_LINK_PARAGRAPH_WORDS = 3
# trafilatura's output tags (and HTML's, in a page its fallback extractors return as they found it).
_BLOCK_TAGS = frozenset({"p", "head", "item", "code", "cell"})
_LINE_BREAK_TAGS = frozenset({"lb", "br"})
_INLINE_TAGS = _LINE_BREAK_TAGS | {"hi", "ref", "del", "graphic", "a", "b", "i", "em", "strong", "span"}


@dataclass(frozen=True)
class PageArticle:
    """The article in one web page."""

    text: str  # the body: one paragraph per block, blocks separated by a blank line; no title on top
    title: str | None
    date: str | None  # publication date, YYYY-MM-DD
    author: str | None
    site: str | None  # the site's name, else its host name
    url: str | None  # the page's canonical URL, else the URL it was read from


def decode_html(data: bytes, declared_charset: str | None = None) -> str:
    """The text of an HTML page, decoded as a browser would.

    A byte-order mark wins, then the charset the HTTP header declared, then a <meta> or XML
    declaration in the first bytes, then UTF-8 when the bytes are valid UTF-8, then
    charset-normalizer's guess. A declared charset the bytes do not fit is passed over.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    for label in (declared_charset, _declared_in_page(data[:_PRESCAN_BYTES])):
        codec = _codec(label)
        if codec is not None:
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=list(_LEGACY_WEB_ENCODINGS)).best()
    return str(best) if best is not None else data.decode("windows-1252", errors="replace")


def extract_html(data: bytes | str, *, url: str | None = None, charset: str | None = None) -> PageArticle:
    """The article in a web page, or an ArticleError that says there is none.

    trafilatura runs with favor_precision: on a page with little text (a script-only app shell)
    the balanced mode returns the menu as the article, and a menu or a comment indexed as news is
    answered as if it were news; a short paragraph missed costs less. include_tables is off: the
    cells of a layout table (older sites lay out the whole page in one) bring the menu with them,
    and a data table's cells read as a run of words no answer can quote. Comments are left out.
    The date search is not extensive: the date comes from the markup (JSON-LD, <meta>, <time>,
    the URL), never guessed from a date the text mentions. Nothing here reaches the network:
    trafilatura and htmldate are given the parsed page, never a URL to fetch.
    """
    where = f"{url}: " if url else ""
    html = data if isinstance(data, str) else decode_html(data, charset)
    # lxml refuses a str that still declares its bytes' encoding, and trafilatura then reparses
    # it as UTF-8 bytes under that declaration: a decoded windows-1252 page would come out garbled.
    html = _XML_DECLARATION.sub("", html, count=1)
    trafilatura = _trafilatura()
    tree = trafilatura.load_html(html)
    if tree is None:
        raise ArticleError(f"{where}not an HTML page")
    drop_clutter(tree)
    _drop_link_paragraphs(tree)
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        with_metadata=True,
        date_extraction_params={
            "original_date": True,  # published, not updated
            "extensive_search": False,
            "max_date": date.today().isoformat(),
        },
    )
    if document is None or document.body is None:
        raise ArticleError(f"{where}no article text found in the page")
    title, author = _clean_line(document.title), _clean_line(document.author)
    blocks = _drop_heading_and_byline(_blocks(document.body), title, author)
    if not blocks:
        raise ArticleError(f"{where}no article text found in the page")
    page_date = document.date if document.date and _DATE.match(document.date) else None
    return PageArticle(
        text="\n\n".join(blocks),
        title=title,
        date=page_date,
        author=author,
        site=_clean_line(document.sitename) or _clean_line(document.hostname),
        url=_clean_line(document.url) or url,
    )


@cache
def _trafilatura() -> Any:
    import trafilatura

    # trafilatura logs a warning for every page it finds no text in; extract_html raises an
    # ArticleError that says so in one line, so its own lines would only repeat it. A logger the
    # application configured itself is left as it is.
    quiet = logging.getLogger("trafilatura")
    if quiet.level == logging.NOTSET:
        quiet.setLevel(logging.CRITICAL)
    return trafilatura


def _declared_in_page(head: bytes) -> str | None:
    match = _XML_ENCODING.match(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii") if match else None


def _codec(label: str | None) -> str | None:
    """Python's codec for a charset label, or None for a label it does not know."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _WINDOWS_1252_LABELS:
        return "windows-1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page that names UTF-16 in its own ASCII text cannot be UTF-16 (HTML standard).
    return "utf-8" if name.startswith("utf-16") else name


def _drop_link_paragraphs(tree: HtmlElement) -> None:
    """Remove paragraphs that are only a link, with at most a label ("Read more: <a>…</a>").

    trafilatura keeps such a paragraph when it sits among the article's own paragraphs: the
    "related stories" link a newsroom puts between two paragraphs would become a sentence of
    the article.
    """
    for paragraph in list(tree.iter("p")):
        links = paragraph.findall(".//a")
        if not links:
            continue
        words = len(paragraph.text_content().split())
        linked = sum(len(link.text_content().split()) for link in links)
        if linked and words - linked <= _LINK_PARAGRAPH_WORDS:
            paragraph.drop_tree()


def _blocks(body: Any) -> list[str]:
    """The paragraphs of trafilatura's output tree, in order, each one clean line of text.

    trafilatura's own plain text joins paragraphs with a single newline and runs together the
    paragraphs an old page separates with <br><br>; the tree still tells them apart.
    """
    blocks: list[str] = []

    def visit(element: Any) -> None:
        if element.tag in _BLOCK_TAGS or all(node.tag in _INLINE_TAGS for node in element.iterdescendants()):
            blocks.extend(_paragraphs(element))
            return
        if element.text and element.text.strip():
            blocks.append(_SPACE.sub(" ", element.text).strip())
        for child in element:
            visit(child)
            if child.tail and child.tail.strip():
                blocks.append(_SPACE.sub(" ", child.tail).strip())

    visit(body)
    return [block for block in map(clean_text, blocks) if any(c.isalnum() for c in block)]


def _paragraphs(element: Any) -> list[str]:
    """One block element's text: a single <br> stays a line break, two or more end a paragraph."""
    pieces: list[str] = []

    def collect(node: Any) -> None:
        if node.tag in _LINE_BREAK_TAGS:
            pieces.append("\n")
        else:
            pieces.append(_SPACE.sub(" ", node.text or ""))
            for child in node:
                collect(child)
                pieces.append(_SPACE.sub(" ", child.tail or ""))

    collect(element)
    text = re.sub(r" *\n *", "\n", "".join(pieces)).strip()
    return [part.strip() for part in re.split(r"\n{2,}", text) if part.strip()]


def _drop_heading_and_byline(blocks: list[str], title: str | None, author: str | None) -> list[str]:
    """Without the headline trafilatura repeats at the top, or a byline paragraph under it."""
    start = 0
    for block in blocks[:3]:
        is_title = title is not None and _fold(block) == _fold(title)
        is_byline = (
            author is not None
            and len(block) <= _BYLINE_LIMIT
            and re.match(r"(?i)by\s", block) is not None
            and _fold(author) in _fold(block)
        )
        if not (is_title or is_byline):
            break
        start += 1
    return blocks[start:]


def _fold(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def _clean_line(value: str | None) -> str | None:
    if not value:
        return None
    line = _SPACE.sub(" ", clean_text(value)).strip()
    return line or None
