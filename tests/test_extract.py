"""Web pages → articles: the body paragraph by paragraph, no boilerplate, the right metadata."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from news_site import PAGES

from index.articles import load_articles
from index.errors import ArticleError
from index.web.extract import decode_html, extract_html


@dataclass(frozen=True)
class Page:
    file: str
    paragraphs: tuple[str, ...]  # the body, in order: each is one block of the text
    boilerplate: tuple[str, ...]  # none of these may reach the text
    title: str
    date: str
    author: str
    site: str | None
    url: str | None  # None: the page names no canonical URL, so the URL it was read from


HARBOUR = Page(
    file="harbour-strike.html",
    paragraphs=(
        "A 48-hour walkout by crane operators left more than 30 ships waiting off the coast.",
        "Container traffic at Port Aldwych came to a standstill on Thursday after about 600 crane "
        "operators and lashers began a 48-hour strike over pay and night-shift staffing.",
        "The port authority said 31 vessels were anchored in the bay by midday, and that two shipping "
        "lines had already diverted cargo to the rival terminal at Kestrel Point, some 80 kilometres to "
        "the north.",
        "Union organiser Daniel Reyes said the workers had rejected a 3.5% offer because it came with a "
        'plan to cut the number of staff on each night shift from nine to seven. "Nobody wants to stop '
        'the port, but fewer people on a crane at three in the morning is how accidents happen," he said.',
        "Talks to resume on Monday",
        "Aldwych Port Holdings, which operates the terminal, said the offer was the best in the region "
        "and that the staffing change would be phased in with new automated lashing platforms. Its chief "
        "executive, Helen Marsh, said talks with the union would resume on Monday at the offices of the "
        "conciliation service.",
        "Exporters warned that a longer dispute would hit perishable goods first. The regional fruit "
        "growers' association said about 140 refrigerated containers of apples and pears were waiting at "
        "the quay and could be held for about a week.",
        "It is the first strike at the port since 2011, when a week-long stoppage over pensions cost the "
        "local economy an estimated £40 million.",
    ),
    boilerplate=(
        # cookie banner
        "We use cookies",
        "Accept all cookies",
        "Privacy settings",
        # navigation, masthead, breadcrumbs, byline, sharing
        "Weather and tides",
        "Subscribe from",
        "Transport Correspondent",
        "Share on Facebook",
        "Topics:",
        # in-article advertisement
        "Advertisement",
        "Summer ferry sale",
        # newsletter sign-up
        "Morning Briefing",
        "Sign up for our free newsletter",
        "Sign me up",
        # related stories
        "Related stories",
        "Ferry operators warn of summer delays",
        "Port automation plan unveiled",
        # reader comments
        "Reader comments",
        "SeaDog1972",
        "About time the lashers",
        "garden furniture",
        "broke down twice last winter",
        "Join the discussion",
        # most read
        "Most read",
        "Lifeboat crew rescues",
        "Seafront Grand Hotel",
        # footer
        "All rights reserved",
        "Privacy policy",
        "Contact the newsroom",
        # scripts
        "dataLayer",
    ),
    title="Dock workers strike halts container traffic at Port Aldwych",
    date="2024-03-14",  # JSON-LD datePublished (dateModified is the 15th)
    author="Maria Ortega",
    site="The Harbour Gazette",
    url="https://www.harbourgazette.example/business/2024/dock-workers-strike-port-aldwych",
)

COUNCIL = Page(
    file="council-budget.html",
    paragraphs=(
        "The Riverton city council voted 6-3 on Wednesday night to approve a $48 million budget for next "
        "year that trims opening hours at all four public libraries and delays the repaving of Main Street.",
        "Mayor Linda Okafor said the city faced a $2.7 million gap after sales tax receipts fell short of "
        "forecasts for the second year running, and that the cuts had been chosen to avoid layoffs.",
        "Under the plan, the main library on Elm Street will close at 6 p.m. instead of 8 p.m. on "
        "weekdays, and the three branch libraries will stay closed on Mondays. The changes take effect on "
        "Jan. 15.",
        '"A library that closes when people get off work is a library that working families cannot use," '
        "said council member Rosa Delgado, who voted against the budget.",
        "The budget keeps funding for two new firefighter positions and sets aside $350,000 for flood "
        "barriers along the Wick River, which overflowed twice last spring.",
        "Residents will be able to comment on the library schedule at a public hearing on Dec. 4 before "
        "the changes are final. The council also asked the city manager to report back in March on "
        "whether volunteers could keep the branches open on Monday afternoons.",
    ),
    boilerplate=(
        # cookie notice
        "This website uses cookies",
        "OK, got it",
        # navigation and widgets
        "Obituaries",
        "E-edition",
        "light rain",
        "Local government reporter",
        # newsletter promotion
        "Want the Courier in your inbox",
        "Daily Digest",
        # in-article advertisement
        "ADVERTISEMENT",
        "Riverton Motors",
        # a related story linked between two paragraphs, and the related list
        "Read more",
        "New flood map puts 300 homes",
        "More from Local",
        "School board race",
        # reader comments
        "Conversation",
        "river_rat",
        "Eastside branch",
        # trending ("most read")
        "Trending now",
        "Pumpkin Festival",
        # footer
        "Courier Media Group",
        "Advertise with us",
        "Do not sell",
    ),
    title="Riverton council approves budget with cuts to library hours",
    date="2023-11-08",  # <meta property="article:published_time"> in New York time (modified: the 9th)
    author="Tom Becker",
    site="Riverton Courier",
    url="https://rivertoncourier.example/local/council-approves-budget-library-hours",  # og:url
)

# ISO-8859-1 declared only in a <meta http-equiv> tag; like most such pages it also uses the
# windows-1252 euro sign and en dash, which browsers (and we) read as windows-1252.
CAFE = Page(
    file="cafe-muller.html",
    paragraphs=(
        "Café Müller on the Lendkai reopened on Saturday, eleven weeks after the Mur burst its banks and "
        "left half a metre of water in the dining room.",
        "Owner Jürgen Weiß said the repairs cost about €85,000, most of it covered by insurance, and that "
        'the old parquet floor could not be saved. "We kept the marble tables and the Sacher torte '
        'recipe, so the regulars will feel at home," he said.',
        "The café has been run by the Müller family since 1952. Weiß, a grandson of the founder, took "
        "over in 2015 and added a small roastery behind the kitchen.",
        "City officials said 2–3 other businesses on the riverbank were still closed, and that work on a "
        "higher flood wall between the Augartenbrücke and the Hauptbrücke would start next spring.",
    ),
    boilerplate=("Startseite", "Lokales", "Kultur", "Archiv", "Impressum", "Datenschutz", "By Sabine"),
    title="Café Müller reopens after flood repairs",
    date="2022-09-03",  # <time datetime>
    author="Sabine Grünwald",
    site="news.example",  # no site name in the page: the host it was read from
    url=None,
)

READ_FROM = "https://news.example/local/cafe-muller"


@pytest.mark.parametrize("page", [HARBOUR, COUNCIL, CAFE], ids=lambda page: page.file)
def test_a_page_gives_its_paragraphs_and_metadata(page: Page) -> None:
    article = extract_html((PAGES / page.file).read_bytes(), url=READ_FROM)
    blocks = article.text.split("\n\n")
    for paragraph in page.paragraphs:
        assert paragraph in blocks, paragraph
    for junk in page.boilerplate:
        assert junk not in article.text, junk
    assert blocks == list(page.paragraphs)  # nothing else, in the page's order, and no title on top
    assert (article.title, article.date, article.author, article.site, article.url) == (
        page.title,
        page.date,
        page.author,
        page.site,
        page.url or READ_FROM,
    )


def test_a_page_declared_iso_8859_1_in_a_meta_tag_reads_right() -> None:
    data = (PAGES / CAFE.file).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    article = extract_html(data)
    for word in ("Café Müller", "Jürgen Weiß", "€85,000", "2–3", "Augartenbrücke"):
        assert word in article.text, word
    assert article.title == "Café Müller reopens after flood repairs"
    assert article.author == "Sabine Grünwald"
    # Read from a file there is no URL and no host to name the site by.
    assert (article.url, article.site) == (None, None)


def test_a_page_without_article_text_is_one_error_line() -> None:
    with pytest.raises(ArticleError) as caught:
        extract_html((PAGES / "app-shell.html").read_bytes(), url="https://northshore.example/")
    assert str(caught.value) == "https://northshore.example/: no article text found in the page"
    with pytest.raises(ArticleError, match=r"^no article text found in the page$"):
        extract_html("<html><head><title>Empty</title></head><body></body></html>")


def test_paragraphs_split_by_two_line_breaks_become_paragraphs() -> None:
    html = """<html><head><title>Ferry timetable changes</title></head><body><article>
    <h1>Ferry timetable changes</h1>
    <div class="body">The first ferry will leave the harbour at six in the morning from next week.<br><br>
    The last crossing moves to ten at night, an hour later than today.<br>
    Tickets bought before the change remain valid on every sailing.</div>
    <p>The operator said the new timetable follows a survey of regular passengers in the spring.</p>
    </article></body></html>"""
    article = extract_html(html)
    assert article.text.split("\n\n") == [
        "The first ferry will leave the harbour at six in the morning from next week.",
        "The last crossing moves to ten at night, an hour later than today.\n"
        "Tickets bought before the change remain valid on every sailing.",
        "The operator said the new timetable follows a survey of regular passengers in the spring.",
    ]


def test_extraction_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """trafilatura and htmldate can fetch a URL themselves; here they are only given the page."""
    touched: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        touched.append(args)
        raise OSError("no network in extraction")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for page in (HARBOUR, COUNCIL, CAFE):
        extract_html((PAGES / page.file).read_bytes(), url=f"https://news.example/{page.file}")
    assert touched == []


@pytest.mark.parametrize(
    ("data", "header", "expected"),
    [
        ("<p>café</p>".encode(), None, "<p>café</p>"),  # valid UTF-8, nothing declared
        ('<meta charset="windows-1252"><p>café</p>'.encode("cp1252"), None, "café"),
        (
            "<meta http-equiv='Content-Type' content='text/html; charset=ISO-8859-1'>“Müller”".encode(
                "cp1252"
            ),
            None,
            "“Müller”",
        ),
        ('<?xml version="1.0" encoding="iso-8859-15"?><p>€ café</p>'.encode("iso-8859-15"), None, "€ café"),
        ('<meta charset="utf-8"><p>café</p>'.encode("cp1252"), "windows-1252", "café"),  # the header wins
        ("<p>café</p>".encode("cp1252"), "utf-8", "café"),  # a header the bytes do not fit is passed over
        ("<p>café</p>".encode("cp1252"), "no-such-charset", "café"),
        ('<meta charset="utf-16"><p>café</p>'.encode(), None, "café"),  # ASCII text cannot be UTF-16
        ("\ufeff<p>café</p>".encode("utf-16"), None, "<p>café</p>"),  # a byte-order mark wins
        (
            "<p>Der Bürgermeister sagte, das Café öffnet am Montag wieder.</p>".encode("cp1252"),
            None,
            "Café öffnet",
        ),
    ],
)
def test_decode_html(data: bytes, header: str | None, expected: str) -> None:
    assert expected in decode_html(data, header)


def test_an_xhtml_page_with_an_encoding_declaration_reads_right() -> None:
    page = (
        '<?xml version="1.0" encoding="iso-8859-1"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Market news</title></head><body><article>'
        "<p>The café on the market square, run by the Müller family, opened again on Monday morning.</p>"
        "<p>Its owners said the new kitchen had taken four months to build and cost more than planned.</p>"
        "</article></body></html>"
    )
    article = extract_html(page.encode("latin-1"))
    assert article.text.startswith("The café on the market square, run by the Müller family")


def test_an_html_file_is_read_as_an_article(tmp_path: Path) -> None:
    folder = tmp_path / "news"
    folder.mkdir()
    shutil.copy(PAGES / HARBOUR.file, folder / HARBOUR.file)
    shutil.copy(PAGES / CAFE.file, folder / "cafe.HTM")
    (folder / "brief.txt").write_text("Title: Brief\n\nThe ferry runs late today.", encoding="utf-8")
    articles = {article.id: article for article in load_articles([folder])}
    assert set(articles) == {"harbour-strike", "cafe", "brief"}
    harbour = articles["harbour-strike"]
    assert harbour.path == str(folder / HARBOUR.file)
    assert (harbour.title, harbour.date, harbour.source, harbour.url) == (
        HARBOUR.title,
        HARBOUR.date,
        HARBOUR.site,
        HARBOUR.url,
    )
    assert harbour.text == "\n\n".join(HARBOUR.paragraphs)
    assert articles["cafe"].text.startswith("Café Müller on the Lendkai")


def test_an_html_file_without_article_text_is_skipped_with_one_line(tmp_path: Path) -> None:
    shutil.copy(PAGES / "app-shell.html", tmp_path / "app-shell.html")
    (tmp_path / "brief.txt").write_text("The ferry runs late today.", encoding="utf-8")
    said: list[str] = []
    articles = load_articles([tmp_path], on_skip=said.append)
    assert [article.id for article in articles] == ["brief"]
    assert said == [f"skipped {tmp_path / 'app-shell.html'}: no article text found in the page"]
    with pytest.raises(ArticleError, match=r"app-shell\.html: no article text found in the page$"):
        load_articles([tmp_path / "app-shell.html"])


def test_a_large_html_file_is_refused_like_any_article(tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    shutil.copy(PAGES / HARBOUR.file, path)
    with pytest.raises(ArticleError, match="over the limit"):
        load_articles([path], max_bytes=1000)


def test_reading_text_articles_does_not_import_trafilatura(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("The ferry runs late today.", encoding="utf-8")
    script = (
        "import sys; from index.articles import load_articles; "
        f"load_articles([{str(tmp_path)!r}]); "
        "heavy = ('trafilatura', 'lxml', 'htmldate', 'charset_normalizer'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    assert done.stdout.strip() == "[]"
