"""Answers as Telegram HTML, long replies split, button data and the per-user limits: fast checks
without the bot."""

from __future__ import annotations

import asyncio
import html
import re

import pytest
from fake_bot_api import ApiError, parse_telegram_html, utf16_length
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import CallbackQuery, Update, User

from bot.answer import Answer, AnswerSentence, QuotedPassage
from bot.telegram.app import api_base_urls
from bot.telegram.html import MAX_MESSAGE_LENGTH, format_answer, split_message
from bot.telegram.keyboards import (
    MAX_CALLBACK_BYTES,
    ContextRequest,
    OtherPassagesRequest,
    PassageRefs,
    answer_keyboard,
    context_data,
    other_passages_data,
    parse_callback_data,
    passage_ref,
)
from bot.telegram.limits import OncePerMinute, RequestLimiter, Verdict
from bot.telegram.processor import FairUpdateProcessor
from index.split import Passage, Sentence

NASTY = "AT&T <b>bold</b> & <script>x</script> \"quoted\" 'single' &amp; emoji 🇦🇲 and Ω"


def _answer(text: str, sentence: tuple[int, int] | None, article_id: str = "news") -> Answer:
    passage = Passage(f"{article_id}#0", article_id, 2, 0, 2, 100, 100 + len(text), text)
    quoted = QuotedPassage(passage, f"Title {NASTY}", "2021-03-01", 0.9, 0.8, 0.7, sentence)
    answer_sentence = None
    if sentence is not None:
        start, end = sentence
        s = Sentence(article_id, 1, 3, 100 + start, 100 + end, text[start:end])
        answer_sentence = AnswerSentence(s, quoted.title, quoted.date, 0.9)
    return Answer("q", sentence is not None, answer_sentence, (quoted,), 0.9)


def test_answer_is_escaped_valid_telegram_html() -> None:
    text = f"First {NASTY}. The answer {NASTY} here. Last one."
    start = text.index("The answer")
    end = text.index("Last one") - 1
    rendered = format_answer(_answer(text, (start, end)))
    visible = parse_telegram_html(rendered)  # raises on anything Telegram would refuse
    assert rendered.startswith(f"<b>{html.escape(text[start:end])}</b>")
    assert f"<blockquote>{html.escape(text[:start])}<b>{html.escape(text[start:end])}</b>" in rendered
    assert "<script>" not in rendered and "<b>bold</b>" not in rendered
    assert visible.endswith(f"Title {NASTY} · 2021-03-01 · paragraph 3")


def test_no_answer_shows_closest_match_without_bold_answer() -> None:
    rendered = format_answer(_answer(f"Closest {NASTY}.", None))
    assert rendered.startswith("I couldn&#x27;t find that in the article.\n\nClosest match:\n<blockquote>")
    assert "paragraph 2" in parse_telegram_html(rendered)


def test_a_ten_thousand_character_reply_splits_into_valid_parts() -> None:
    paragraphs = [
        f"Paragraph {n}: " + " ".join(f"Sentence {n}.{k} says {NASTY}." for k in range(6)) for n in range(40)
    ]
    body = "\n\n".join(paragraphs)
    answer = html.escape("Answer " + NASTY)
    rendered = f"<b>{answer}</b>\n\n<blockquote>{html.escape(body)}</blockquote>\n<i>source</i>"
    assert utf16_length(parse_telegram_html(rendered)) > 10_000
    parts = split_message(rendered)
    assert len(parts) >= 3
    visible = [parse_telegram_html(part) for part in parts]  # each part parses: tags balanced, entities whole
    assert all(utf16_length(v) <= MAX_MESSAGE_LENGTH for v in visible)
    # Nothing lost or repeated: the parts, joined, read as the whole (white space at cuts aside).
    assert re.sub(r"\s+", "", "".join(visible)) == re.sub(r"\s+", "", parse_telegram_html(rendered))
    # Cuts fall at paragraph ends, and the quote is reopened in every part.
    assert all(v.rstrip().endswith(".") for v in visible[:-1])
    assert all(part.startswith("<blockquote>") for part in parts[1:])


def test_a_paragraph_without_breaks_splits_between_sentences_then_words() -> None:
    sentences = " ".join(f"Sentence number {n} & more." for n in range(600))
    parts = split_message(f"<blockquote>{html.escape(sentences)}</blockquote>")
    assert len(parts) > 1
    for part in parts[:-1]:
        assert parse_telegram_html(part).endswith("more.")
    words = "word&amp;word " * 1500
    for part in split_message(words):
        visible = parse_telegram_html(part)
        assert utf16_length(visible) <= MAX_MESSAGE_LENGTH and "word&word" in visible


