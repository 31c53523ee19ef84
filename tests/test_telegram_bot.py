"""The Telegram bot end to end: the real Application, over real HTTP, against the strict fake Bot API.

Every reply below was accepted by the fake server, which refuses what Telegram refuses
(invalid HTML, over-long text, bad callback data, replies to unknown messages, no-op edits);
a test that waits for an accepted `sendMessage` therefore also checks the message is valid.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from fake_bot_api import Call, FakeBotApi, parse_telegram_html
from hostile_input import LONG_QUESTIONS
from telegram_harness import replies_to, running_bot, settle

from bot.config import Config, TelegramSettings
from bot.engine import AnswerEngine
from bot.telegram.app import FAIR_SHARE, build_application, webhook_arguments
from bot.telegram.handlers import APOLOGY, NOT_TEXT, REFUSAL
from bot.telegram.limits import RequestLimiter
from bot.telegram.services import SERVICES
from index.embed import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow  # the real model (loaded once per session)

QUESTION = "who was fired?"


def buttons(call: Call) -> dict[str, str]:
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


# Commands and answers ---------------------------------------------------------------------------


async def test_start_help_and_sources_and_the_command_menu(fake: FakeBotApi, engine: AnswerEngine) -> None:
    async with running_bot(fake, engine):
        start = fake.inject_message("/start")
        [greeting] = await fake.wait_for("sendMessage", replies_to(start))
        help_ = fake.inject_message("/help")
        [how] = await fake.wait_for("sendMessage", replies_to(help_))
        sources = fake.inject_message("/sources")
        [listing] = await fake.wait_for("sendMessage", replies_to(sources))
    greeting_text = parse_telegram_html(greeting.params["text"])
    assert (
        "Armenia has fallen deeper into political turmoil" in greeting_text
        and "(2021-03-01)" in greeting_text
    )
    assert greeting_text.count("\n• ") == 4  # one article, three example questions
    assert "Who was fired?" in greeting_text
    how_text = parse_telegram_html(how.params["text"])
    assert "More context" in how_text and "Other passages" in how_text and "@articlebot_test_bot" in how_text
    passages = len(engine.index.passages)
    assert f"(2021-03-01) — {passages} passages" in parse_telegram_html(listing.params["text"])
    assert [c["command"] for c in fake.commands] == ["start", "help", "sources", "ask"]


async def test_who_was_fired_is_answered_with_the_gasparian_sentence(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    async with running_bot(fake, engine):
        question = fake.inject_message(QUESTION)
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
    [typing] = fake.successful("sendChatAction")
    assert typing.params == {"chat_id": 1001, "action": "typing"} and typing.at < reply.at
    text = reply.params["text"]
    assert reply.params["parse_mode"] == "HTML"
    first_line, rest = text.split("\n\n", 1)
    # The answer sentence, its short answer in bold.
    assert first_line.count("<b>") == 1 and "<b>Onik Gasparian</b>" in first_line
    sentence = first_line.replace("<b>", "").replace("</b>", "")
    quote, source = rest.rsplit("\n", 1)
    assert quote.startswith("<blockquote>") and quote.endswith("</blockquote>")
    assert f"<b>{sentence}</b>" in quote  # the answer sentence is marked inside the quoted passage
    assert source.startswith("<i>") and source.endswith("· 2021-03-01 · paragraph 7</i>")
    assert set(buttons(reply)) == {"More context", "Other passages"}
    assert all(len(data.encode()) < 64 for data in buttons(reply).values())


async def test_questions_asked_at_once_each_get_their_own_answer(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    """Answered side by side, their passages read together (bot/read_batch.py): no answer is
    given to another's question."""
    expected = {
        "who was fired?": "Onik Gasparian",
        "who was dismissed last week?": "Tiran Khachatrian",
        "how many days did the fighting last?": "44 days",
        "who refused to sign the order?": "refused to sign",
        "What is the capital of France?": None,
    }
    async with running_bot(fake, engine) as app:
        gatherer = app.bot_data[SERVICES].engine.reader._gatherer
        assert gatherer is not None
        asked = {
            question: fake.inject_message(question, user=fake.user(30_000 + n, f"Asker{n}", None))
            for n, question in enumerate(expected)
        }
        for question, message in asked.items():
            [reply] = await fake.wait_for("sendMessage", replies_to(message))
            visible = parse_telegram_html(reply.params["text"])
            phrase = expected[question]
            if phrase is None:
                assert visible.startswith("I couldn't find that in the article.")
            else:
                assert phrase in visible.split("\n\n", 1)[0], (question, visible)
        assert gatherer.requests >= len(expected)
    assert engine.reader._gatherer is None  # stopped with the bot


