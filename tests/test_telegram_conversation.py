"""Conversations in Telegram, end to end: the real Application over real HTTP against the fake Bot
API, with the real model and index."""

from __future__ import annotations

from typing import Any

import pytest
from fake_bot_api import Call, FakeBotApi, parse_telegram_html
from telegram_harness import replies_to, running_bot, settle

from bot.engine import AnswerEngine
from bot.telegram.keyboards import ALL_ARTICLES

pytestmark = pytest.mark.slow

MENTION = "@articlebot_test_bot"


def text(call: Call) -> str:
    return parse_telegram_html(call.params["text"])


def buttons(call: Call) -> dict[str, str]:
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


async def ask(fake: FakeBotApi, question: str, **where: Any) -> Call:
    """Send a message and wait for the bot's reply to it."""
    message = fake.inject_message(question, **where)
    [reply] = await fake.wait_for("sendMessage", replies_to(message), timeout=60)
    return reply


async def test_a_private_chat_is_one_conversation(fake: FakeBotApi, engine: AnswerEngine) -> None:
    async with running_bot(fake, engine) as app:
        first = await ask(fake, "Who mocked the prime minister?")
        position = await ask(fake, "what was his position?")
        dismissed = await ask(fake, "who dismissed him?")
        when = await ask(fake, "when?")
        await settle(fake, app)
    assert "Tiran Khachatrian" in text(first).split("\n\n")[0]
    assert "(read as: What was Tiran Khachatrian's position?)" in text(position)
    assert "first deputy chief of the general staff" in text(position)
    assert "(read as: Who dismissed Tiran Khachatrian?)" in text(dismissed)
    assert "<b>Pashinian</b>" in dismissed.params["text"]
    assert "(read as: When did Pashinian dismiss Tiran Khachatrian?)" in text(when)
    assert "<b>Last week</b>" in when.params["text"]


async def test_two_people_in_a_group_follow_up_on_two_answers_by_replying(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    group = fake.group_chat()
    alice, bob = fake.user(2001, "Alice", "alice"), fake.user(2002, "Bob", "bob")
    async with running_bot(fake, engine) as app:
        fired = await ask(fake, f"{MENTION} who was fired?", user=alice, chat=group)
        refused = await ask(fake, f"{MENTION} who refused to sign the order?", user=bob, chat=group)
        # Each replies to the other's answer: the reply continues that answer, not its own asker's.
        title = await ask(fake, "what is his title?", user=alice, chat=group, reply_to=refused.result)
        position = await ask(fake, "what was his position?", user=bob, chat=group, reply_to=fired.result)
        # Without a reply, Alice's own conversation goes on from her last answer (the title).
        why = await ask(fake, f"{MENTION} why?", user=alice, chat=group)
        await settle(fake, app)
    assert "(read as: What is Armen Sarkisian's title?)" in text(title)
    assert "<b>President</b>" in title.params["text"]
    assert "(read as: What was Onik Gasparian's position?)" in text(position)
    assert "chief of the military’s General Staff" in text(position)
    assert "Armen Sarkisian" in (text(why).split("(read as: ")[1])


async def test_a_reply_to_an_answer_sent_before_a_restart_continues_it(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    async with running_bot(fake, engine):
        fired = await ask(fake, "who was fired?")
    # A new Application: nothing is remembered; the answer message itself says what it answered.
    async with running_bot(fake, engine) as app:
        stored = fake.message(1001, fired.result["message_id"])
        assert any(entity["type"] == "bold" for entity in stored["entities"])
        position = await ask(fake, "what was his position?", reply_to=stored)
        # An answer whose buttons are gone (edited away) is found by its sentence.
        bare = {key: value for key, value in stored.items() if key != "reply_markup"}
        why = await ask(fake, "why?", reply_to=bare)
        await settle(fake, app)
    assert "(read as: What was Onik Gasparian's position?)" in text(position)
    assert "chief of the military’s General Staff" in text(position)
    assert "(read as: Why " in text(why) and "Gasparian" in text(why).split("(read as: ")[1]


async def test_sources_buttons_choose_the_article_to_ask_about(
    fake: FakeBotApi, two_articles: AnswerEngine
) -> None:
    async with running_bot(fake, two_articles) as app:
        listing = await ask(fake, "/sources")
        choices = buttons(listing)
        [super_bowl] = [data for label, data in choices.items() if "Super Bowl 50" in label]
        pressed = fake.inject_callback_query(listing.result, super_bowl)
        [said] = await fake.wait_for("sendMessage", replies_to(listing.result), timeout=60)
        [toast] = await fake.wait_for(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == pressed
        )
        focused = await ask(fake, "who headlined the show?")
        marked = await ask(fake, "/sources")
        everything = fake.inject_callback_query(listing.result, choices[ALL_ARTICLES])
        await fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == everything)
        fired = await ask(fake, "who was fired?")
        await settle(fake, app)
    assert set(choices) >= {ALL_ARTICLES} and len(choices) == 3
    assert all(len(data.encode()) <= 64 for data in choices.values())
    assert "Now answering from “Super Bowl 50” alone" in text(said) and "alone" in toast.params["text"]
    # Answered from Super Bowl 50, and the source line says the answer was sought there alone.
    assert "Coldplay" in text(focused) and "· in focus" in text(focused)
    assert "Super Bowl 50" in next(line for line in text(marked).splitlines() if "in focus" in line)
    assert "Onik Gasparian" in text(fired) and "in focus" not in text(fired)
