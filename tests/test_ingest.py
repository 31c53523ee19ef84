"""Articles from links, feeds and files: saved once each, indexed by what changed, answered at once.

Everything runs for real: pages and feeds come over HTTP from the local news site (tests/news_site.py),
articles are files in a temporary folder, the index is built with the real model, and `articlebot`
runs as a process where a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from news_site import FEED, MARKET, STORM, NewsSite, serve_stories

from bot.config import Config
from bot.engine import AnswerEngine
from index.articles import load_articles
from index.embed import SentenceTransformerEmbedder
from index.manifest import MANIFEST, Manifest
from index.web.ingest import ADDED, FAILED, LEDGER, REMOVED, UNCHANGED, UPDATED, ArticleFolder

ARTICLEBOT = Path(sys.executable).parent / "articlebot"


@pytest.fixture
def site(news_site: NewsSite) -> NewsSite:
    """The local news site serving the two stories and their feed (tests/news_site.py)."""
    return serve_stories(news_site)


def folder_state(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


# The folder: once each, updates, feeds ---------------------------------------------------------


def test_a_page_is_saved_once_with_its_metadata_as_front_matter(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "news"
    with ArticleFolder(folder, allow_private=True) as articles:
        first = articles.add([site.url("/news/storm")])
        again = articles.add([site.url("/news/storm"), site.url("/news/storm#comments")])
    assert [o.status for o in first] == [ADDED]
    assert [o.status for o in again] == [UNCHANGED, UNCHANGED]
    [saved] = [path for path in folder.iterdir() if path.suffix == ".txt"]
    head, _, body = saved.read_text(encoding="utf-8").partition("\n\n")
    assert head.splitlines() == [
        "Title: Storm closes harbour",
        "Date: 2024-05-02",
        "Source: Coast Courier",
        f"URL: {site.url('/news/storm')}",
    ]
    assert "Harbour master Dalia Fenwick said" in body and "Copyright" not in body
    [article] = load_articles([folder])
    assert (article.title, article.date, article.url) == (
        "Storm closes harbour",
        "2024-05-02",
        site.url("/news/storm"),
    )


def test_a_changed_page_updates_its_article_and_the_same_text_elsewhere_adds_nothing(
    site, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "news"
    with ArticleFolder(folder, allow_private=True) as articles:
        articles.add([site.url("/news/storm")])
        site.route("/mirror/storm", STORM.replace("{base}", "https://mirror.example").encode())
        [copy] = articles.add([site.url("/mirror/storm")])
        site.route(
            "/news/storm",
            STORM.replace("on Thursday", "on Saturday"),
        )
        [changed] = articles.add([site.url("/news/storm")])
    assert copy.status == UNCHANGED and "the same text" in copy.detail
    assert changed.status == UPDATED
    texts = [p.read_text(encoding="utf-8") for p in folder.glob("*.txt")]
    assert len(texts) == 1 and "sail again on Saturday" in texts[0]


def test_a_feed_adds_each_entry_and_a_poll_asks_only_for_what_changed(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "news"
    with ArticleFolder(folder, allow_private=True) as articles:
        outcomes = articles.poll([site.url("/feed.xml")], keep=10)
        assert sorted((o.status, o.title) for o in outcomes) == [
            (ADDED, "Market reopens after fire"),
            (ADDED, "Storm closes harbour"),
        ]
        before = len(site.requests)
        assert articles.poll([site.url("/feed.xml")], keep=10) == []
    # One conditional request for the feed, answered 304; no entry fetched again.
    asked = site.requests[before:]
    assert [r.path for r in asked] == ["/feed.xml"]
    assert asked[0].headers.get("if-none-match") == '"v1"'
    assert len(list(folder.glob("*.txt"))) == 2


def test_a_poll_keeps_the_newest_feed_articles_and_never_one_added_by_hand(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "news"
    (folder).mkdir()
    with ArticleFolder(folder, allow_private=True) as articles:
        [own] = articles.add([site.url("/news/storm")])  # by hand: stays
        outcomes = articles.poll([site.url("/feed.xml")], keep=1)
    statuses = sorted((o.status, o.title) for o in outcomes)
    # The storm story is there already (added by hand); the market story is the one kept from the feed.
    assert statuses == [(ADDED, "Market reopens after fire")]
    later = MARKET.replace("Market reopens after fire", "Ferry sails again").replace(
        "2024-05-03", "2024-05-04"
    )
    site.route("/news/later", later.replace("covered market", "old ferry"))
    feed = FEED.replace(
        "<item>",
        f"<item><title>Ferry sails again</title><link>{site.url('/news/later')}</link>"
        "<pubDate>Sat, 04 May 2024 09:00:00 GMT</pubDate></item><item>",
        1,
    )
    site.route("/feed.xml", feed, headers={"Content-Type": "application/rss+xml", "ETag": '"v2"'})
    with ArticleFolder(folder, allow_private=True) as articles:
        outcomes = articles.poll([site.url("/feed.xml")], keep=1)
    assert sorted((o.status, o.title) for o in outcomes) == [
        (ADDED, "Ferry sails again"),
        (REMOVED, "Market reopens after fire"),
    ]
    titles = sorted(article.title for article in load_articles([folder]))
    assert titles == ["Ferry sails again", "Storm closes harbour"]
    assert own.path is not None and own.path.exists()


def test_bad_sources_are_one_line_each_and_leave_the_folder_as_it_was(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "news"
    with ArticleFolder(folder, allow_private=True) as articles:
        articles.add([site.url("/news/storm")])
    before = folder_state(folder)
    site.route("/report.pdf", b"%PDF-1.7 not a page", headers={"Content-Type": "application/pdf"})
    site.route(
        "/broken.xml", b"<rss><channel><item><title>cut", headers={"Content-Type": "application/rss+xml"}
    )
    sources = [
        site.url("/missing"),
        site.url("/report.pdf"),
        site.url("/broken.xml"),
        "http://127.0.0.1:9/closed-port",
        str(tmp_path / "nowhere.txt"),
        "ftp://example.org/story",
    ]
    with ArticleFolder(folder, allow_private=True) as articles:
        outcomes = articles.add(sources)
    assert [o.status for o in outcomes] == [FAILED] * len(sources)
    for outcome in outcomes:
        line = outcome.line()
        assert "\n" not in line and line.startswith(f"failed: {outcome.source}: "), line
        assert "Traceback" not in line
    assert "404" in outcomes[0].detail and "application/pdf" in outcomes[1].detail
    assert folder_state(folder) == before


def test_private_addresses_are_refused_unless_allowed(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "news"
    before = len(site.requests)
    with ArticleFolder(folder) as articles:
        [refused] = articles.add([site.url("/news/storm")])
    assert refused.failed and ("private" in refused.detail or "loopback" in refused.detail), refused.detail
    assert len(site.requests) == before  # refused before any connection
    assert not folder.exists() or not list(folder.glob("*.txt"))


def test_an_html_or_text_file_is_added_like_a_page(tmp_path: Path) -> None:
    page = tmp_path / "saved.html"
    page.write_text(MARKET, encoding="utf-8")
    note = tmp_path / "note.md"
    note.write_text("# Bridge opens\n\nThe new bridge over the Ellis opened on Sunday.", encoding="utf-8")
    with ArticleFolder(tmp_path / "news") as articles:
        outcomes = articles.add([str(page), str(note), str(note)])
    assert [(o.status, o.title) for o in outcomes] == [
        (ADDED, "Market reopens after fire"),
        (ADDED, "Bridge opens"),
        (UNCHANGED, "Bridge opens"),
    ]
    assert (tmp_path / "news" / LEDGER).is_file()


# Through the engine and the command line --------------------------------------------------------


@pytest.mark.slow
def test_an_added_page_is_answered_and_only_it_is_embedded(
    site,
    news_config: Config,
    embedder: SentenceTransformerEmbedder,  # type: ignore[no-untyped-def]
) -> None:
    engine = AnswerEngine(news_config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    ingest = engine.add([site.url("/news/storm")])
    assert [o.status for o in ingest.outcomes] == [ADDED]
    assert ingest.report is not None
    assert (ingest.report.articles, ingest.report.embedded_articles) == (2, 1)
    answer = engine.ask("Who is the harbour master?")
    assert answer.answered and answer.sentence is not None and answer.sentence.short is not None
    assert "Dalia Fenwick" in answer.sentence.short.text
    assert answer.sentence is not None and answer.sentence.title == "Storm closes harbour"
    # Removing it takes it out of the index again.
    article_id = answer.sentence.sentence.article_id
    removed = engine.remove_article(article_id)
    assert [o.status for o in removed.outcomes] == [REMOVED]
    assert article_id not in engine.index.articles and len(engine.index.articles) == 1


@pytest.mark.slow
def test_a_running_engine_answers_from_an_index_another_process_updated(
    site,
    news_config: Config,
    embedder: SentenceTransformerEmbedder,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The bot keeps running while `articlebot add` runs beside it: the next question sees the new
    article, and no question sees a half-built index."""
    config_file = tmp_path / "articlebot.toml"
    config_file.write_text(
        f'articles = ["{news_config.articles[0]}"]\nindex_dir = "{news_config.index_dir}"\n'
        "[ingest]\nallow_private = true\n",
        encoding="utf-8",
    )
    changes: list[int] = []
    running = AnswerEngine(news_config, embedder=embedder, status=lambda message: None)
    running.on_reload = lambda index: changes.append(len(index.articles))
    running.ensure_index()
    assert not running.ask("Who is the harbour master?").answered
    result = subprocess.run(
        [str(ARTICLEBOT), "--config", str(config_file), "add", site.url("/news/storm")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("added: Storm closes harbour (2024-05-02) <- http")
    assert "index updated: 2 articles" in result.stdout
    started = time.perf_counter()
    answer = running.ask("Who is the harbour master?")
    assert answer.answered and answer.sentence is not None and answer.sentence.short is not None
    assert "Dalia Fenwick" in answer.sentence.short.text
    assert changes == [2]
    assert time.perf_counter() - started < 10  # generous: the figure is in the bench table


@pytest.mark.slow
def test_add_beside_the_bundled_article_saves_to_the_users_folder(site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With no articles configured, `add` saves into ~/.local/share/articlebot/articles and the bot
    then reads that folder with the bundled article."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    added = subprocess.run(
        [str(ARTICLEBOT), "add", "--allow-private", site.url("/news/market"), site.url("/missing")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert added.returncode == 1  # one source failed
    assert added.stdout.splitlines()[0].startswith("added: Market reopens after fire (2024-05-03)")
    assert added.stderr.strip().splitlines()[-1].startswith(f"failed: {site.url('/missing')}: ")
    saved = list((tmp_path / "data" / "articlebot" / "articles").glob("*.txt"))
    assert len(saved) == 1
    asked = subprocess.run(
        [str(ARTICLEBOT), "ask", "Who built the new roof of the market?"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert "Joss Amberley**" in asked.stdout.split("\n")[0]
    manifest = Manifest.read(tmp_path / "cache" / "articlebot" / "index")
    assert len(manifest.articles) == 2  # the bundled article and the added one


@pytest.mark.slow
def test_a_failed_add_leaves_the_index_as_it_was(
    site, news_config: Config, embedder: SentenceTransformerEmbedder
) -> None:  # type: ignore[no-untyped-def]
    engine = AnswerEngine(news_config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    manifest = (news_config.index_dir / MANIFEST).read_bytes()
    ingest = engine.add([site.url("/missing")])
    assert ingest.failed and ingest.report is None
    assert (news_config.index_dir / MANIFEST).read_bytes() == manifest


@pytest.mark.slow
def test_follow_once_adds_the_feeds_entries_and_says_so(site, news_config: Config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config_file = tmp_path / "articlebot.toml"
    config_file.write_text(
        f'articles = ["{news_config.articles[0]}"]\nindex_dir = "{news_config.index_dir}"\n'
        f'feeds = ["{site.url("/feed.xml")}", "{site.url("/missing-feed")}"]\n'
        "[ingest]\nallow_private = true\nmax_articles = 5\n",
        encoding="utf-8",
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [str(ARTICLEBOT), "--config", str(config_file), "follow", "--once"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # the second feed is missing
    added = sorted(line.split(" ", 2)[2] for line in result.stdout.splitlines() if " added: " in line)
    assert [line.split(" <- ")[0] for line in added] == [
        "added: Market reopens after fire (2024-05-03)",
        "added: Storm closes harbour (2024-05-02)",
    ]
    assert "index updated: 3 articles" in result.stdout
    [failure] = [line for line in result.stderr.splitlines() if " failed: " in line]
    assert failure.endswith(f"failed: {site.url('/missing-feed')}: it answered 404 Not Found")
    no_feeds = subprocess.run(
        [str(ARTICLEBOT), "--index-dir", str(tmp_path / "other"), "follow"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert no_feeds.returncode == 1
    assert no_feeds.stderr.strip() == (
        'articlebot: error: no feeds to follow: list them in the config, e.g. feeds = ["https://example.org/rss"]'
    )


@pytest.mark.slow
def test_two_adds_at_once_both_land_in_the_folder_and_the_index(
    site, news_config: Config, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A feed poll and an admin's link at the same moment: two processes, one folder, one index."""
    config_file = tmp_path / "articlebot.toml"
    config_file.write_text(
        f'articles = ["{news_config.articles[0]}"]\nindex_dir = "{news_config.index_dir}"\n'
        "[ingest]\nallow_private = true\n",
        encoding="utf-8",
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    adds = [
        subprocess.Popen(
            [str(ARTICLEBOT), "--config", str(config_file), "add", site.url(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for path in ("/news/storm", "/news/market")
    ]
    for process in adds:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert out.startswith("added: ")
    manifest = Manifest.read(news_config.index_dir)
    titles = sorted(article.title for article in load_articles([news_config.articles[0]]))
    assert titles == ["Bridge opens", "Market reopens after fire", "Storm closes harbour"]
    assert len(manifest.articles) == 3
    named = {record.name for record in manifest.segments}
    assert {p.name for p in news_config.index_dir.glob("seg-*")} == named
