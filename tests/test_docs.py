"""The README and docs/: every relative link and picture resolves to a file in the repository (and a
link's #anchor to a heading of the page it names), the README stays a front door of at most 12 KB,
and docs/configuration.md's tables are what config.example.toml says.

Links are read with markdown-it-py (CommonMark, as GitHub renders), so a link inside a code block,
inline code or an HTML comment is not taken for one; anchors are made as GitHub makes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from project_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
README_LIMIT = 12 * 1024
_MARKDOWN = MarkdownIt("commonmark").enable("table")


def _inline_tokens(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        if token.children:
            yield from _inline_tokens(token.children)
        yield token


def links(text: str) -> list[str]:
    """Every link and picture target of a Markdown page, as written."""
    targets = []
    for token in _inline_tokens(_MARKDOWN.parse(text)):
        if token.type == "link_open":
            targets.append(str(token.attrs["href"]))
        elif token.type == "image":
            targets.append(str(token.attrs["src"]))
    return targets


def anchors(text: str) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation but `-` and `_`
    dropped, spaces made hyphens, a repeated one numbered (`-1`, `-2`)."""
    seen: dict[str, int] = {}
    made = set()
    tokens = _MARKDOWN.parse(text)
    for opening, inline in pairwise(tokens):
        if opening.type != "heading_open":
            continue
        parts = inline.children or []
        words = "".join(child.content for child in parts if child.type in ("text", "code_inline"))
        slug = re.sub(r"[^\w\- ]", "", words.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        made.add(slug if count == 0 else f"{slug}-{count}")
    return made


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """The page's relative links that lead nowhere: a missing file, one outside the repository, or
    an #anchor that names no heading of the Markdown page it points at. `text` stands in for the
    page's own."""
    broken = []
    text = page.read_text(encoding="utf-8") if text is None else text
    for target in links(text):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:  # http(s), mailto: the web is not checked here
            continue
        path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(f"{target}: no such file")
        elif (
            parts.fragment
            and path.suffix == ".md"
            and parts.fragment not in anchors(path.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target}: no heading #{parts.fragment} in {path.relative_to(ROOT)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checks_catch_a_broken_link_and_anchor() -> None:
    text = "See [a](missing.md), [b](usage.md#no-such-heading), ![c](nowhere.png), [d](../../etc/hosts),"
    text += " [e](#conversations), [f](../README.md#set-up-two-commands).\n"
    text += "`[not a link](missing.md)` and <!-- [hidden](missing.md) -->\n\n```\n[code](missing.md)\n```\n"
    assert len(links(text)) == 6
    broken = broken_links(ROOT / "docs" / "usage.md", text)  # as if written in docs/usage.md
    assert [line.split(":")[0] for line in broken] == [
        "missing.md",
        "usage.md#no-such-heading",
        "nowhere.png",
        "../../etc/hosts",
    ]
    assert anchors("# The `--json` object\n## Set-up: two commands\n## Set-up: two commands\n") == {
        "the---json-object",
        "set-up-two-commands",
        "set-up-two-commands-1",
    }


def test_every_docs_page_is_reached_from_the_readme() -> None:
    readme = set(links((ROOT / "README.md").read_text(encoding="utf-8")))
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, page.name


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= README_LIMIT, f"README.md is {len(readme):,} bytes; move detail into docs/"


def test_configuration_doc_is_what_the_example_says() -> None:
    config_docs = load_script("config_docs")
    assert config_docs.main(["--check"]) == 0, "run: .venv/bin/python scripts/config_docs.py"
    keys = config_docs.read_keys((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    assert {key.dotted for key in keys} >= {"articles", "search.top_k", "telegram.admin_ids"}
    assert all(key.description for key in keys), [key.dotted for key in keys if not key.description]


def test_a_changed_default_is_caught() -> None:
    config_docs = load_script("config_docs")
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    changed = example.replace("top_k = 3", "top_k = 4")
    assert config_docs.current_doc(doc, config_docs.read_keys(changed)) != doc
    assert config_docs.current_doc(doc, config_docs.read_keys(example)) == doc