async def test_no_answer_shows_the_closest_passage_labelled_as_such(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    async with running_bot(fake, engine):
        question = fake.inject_message("What is the capital of France?")
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
    visible = parse_telegram_html(reply.params["text"])
    assert visible.startswith("I couldn't find that in the article.\n\nClosest match:\n")
    assert not reply.params["text"].startswith("<b>")
    assert "· 2021-03-01 · paragraph" in visible


async def test_user_text_is_escaped_and_odd_or_long_questions_get_one_line(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    async with running_bot(fake, engine) as app:
        tagged = fake.inject_message("<b>who</b> was fired? & co")
        [answer] = await fake.wait_for("sendMessage", replies_to(tagged))
        punctuation = fake.inject_message("???")
        [hint] = await fake.wait_for("sendMessage", replies_to(punctuation))
        long = fake.inject_message("why " * 300)
        [refusal] = await fake.wait_for("sendMessage", replies_to(long))
        await settle(fake, app)
    # Answered or not (the tags and "& co" weigh on retrieval), the reply is valid HTML that
    # the fake accepted, and the asker's markup never became Telegram markup.
    assert "<b>who</b>" not in answer.params["text"]
    assert parse_telegram_html(answer.params["text"]).count("·") >= 2  # a quoted passage with its source
    assert parse_telegram_html(hint.params["text"]).startswith("Please ask a question about the article")
    assert parse_telegram_html(refusal.params["text"]) == (
        "Sorry, that question is 1,199 characters long; please ask in at most 1,000."
    )
    assert len(fake.successful("sendMessage")) == 3


async def test_long_questions_in_any_script_are_answered_without_an_error(
    fake: FakeBotApi, engine: AnswerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(fake, engine) as app:
        asked = [fake.inject_message(question) for question in LONG_QUESTIONS]
        replies = [(await fake.wait_for("sendMessage", replies_to(message)))[0] for message in asked]
        await settle(fake, app)
    for reply in replies:
        text = parse_telegram_html(reply.params["text"])
        assert text != APOLOGY and "· 2021-03-01 · paragraph" in text  # a quoted passage
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_stickers_photos_and_voice_get_a_hint(fake: FakeBotApi, engine: AnswerEngine) -> None:
    sticker = {"file_id": "s1", "file_unique_id": "u1", "type": "regular", "width": 512, "height": 512,
               "is_animated": False, "is_video": False}  # fmt: skip
    photo = [{"file_id": "p1", "file_unique_id": "u2", "width": 90, "height": 90}]
    voice = {"file_id": "v1", "file_unique_id": "u3", "duration": 2}
    async with running_bot(fake, engine):
        sent = [
            fake.inject_message(sticker=sticker),
            fake.inject_message(photo=photo),
            fake.inject_message(voice=voice),
        ]
        for message in sent:
            [hint] = await fake.wait_for("sendMessage", replies_to(message))
            assert parse_telegram_html(hint.params["text"]) == NOT_TEXT
    assert not fake.successful("sendChatAction")


# Buttons ----------------------------------------------------------------------------------------


async def test_both_buttons_work_after_a_restart(fake: FakeBotApi, engine: AnswerEngine) -> None:
    async with running_bot(fake, engine):
        question = fake.inject_message(QUESTION)
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
    answer = reply.result
    data = buttons(reply)

    # A new Application: nothing survives but what the buttons carry.
    async with running_bot(fake, engine) as app:
        more = fake.inject_callback_query(fake.message(1001, answer["message_id"]), data["More context"])
        [edit] = await fake.wait_for("editMessageText")
        await fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == more)
        other = fake.inject_callback_query(fake.message(1001, answer["message_id"]), data["Other passages"])
        [passages] = await fake.wait_for("sendMessage", replies_to(answer))
        await fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == other)
        # A second press of an old "More context" changes nothing: Telegram would refuse the
        # edit as not modified; the bot shrugs that off and still answers the query.
        again = fake.inject_callback_query(answer, data["More context"])
        await fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == again)
        await settle(fake, app)

    context = parse_telegram_html(edit.params["text"])
    assert edit.params["message_id"] == answer["message_id"]
    assert "Onik Gasparian" in context.split("\n")[0]
    # The passage's paragraphs and one on either side.
    lead = engine.ask(QUESTION).passages[0]
    last = engine.index.sentences[engine.index.sentence_rows(lead.passage)[-1]].paragraph
    first, last = max(1, lead.paragraph - 1), min(lead.paragraph_count, last + 1)
    assert f"paragraphs {first}–{last}" in context
    assert "Last week, the discontent spilled over" in context
    assert buttons(edit) == {"Other passages": data["Other passages"]}
    listing = passages.params["text"]
    others = engine.ask(QUESTION).passages[1:]
    assert listing.startswith("<b>Other passages</b>") and listing.count("<blockquote>") == len(others) > 0
    assert all(html.escape(p.text) in listing for p in others)
    failed_edits = [c for c in fake.calls if c.method == "editMessageText" and not c.ok]
    assert len(failed_edits) == 1 and "not modified" in failed_edits[0].result["description"]
    assert not [c for c in fake.calls if c.method == "sendMessage" and APOLOGY in c.params.get("text", "")]


