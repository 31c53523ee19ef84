"""Reading article files: metadata, ids and the errors a user can meet."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import BUNDLED_ARTICLES
from index.articles import load_articles, parse_article
from index.errors import ArticleError


def test_bundled_article_dateline_becomes_metadata() -> None:
    (article,) = load_articles([BUNDLED_ARTICLES])
    assert article.id == "armenia-2021-03-01"
    assert article.date == "2021-03-01"
    assert article.dateline == "YEREVAN"
    assert article.text.startswith("Armenia has fallen deeper")
    assert "date 2021" not in article.text
    assert article.title.startswith("Armenia has fallen deeper into political turmoil")


def test_front_matter_is_read_and_removed() -> None:
    raw = (
        "Title: Storm hits coast\nDate: 2024-05-02\nSource: Wire\nURL: https://example.org/a\n\nRain fell.\n"
    )
    article = parse_article(raw, path="a.txt", article_id="a")
    assert (article.title, article.date, article.source, article.url) == (
        "Storm hits coast",
        "2024-05-02",
        "Wire",
        "https://example.org/a",
    )
    assert article.text == "Rain fell."


def test_markdown_heading_is_the_title() -> None:
    article = parse_article("# Budget passes\n\nThe vote was close.", path="b.md", article_id="b")
    assert article.title == "Budget passes"
    assert article.text == "The vote was close."


def test_title_falls_back_to_first_sentence() -> None:
    article = parse_article("Rain fell on Monday. Then it stopped.", path="c.txt", article_id="c")
    assert article.title == "Rain fell on Monday."


def test_crlf_and_decomposed_unicode_are_normalised() -> None:
    article = parse_article("Cafe\u0301 opens.\r\n\r\nIt closes.", path="d.txt", article_id="d")
    assert article.text == "Café opens.\n\nIt closes."


def test_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "Same Name.txt").write_text("Text here.", encoding="utf-8")
    (tmp_path / "one" / "other.md").write_text("More text.", encoding="utf-8")
    first = [a.id for a in load_articles([tmp_path])]
    second = [a.id for a in load_articles([tmp_path])]
    assert first == second
    assert len(set(first)) == 3
    assert "other" in first
    assert all(i.startswith("same-name-") for i in first if i != "other")


def test_content_hash_follows_the_text(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("One sentence.", encoding="utf-8")
    before = load_articles([path])[0].content_hash
    path.write_text("Another sentence.", encoding="utf-8")
    assert load_articles([path])[0].content_hash != before


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.txt", "article not found"),
        (lambda d: (d / "empty.txt").write_text("  \n", encoding="utf-8") and d / "empty.txt", "has no text"),
        (
            lambda d: (d / "meta.txt").write_text("Title: X\n", encoding="utf-8") and d / "meta.txt",
            "has no text",
        ),
        (lambda d: (d / "bin.txt").write_bytes(b"\xff\xfe\x00bad") and d / "bin.txt", "not UTF-8"),
        (lambda d: (d / "sub").mkdir() or d / "sub", "holds no .txt or .md"),
    ],
)
def test_bad_articles_get_one_line_messages(tmp_path: Path, setup, message: str) -> None:  # type: ignore[no-untyped-def]
    path = setup(tmp_path)
    with pytest.raises(ArticleError, match=message) as caught:
        load_articles([path])
    assert "\n" not in str(caught.value)