@settings(max_examples=60, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab <&>\"'.\n🇦Ω")), min_size=1, max_size=3000), st.integers(50, 400)
)
def test_split_keeps_every_visible_character_in_valid_parts(text: str, limit: int) -> None:
    rendered = f"<b>x</b> <blockquote>{html.escape(text)}<i>{html.escape(text[:50])}</i></blockquote> end"
    parts = split_message(rendered, limit)
    visible = [parse_telegram_html(part) for part in parts]
    assert all(utf16_length(v) <= limit for v in visible)
    assert re.sub(r"\s+", "", "".join(visible)) == re.sub(r"\s+", "", parse_telegram_html(rendered))


@pytest.mark.parametrize(
    "bad", ["a < b", "fish & chips", "<b>open", "<b><i>crossed</b></i>", "<marquee>no</marquee>", "</b>"]
)
def test_the_fake_refuses_html_telegram_refuses(bad: str) -> None:
    with pytest.raises(ApiError, match="Bad Request: can't parse entities"):
        parse_telegram_html(bad)


def test_callback_data_is_short_deterministic_and_parses_back() -> None:
    long_id = "a-very-long-article-file-name-" * 5 + "#123"
    assert passage_ref(long_id) == passage_ref(long_id) and len(passage_ref(long_id)) == 8
    data = context_data(long_id, 2)
    assert len(data.encode()) < MAX_CALLBACK_BYTES
    assert parse_callback_data(data) == ContextRequest(passage_ref(long_id), 2)
    assert parse_callback_data(context_data(long_id, None)) == ContextRequest(passage_ref(long_id), None)
    ids = [f"{long_id}{n}" for n in range(9)]
    data = other_passages_data(ids)
    assert len(data.encode()) < MAX_CALLBACK_BYTES
    request = parse_callback_data(data)
    assert isinstance(request, OtherPassagesRequest) and len(request.passage_refs) == 5
    refs = PassageRefs(ids)
    assert [refs.resolve(ref) for ref in request.passage_refs] == ids[:5]
    for junk in (None, "", "ctx:", "ctx:abc:x", "oth:", "zzz:1", "ctx:abc:²", "ctx:abc:٣", "ctx:abc:-1"):
        assert parse_callback_data(junk) is None


def test_keyboard_marks_the_answer_sentence_within_its_passage() -> None:
    answer = _answer("One. Two is it. Three.", (5, 15))
    markup = answer_keyboard(answer)
    assert markup is not None
    [[more]] = markup.inline_keyboard  # one passage: no "Other passages"
    assert more.text == "More context" and more.callback_data == context_data("news#0", 1 - 0)


def test_the_request_limit_warns_once_then_stays_quiet_until_the_minute_passes() -> None:
    now = [0.0]
    limiter = RequestLimiter(2, clock=lambda: now[0])
    verdicts = [limiter.check(7) for _ in range(5)]
    assert verdicts == [Verdict.ALLOW, Verdict.ALLOW, Verdict.WARN, Verdict.IGNORE, Verdict.IGNORE]
    assert limiter.check(8) is Verdict.ALLOW  # another user is unaffected
    assert limiter.seconds_until_free(7) == 60
    now[0] = 60.0
    assert limiter.check(7) is Verdict.ALLOW


def test_a_refusal_is_due_once_a_minute_per_person() -> None:
    now = [0.0]
    refusals = OncePerMinute(clock=lambda: now[0])
    assert [refusals.due(7) for _ in range(3)] == [True, False, False]
    assert refusals.due(8)  # another person is told too
    now[0] = 59.9
    assert not refusals.due(7)
    now[0] = 60.0
    assert refusals.due(7)


async def test_one_sender_holds_at_most_their_share_of_the_slots() -> None:
    processor = FairUpdateProcessor(slots=3, per_user=2)
    release = asyncio.Event()
    started: list[int] = []
    changed = asyncio.Condition()

    async def handle(sender: int) -> None:
        async with changed:
            started.append(sender)
            changed.notify_all()
        await release.wait()

    def press(update_id: int, sender: int) -> Update:
        user = User(sender, f"user{sender}", False)
        return Update(update_id, callback_query=CallbackQuery(str(update_id), user, "chat"))

    senders = [1, 1, 1, 1, 2]  # four from one person, then someone else's
    tasks = [
        asyncio.create_task(processor.process_update(press(n, s), handle(s))) for n, s in enumerate(senders)
    ]
    async with changed:
        await asyncio.wait_for(changed.wait_for(lambda: len(started) == 3), 5)
    assert sorted(started) == [1, 1, 2]  # the flood waits for its own turn, not the shared slots
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(started) == senders
    assert not processor._turns  # nothing kept for people with nothing in flight


def test_self_hosted_api_base_urls() -> None:
    expected = ("http://localhost:8081/bot", "http://localhost:8081/file/bot")
    assert api_base_urls("http://localhost:8081") == expected
    assert api_base_urls("http://localhost:8081/") == expected
    assert api_base_urls("http://localhost:8081/bot") == expected