async def test_a_forged_button_is_answered_quietly(
    fake: FakeBotApi, engine: AnswerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Payloads no button of ours carries (a Unicode digit passes str.isdigit) log no traceback."""
    async with running_bot(fake, engine) as app:
        question = fake.inject_message(QUESTION)
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
        ref = buttons(reply)["More context"].split(":")[1]
        for data in (f"ctx:{ref}:²", f"ctx:{ref}:٣", "ctx:zz:1", "oth:..", "x" * 64):
            pressed = fake.inject_callback_query(reply.result, data)
            await fake.wait_for(
                "answerCallbackQuery", lambda c, q=pressed: c.params["callback_query_id"] == q
            )
        await settle(fake, app)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not [c for c in fake.calls if c.method == "editMessageText"]


@pytest.fixture(scope="module")
def long_article_engine(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> AnswerEngine:
    """An article of three long paragraphs, so 'More context' runs past Telegram's 4,096 characters."""
    folder = tmp_path_factory.mktemp("long-article")
    fillers = ["harbour", "ferry", "market", "bridge", "library", "orchard", "railway", "quarry"]
    paragraphs = []
    for p in range(3):
        # Few, long sentences: more than 10,000 characters in all, but little to embed.
        sentences = [
            f"Item {p}-{k}: the {fillers[k % 8]} & the <old> {fillers[(k + p) % 8]} saw traffic on day {k}, "
            f"as the {fillers[(k + 3) % 8]}, the {fillers[(k + 5) % 8]} and the {fillers[(k + 7) % 8]} "
            f"reported a quiet morning, an ordinary afternoon and a calm evening by the water."
            for k in range(18)
        ]
        if p == 1:
            sentences[9] = "The lighthouse keeper Marguerite Okonkwo-Blanc was dismissed by the port council."
        paragraphs.append(" ".join(sentences))
    (folder / "harbour.txt").write_text("Title: Harbour news\nDate: 2024-05-06\n\n" + "\n\n".join(paragraphs))
    config = Config(articles=(folder / "harbour.txt",), index_dir=folder / "index")
    engine = AnswerEngine(config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    return engine


async def test_a_long_context_is_split_with_the_keyboard_on_the_last_part(
    fake: FakeBotApi, long_article_engine: AnswerEngine
) -> None:
    async with running_bot(fake, long_article_engine) as app:
        question = fake.inject_message("Who was dismissed as lighthouse keeper?")
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
        fake.inject_callback_query(reply.result, buttons(reply)["More context"])
        await fake.wait_for("answerCallbackQuery")
        await settle(fake, app)
    assert "Okonkwo-Blanc" in reply.params["text"].split("\n")[0]
    parts = [c for c in fake.successful("sendMessage") if replies_to(reply.result)(c)]
    visible = [parse_telegram_html(part.params["text"]) for part in parts]
    assert len(parts) >= 3 and sum(len(v) for v in visible) > 10_000
    assert all(len(v) <= 4096 for v in visible)
    assert all("reply_markup" not in part.params for part in parts[:-1])
    assert set(buttons(parts[-1])) <= {"Other passages"}
    joined = "".join(visible)
    assert "Item 0-0:" in joined and "Item 2-17:" in joined and "& the <old>" in joined
    assert not fake.successful("editMessageText")  # too long for one message: replied instead


# Groups and inline mode -------------------------------------------------------------------------


async def test_in_groups_only_mentions_replies_and_ask_are_answered(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    group = fake.group_chat()
    alice, bob = fake.user(2001, "Alice", "alice"), fake.user(2002, "Bob", None)
    async with running_bot(fake, engine) as app:
        fake.inject_message("who was fired? anyone?", user=alice, chat=group)
        fake.inject_message("@someone_else who was fired?", user=bob, chat=group)
        fake.inject_message("/ask@other_bot who was fired?", user=bob, chat=group)
        mention = fake.inject_message("@articlebot_test_bot who was fired?", user=alice, chat=group)
        [answer] = await fake.wait_for("sendMessage", replies_to(mention))
        follow_up = fake.inject_message(
            "and who refused to sign the order?", user=bob, chat=group, reply_to=answer.result
        )
        [second] = await fake.wait_for("sendMessage", replies_to(follow_up))
        ask = fake.inject_message("/ask@articlebot_test_bot who was fired?", user=bob, chat=group)
        [third] = await fake.wait_for("sendMessage", replies_to(ask))
        await settle(fake, app)
    assert len(fake.successful("sendMessage")) == 3  # the chatter was ignored
    assert "Onik Gasparian" in answer.params["text"].split("\n")[0]
    assert "Sarkisian" in second.params["text"].split("\n")[0]
    assert third.params["text"].split("\n")[0] == answer.params["text"].split("\n")[0]


async def test_an_inline_query_returns_up_to_five_quoted_answers(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    async with running_bot(fake, engine):
        query_id = fake.inject_inline_query(QUESTION)
        [call] = await fake.wait_for("answerInlineQuery")
    assert call.params["inline_query_id"] == query_id
    assert 0 < call.params["cache_time"] <= 60
    results = call.params["results"]
    assert 1 < len(results) <= 5
    first = results[0]
    answer = engine.ask(QUESTION)
    assert answer.sentence is not None and "Onik Gasparian" in answer.sentence.text
    assert first["title"] == answer.sentence.text
    assert first["description"].startswith(" ".join(answer.passages[0].text.split())[:100])
    message = first["input_message_content"]
    assert message["parse_mode"] == "HTML"
    assert "<b>Onik Gasparian</b>" in message["message_text"].split("\n\n")[0]
    assert len({r["id"] for r in results}) == len(results)


# Limits, failures, access and logs -------------------------------------------------------------


async def test_the_per_user_limit_is_announced_once(fake: FakeBotApi, engine: AnswerEngine) -> None:
    eager, other = fake.user(3001, "Eager", "eager"), fake.user(3002, "Calm", "calm")
    async with running_bot(fake, engine, questions_per_minute=2) as app:
        for _ in range(5):
            fake.inject_message(QUESTION, user=eager)
        fake.inject_message(QUESTION, user=other)
        await settle(fake, app)
    eager_texts = [parse_telegram_html(t) for t in fake.sent_texts(3001)]
    assert len(eager_texts) == 3
    assert sum("Onik Gasparian" in t for t in eager_texts) == 2
    [warning] = [t for t in eager_texts if t.startswith("You're asking faster")]
    assert "2 questions a minute" in warning
    assert len(fake.sent_texts(3002)) == 1


async def test_one_user_pressing_buttons_cannot_stall_another_users_question(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    """Sixty presses of "Other passages" in a group, then someone else's private question.

    Telegram lets a group have about 20 messages a minute, so the presses' replies wait; the fake
    holds the group's messages to keep them waiting until the question is answered. The presses
    used to fill every concurrent update slot, and the question waited 32 s behind them.
    """
    group = fake.group_chat()
    flooder, patient = fake.user(6001, "Flood", "flood"), fake.user(6002, "Patient", "patient")
    async with running_bot(fake, engine) as app:
        asked = fake.inject_message(f"@articlebot_test_bot {QUESTION}", user=flooder, chat=group)
        [answer] = await fake.wait_for("sendMessage", replies_to(asked))
        busy = fake.hold("sendMessage", lambda params: params.get("chat_id") == group["id"])
        try:
            for _ in range(60):
                fake.inject_callback_query(answer.result, buttons(answer)["Other passages"], user=flooder)
            question = fake.inject_message(QUESTION, user=patient)
            [reply] = await fake.wait_for("sendMessage", replies_to(question))
            held_when_answered = busy.waiting
        finally:
            busy.release()
        await settle(fake, app)
    assert "Onik Gasparian" in reply.params["text"].split("\n")[0]
    group_replies = [c for c in fake.successful("sendMessage") if c.params["chat_id"] == group["id"]]
    # Answered while the flood's replies were still waiting, not after them.
    assert held_when_answered > 0 and all(reply.at < c.at for c in group_replies[1:])
    assert busy.most_waiting <= FAIR_SHARE
    # Every press counted against the flooder's 20 a minute (the question was the first): 19 more
    # replies, one notice on the button, the rest ignored.
    assert len(group_replies) == 20
    notices = [c.params["text"] for c in fake.successful("answerCallbackQuery") if "text" in c.params]
    assert len(notices) == 1 and "20 a minute" in notices[0]


async def test_every_kind_of_update_counts_against_the_per_user_limit(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    eager = fake.user(3003, "Eager", "eager")
    async with running_bot(fake, engine, questions_per_minute=3) as app:
        question = fake.inject_message(QUESTION, user=eager)
        [answer] = await fake.wait_for("sendMessage", replies_to(question))
        inline = fake.inject_inline_query(QUESTION, user=eager)
        await fake.wait_for("answerInlineQuery", lambda c: c.params["inline_query_id"] == inline)
        more = fake.inject_callback_query(answer.result, buttons(answer)["More context"], user=eager)
        await fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == more)
        over = fake.inject_callback_query(answer.result, buttons(answer)["Other passages"], user=eager)
        [notice] = await fake.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == over)
        ignored_inline = fake.inject_inline_query("who refused to sign the order?", user=eager)
        fake.inject_message("who refused to sign the order?", user=eager)
        fake.inject_callback_query(answer.result, buttons(answer)["Other passages"], user=eager)
        await settle(fake, app)
    assert "3 a minute" in notice.params["text"] and "seconds" in notice.params["text"]
    assert len(fake.sent_texts(3003)) == 1  # the first answer; no "Other passages", no second answer
    assert len(fake.successful("editMessageText")) == 1
    assert [c.params["inline_query_id"] for c in fake.successful("answerInlineQuery")] == [inline]
    assert ignored_inline not in {
        c.params["callback_query_id"] for c in fake.successful("answerCallbackQuery")
    }
    assert len(fake.successful("answerCallbackQuery")) == 2


def _counting_questions(
    engine: AnswerEngine, monkeypatch: pytest.MonkeyPatch, pause: float = 0.0
) -> list[str]:
    """The questions the engine answers from now on (`ask` answers through `converse`), each
    after `pause` seconds, to slow the answer step."""
    asked: list[str] = []
    real_converse = engine.converse

    def converse(question: str, conversation: Any, top_k: int | None = None) -> Any:
        asked.append(question)
        time.sleep(pause)
        return real_converse(question, conversation, top_k)

    monkeypatch.setattr(engine, "converse", converse)
    return asked


async def test_a_stranger_is_answered_every_press_and_inline_query_but_refused_once_a_minute(
    fake: FakeBotApi, engine: AnswerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A press and an inline query wait for their answer (a spinner in the client): each gets the
    refusal, and no search is run for any of them; messages get one refusal a minute."""
    stranger, friend = fake.user(4003, "Stranger", "stranger"), fake.user(4004, "Friend", "friend")
    async with running_bot(fake, engine) as app:
        open_answer = fake.inject_message(QUESTION, user=stranger)
        [old_answer] = await fake.wait_for("sendMessage", replies_to(open_answer))
    asked = _counting_questions(engine, monkeypatch)
    async with running_bot(fake, engine, allowed_ids=(4004,)) as app:
        for _ in range(5):
            fake.inject_message(QUESTION, user=stranger)
        presses, queries = [], []
        for _ in range(5):
            presses.append(
                fake.inject_callback_query(
                    old_answer.result, buttons(old_answer)["Other passages"], user=stranger
                )
            )
            queries.append(fake.inject_inline_query(QUESTION, user=stranger))
        welcome = fake.inject_message(QUESTION, user=friend)
        await fake.wait_for("sendMessage", replies_to(welcome))
        await settle(fake, app)
        friends_inline = fake.inject_inline_query(QUESTION, user=friend)
        [shared] = await fake.wait_for(
            "answerInlineQuery", lambda c: c.params["inline_query_id"] == friends_inline
        )
    refusals = [t for t in fake.sent_texts(4003) if parse_telegram_html(t) == REFUSAL]
    assert len(refusals) == 1
    pressed = fake.successful("answerCallbackQuery")
    assert sorted(c.params["callback_query_id"] for c in pressed) == sorted(presses)
    assert all(c.params["text"] == REFUSAL for c in pressed)
    inline = [c for c in fake.successful("answerInlineQuery") if c is not shared]
    assert sorted(c.params["inline_query_id"] for c in inline) == sorted(queries)
    for call in inline:
        assert call.params["results"] == [] and call.params["button"]["text"] == REFUSAL
        assert call.params["is_personal"] is True and call.params["cache_time"] == 0
    # The friend's results are Telegram's to cache for the friend alone, never to show the stranger.
    assert shared.params["results"] and shared.params["is_personal"] is True
    # The bot's own warm-up, then the friend's question and inline query: nothing for the stranger.
    assert asked == ["warm up", QUESTION, QUESTION]


async def test_a_stranger_pressing_buttons_in_a_group_gets_the_refusal_as_a_toast(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    """The group is not on the list, its allowed member is: the stranger beside them who presses
    the buttons under their answer is told, and nothing is posted for them."""
    group = fake.group_chat()
    member, stranger = fake.user(4101, "Member", "member"), fake.user(4102, "Stranger", "stranger")
    async with running_bot(fake, engine, allowed_ids=(4101,)) as app:
        asked = fake.inject_message(f"@articlebot_test_bot {QUESTION}", user=member, chat=group)
        [answer] = await fake.wait_for("sendMessage", replies_to(asked))
        more = fake.inject_callback_query(answer.result, buttons(answer)["More context"], user=stranger)
        other = fake.inject_callback_query(answer.result, buttons(answer)["Other passages"], user=stranger)
        await settle(fake, app)
    toasts = {
        c.params["callback_query_id"]: c.params.get("text") for c in fake.successful("answerCallbackQuery")
    }
    assert toasts == {more: REFUSAL, other: REFUSAL}
    assert len(fake.successful("sendMessage")) == 1 and not fake.successful("editMessageText")

    async with running_bot(fake, engine, allowed_ids=(4101,), refuse_silently=True) as app:
        pressed = fake.inject_callback_query(answer.result, buttons(answer)["Other passages"], user=stranger)
        query = fake.inject_inline_query(QUESTION, user=stranger)
        await settle(fake, app)
    [silent_press] = [
        c for c in fake.successful("answerCallbackQuery") if c.params["callback_query_id"] == pressed
    ]
    [silent_query] = fake.successful("answerInlineQuery")
    assert "text" not in silent_press.params
    assert silent_query.params["inline_query_id"] == query and silent_query.params["results"] == []
    assert "button" not in silent_query.params


async def test_a_flood_is_counted_as_it_arrives_not_as_its_turn_comes(
    fake: FakeBotApi, engine: AnswerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 questions sent at once while each answer takes a second. The limiter's clock runs 60
    times fast, so its minute passes while the flood waits behind its own answers (at most
    FAIR_SHARE at a time), as on a busy machine: counted when each was handled, 55 of 100 were
    answered where 20 a minute were allowed."""
    flooder = fake.user(6101, "Flood", "flood")
    asked = _counting_questions(engine, monkeypatch, pause=1.0)
    async with running_bot(fake, engine, questions_per_minute=5) as app:
        services = app.bot_data[SERVICES]
        services.limiter = RequestLimiter(5, clock=lambda: time.monotonic() * 60)
        sent = [fake.inject_message(f"{QUESTION} ({n})", user=flooder) for n in range(100)]
        await settle(fake, app)
    texts = [parse_telegram_html(t) for t in fake.sent_texts(flooder["id"])]
    answers = [t for t in texts if "· 2021-03-01 · paragraph" in t]
    notices = [t for t in texts if t.startswith("You're asking faster")]
    assert len(answers) == 5 and len(notices) == 1 and len(texts) == 6
    # The first five to arrive were answered (FAIR_SHARE of them side by side, in any order).
    assert sorted(asked[1:]) == sorted(message["text"] for message in sent[:5])
    assert not services.arrivals  # every verdict was taken


async def test_a_429_is_retried_after_the_time_telegram_asks(fake: FakeBotApi, engine: AnswerEngine) -> None:
    fake.too_many_requests("sendMessage", retry_after=1)
    async with running_bot(fake, engine):
        question = fake.inject_message(QUESTION)
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
    [refused] = [c for c in fake.calls if c.method == "sendMessage" and not c.ok]
    assert refused.result["error_code"] == 429 and refused.result["parameters"] == {"retry_after": 1}
    assert reply.at - refused.at >= 1.0
    assert "Onik Gasparian" in reply.params["text"]


async def test_answers_arrive_when_the_command_menu_and_typing_action_fail(
    fake: FakeBotApi, engine: AnswerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("setMyCommands", "Internal Server Error", code=500)
    fake.fail("sendChatAction", "Bad Request: not enough rights to send text messages to the chat")
    fake.fail("sendChatAction", "Internal Server Error", code=500)
    async with running_bot(fake, engine):
        first = fake.inject_message(QUESTION)
        await fake.wait_for("sendMessage", replies_to(first))
        second = fake.inject_message("What is the capital of France?")
        await fake.wait_for("sendMessage", replies_to(second))
    assert not fake.successful("setMyCommands") and not fake.successful("sendChatAction")
    assert "setMyCommands failed" in caplog.text and caplog.text.count("sendChatAction failed") == 2


async def test_a_failing_reply_is_logged_with_its_update_and_the_user_gets_an_apology(
    fake: FakeBotApi, engine: AnswerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("sendMessage", "Bad Request: a failure the bot did not expect")
    async with running_bot(fake, engine):
        question = fake.inject_message(QUESTION)
        [apology] = await fake.wait_for("sendMessage")
    assert apology.params["text"] == APOLOGY and apology.params["chat_id"] == 1001
    [record] = [
        r for r in caplog.records if r.getMessage().startswith("update ") and r.levelno == logging.ERROR
    ]
    assert record.exc_info is not None and record.getMessage() == "update 1 failed"
    assert question["message_id"] == 1


async def test_a_user_who_blocked_the_bot_is_skipped(
    fake: FakeBotApi, engine: AnswerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.telegram")
    fake.fail("sendMessage", "Forbidden: bot was blocked by the user", code=403)
    async with running_bot(fake, engine) as app:
        fake.inject_message(QUESTION)
        await settle(fake, app)
        assert not fake.successful("sendMessage")  # no apology to someone who blocked the bot
        later = fake.inject_message(QUESTION)
        await fake.wait_for("sendMessage", replies_to(later))
    assert "blocked the bot" in caplog.text


async def test_the_allow_list_refuses_others_politely_or_silently(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    stranger, friend = fake.user(4001, "Stranger", "stranger"), fake.user(4002, "Friend", "friend")
    async with running_bot(fake, engine, allowed_ids=(4002,)) as app:
        refused = fake.inject_message(QUESTION, user=stranger)
        [refusal] = await fake.wait_for("sendMessage", replies_to(refused))
        welcome = fake.inject_message(QUESTION, user=friend)
        [answer] = await fake.wait_for("sendMessage", replies_to(welcome))
        fake.inject_message("who was fired?", user=stranger, chat=fake.group_chat())  # group chatter: silence
        await settle(fake, app)
    assert parse_telegram_html(refusal.params["text"]) == REFUSAL
    assert "Onik Gasparian" in answer.params["text"]
    assert len(fake.successful("sendMessage")) == 2

    # The stranger was answered while the bot was open; now it is closed, silently.
    async with running_bot(fake, engine):
        earlier = fake.inject_message(QUESTION, user=stranger)
        [old_answer] = await fake.wait_for("sendMessage", replies_to(earlier))
    async with running_bot(fake, engine, allowed_ids=(4002,), refuse_silently=True) as app:
        fake.inject_message(QUESTION, user=stranger)
        query = fake.inject_callback_query(
            old_answer.result, buttons(old_answer)["More context"], user=stranger
        )
        await settle(fake, app)
    assert len(fake.successful("sendMessage")) == 3
    [answered] = [c for c in fake.successful("answerCallbackQuery") if c.params["callback_query_id"] == query]
    assert "text" not in answered.params
    assert not fake.successful("editMessageText")


async def test_the_token_never_reaches_the_logs(
    fake: FakeBotApi, engine: AnswerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail("sendChatAction", "Internal Server Error", code=500)
    async with running_bot(fake, engine) as app:
        fake.inject_message(QUESTION)
        fake.inject_inline_query(QUESTION)
        await settle(fake, app)
    assert len(caplog.records) > 20  # debug logging was on: requests, updates, handlers
    secret = fake.token.split(":", 1)[1]
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()


# Webhook mode -----------------------------------------------------------------------------------


@asynccontextmanager
async def webhook_bot(
    fake: FakeBotApi, engine: AnswerEngine, **telegram: Any
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The bot serving its webhook on a free loopback port, as `run_application` would: the
    local URL to POST updates to, and the arguments it was served with."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = TelegramSettings(
        token=fake.token,
        api_base_url=fake.base_url,
        mode="webhook",
        webhook_listen="127.0.0.1",
        webhook_port=port,
        webhook_url="https://bot.example.org/articlebot/hook",
        **telegram,
    )
    application = build_application(dataclasses.replace(engine.config, telegram=settings), engine=engine)
    arguments = webhook_arguments(settings)
    async with application:
        assert application.post_init is not None and application.post_shutdown is not None
        assert application.updater is not None
        await application.post_init(application)
        await application.updater.start_webhook(**arguments)
        await application.start()
        try:
            yield f"http://127.0.0.1:{port}/articlebot/hook", arguments
        finally:
            await application.updater.stop()
            await application.stop()
            await application.post_shutdown(application)


async def test_webhook_mode_answers_updates_posted_with_the_secret(
    fake: FakeBotApi, engine: AnswerEngine
) -> None:
    async with webhook_bot(fake, engine, webhook_secret="s3cret-value") as (hook, _):
        question = fake.inject_message(QUESTION)  # Telegram would POST it to the webhook:
        update = {"update_id": fake.last_update_id, "message": question}
        async with aiohttp.ClientSession() as session:
            forged = await session.post(
                hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
            )
            delivered = await session.post(
                hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-value"}
            )
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
    assert forged.status == 403 and delivered.status == 200
    assert "Onik Gasparian" in reply.params["text"].split("\n")[0]
    [registered] = fake.successful("setWebhook")
    assert registered.params["url"] == "https://bot.example.org/articlebot/hook"
    assert registered.params["secret_token"] == "s3cret-value"
    assert not fake.successful("getUpdates")


async def test_webhook_mode_without_a_configured_secret_still_refuses_forged_updates(
    fake: FakeBotApi, engine: AnswerEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a secret anyone who reaches the port could post an update "from" an allowed user
    and have the bot answer into any chat; the bot makes up a secret and tells Telegram instead."""
    caplog.set_level(logging.DEBUG)
    friend = fake.user(5001, "Friend", "friend")
    async with webhook_bot(fake, engine, allowed_ids=(5001,)) as (hook, arguments):
        victim = fake.group_chat(-1009999999999, "Someone else's group")
        forged_message = fake.inject_message(
            f"@{fake.bot_user['username']} {QUESTION}", user=friend, chat=victim
        )
        question = fake.inject_message(QUESTION, user=friend)
        [registered] = fake.successful("setWebhook")
        secret = registered.params.get("secret_token")
        async with aiohttp.ClientSession() as session:
            forged = await session.post(hook, json={"update_id": 1, "message": forged_message})
            delivered = await session.post(
                hook,
                json={"update_id": 2, "message": question},
                headers={"X-Telegram-Bot-Api-Secret-Token": secret or ""},
            )
        [reply] = await fake.wait_for("sendMessage", replies_to(question))
    assert forged.status == 403, "an update without the secret was accepted"
    assert delivered.status == 200 and "Onik Gasparian" in reply.params["text"].split("\n")[0]
    assert secret is not None and len(secret) >= 32 and arguments["secret_token"] == secret
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret)  # what Telegram accepts
    assert not fake.sent_texts(victim["id"])
    assert secret not in caplog.text  # python-telegram-bot logs setWebhook's parameters at DEBUG
