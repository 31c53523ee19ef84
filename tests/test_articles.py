"""Reading article files: metadata, ids and the errors a user can meet."""

from __future__ import annotations

import re
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


def test_bad_files_in_a_folder_are_skipped_with_one_message_each(tmp_path: Path) -> None:
    """One bad file must not stop a folder of news from being read (hardening item 5, 14, 15)."""
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "good.txt").write_text("Title: Good\n\nThe budget passed on Monday.", encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "meta-only.md").write_text("Title: Nothing else\n", encoding="utf-8")
    (folder / "nul.txt").write_bytes(b"\0" * 64)
    (folder / "utf16.txt").write_text("A story in UTF-16.", encoding="utf-16")
    (folder / "latin1.txt").write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    (folder / "huge.txt").write_text("word " * 400, encoding="utf-8")
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0:root:/root:/bin/bash", encoding="utf-8")
    (folder / "link.txt").symlink_to(outside)
    said: list[str] = []
    articles = load_articles([folder], max_bytes=1000, on_skip=said.append)
    assert [a.title for a in articles] == ["Good"]
    assert len(said) == 7 and all(line.startswith(f"skipped {folder}/") and "\n" not in line for line in said)
    # "skipped <the file>: <why>", the file's name ending where the colon stands.
    assert all(re.fullmatch(r"skipped \S+\.(txt|md): \S.*", line) for line in said), said
    reasons = " | ".join(said)
    for expected in ("has no text", "NUL bytes", "UTF-16", "not UTF-8", "over the limit", "links outside"):
        assert expected in reasons, expected
    # Named by itself, a link is the user's choice and is read.
    assert load_articles([folder / "link.txt"])[0].text.startswith("root:x")


def test_every_file_bad_is_one_error_naming_the_first(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"\0\0")
    (tmp_path / "b.txt").write_text("", encoding="utf-8")
    with pytest.raises(ArticleError, match=r"a\.txt: it holds NUL bytes.*\(and 1 more files skipped\)"):
        load_articles([tmp_path])


def test_a_byte_order_mark_and_terminal_escapes_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(
        "\ufeffTitle: Storm \x1b]0;owned\x07hits\n\nThe storm\x1b[2J hit the coast.\x9b31m".encode()
    )
    [article] = load_articles([path])
    assert article.title == "Storm ]0;ownedhits"
    assert article.text == "The storm[2J hit the coast.31m"
    assert not any(ord(c) < 32 and c not in "\n\t" for c in article.title + article.text)
