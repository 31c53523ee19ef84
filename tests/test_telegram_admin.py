"""Admins add and remove articles through the bot; nobody else can make it fetch anything.

The real Application over real HTTP against the fake Bot API (getFile and the file download
included), pages from the local news site, the real model and index.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import pytest
from fake_bot_api import FakeBotApi, parse_telegram_html
from news_site import MARKET, NewsSite, serve_stories
from telegram_harness import replies_to, running_bot

from bot.config import Config
from bot.engine import AnswerEngine
from index.embed import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow

ADMIN = 4242
# Adding embeds the new article and updates the index before the bot replies.
ADD_TIMEOUT = 120


@pytest.fixture
def site(news_site: NewsSite) -> NewsSite:
    return serve_stories(news_site)


@pytest.fixture
def news_engine(news_config: Config, embedder: SentenceTransformerEmbedder) -> AnswerEngine:
    engine = AnswerEngine(news_config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    return engine


async def reply_text(fake: FakeBotApi, message: dict[str, Any], timeout: float = 10) -> str:
    [reply] = await fake.wait_for("sendMessage", replies_to(message), timeout=timeout)
    return parse_telegram_html(reply.params["text"])


async def test_an_admin_adds_a_link_and_the_next_question_is_answered_from_it(
    fake: FakeBotApi,
    news_engine: AnswerEngine,
    site,  # type: ignore[no-untyped-def]
) -> None:
    admin = fake.user(ADMIN, "Noor", "noor")
    async with running_bot(fake, news_engine, admin_ids=(ADMIN,)):
        link = fake.inject_message(site.url("/news/storm"), user=admin)
        added = await reply_text(fake, link, ADD_TIMEOUT)
        question = fake.inject_message("Who is the harbour master?", user=admin)
        answer = await reply_text(fake, question, 30)
        sources = fake.inject_message("/sources", user=admin)
        listing = await reply_text(fake, sources)
    assert re.fullmatch(r"Added: Storm closes harbour \(2024-05-02\), \d+ passages?", added), added
    assert "Dalia Fenwick" in answer.split("\n")[0]
    assert "1. Bridge opens (2024-04-28)" in listing and "Storm closes harbour (2024-05-02)" in listing
    assert "/remove N" in listing


async def test_an_admin_adds_a_document_and_removes_an_article(
    fake: FakeBotApi, news_engine: AnswerEngine
) -> None:
    admin = fake.user(ADMIN, "Noor", "noor")
    async with running_bot(fake, news_engine, admin_ids=(ADMIN,)):
        sent = fake.inject_message(
            user=admin,
            document=fake.document(MARKET.encode("utf-8"), "market.html"),
            caption="for the archive",
        )
        added = await reply_text(fake, sent, ADD_TIMEOUT)
        question = fake.inject_message("Who built the new roof?", user=admin)
        answer = await reply_text(fake, question, 30)
        remove = fake.inject_message("/remove 1", user=admin)
        removed = await reply_text(fake, remove, ADD_TIMEOUT)
        wrong = fake.inject_message("/remove 7", user=admin)
        refused = await reply_text(fake, wrong)
    assert [c.params["file_id"] for c in fake.successful("getFile")] == ["doc1"]
    assert re.fullmatch(r"Added: Market reopens after fire \(2024-05-03\), \d+ passages?", added), added
    assert "Joss Amberley" in answer.split("\n")[0]
    assert removed == "Removed: Bridge opens (2024-04-28)"
    assert [a.title for a in news_engine.index.articles.values()] == ["Market reopens after fire"]
    assert refused == "Say which article: /remove N, with N from 1 to 1 as /sources lists them."


async def test_anyone_elses_link_is_a_question_and_nothing_is_fetched(
    fake: FakeBotApi,
    news_engine: AnswerEngine,
    site,  # type: ignore[no-untyped-def]
) -> None:
    stranger = fake.user(777, "Eve", "eve")
    admin = fake.user(ADMIN, "Noor", "noor")
    group = fake.group_chat()
    async with running_bot(fake, news_engine, admin_ids=(ADMIN,)):
        link = fake.inject_message(site.url("/news/storm"), user=stranger)
        as_question = await reply_text(fake, link, 30)
        document = fake.inject_message(user=stranger, document=fake.document(MARKET, "market.html"))
        hint = await reply_text(fake, document)
        remove = fake.inject_message("/remove 1", user=stranger)
        unknown = await reply_text(fake, remove)
        # An admin's link in a group is not an order to fetch either.
        in_group = fake.inject_message(
            f"@articlebot_test_bot {site.url('/news/market')}", user=admin, chat=group
        )
        await reply_text(fake, in_group, 30)
    assert site.requests == []
    assert fake.successful("getFile") == []
    assert not as_question.startswith("Added")
    assert hint.startswith("I read text only")
    assert unknown.startswith("I don't know that command")
    assert len(news_engine.index.articles) == 1


async def test_the_running_bot_polls_its_feeds(
    fake: FakeBotApi,
    news_engine: AnswerEngine,
    site,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from bot.telegram import app

    monkeypatch.setattr(app, "FIRST_POLL_SECONDS", 0.1)
    news_engine.config = dataclasses.replace(news_engine.config, feeds=(site.url("/feed.xml"),))
    async with running_bot(fake, news_engine):
        for _ in range(ADD_TIMEOUT * 10):
            if len(news_engine.index.articles) == 3:
                break
            await asyncio.sleep(0.1)
        question = fake.inject_message("Who built the new roof of the market?")
        answer = await reply_text(fake, question, 30)
    assert sorted(a.title for a in news_engine.index.articles.values()) == [
        "Bridge opens",
        "Market reopens after fire",
        "Storm closes harbour",
    ]
    assert "Joss Amberley" in answer.split("\n")[0]
