"""Conversations with the real model, FAISS and BM25: follow-ups, the gist, the article in focus,
and the command line's `ask --conversation`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from test_answers import ANSWERABLE

from bot.answer import GIST, OVERVIEW, Answer
from bot.config import Config
from bot.conversation import Conversation, Conversations, ConversationSettings, Turn
from bot.engine import AnswerEngine
from bot.evaluation.conversations import ChainFormatError, load_chains

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
ARTICLEBOT = Path(sys.executable).parent / "articlebot"
ARMENIA = "armenia-2021-03-01"


def chat(engine: AnswerEngine, *questions: str, conversation: Conversation | None = None) -> list[Answer]:
    """Ask the questions one after another as one conversation."""
    held = conversation or Conversation()
    answers = []
    for question in questions:
        answer, held = engine.converse(question, held)
        answers.append(answer)
    return answers


# The examples on the bundled article -------------------------------------------------------


def test_why_after_who_was_fired_asks_why_gasparian_was_fired(engine: AnswerEngine) -> None:
    _, why = chat(engine, "who was fired?", "why?")
    assert why.read_as == "Why was Onik Gasparian fired?"
    assert why.answered and why.sentence is not None
    assert "an attempted military coup" in why.sentence.text
    # Asked alone, "why?" gets nothing worth quoting.
    alone = engine.ask("why?")
    assert alone.read_as is None and (not alone.answered or alone.sentence != why.sentence)


def test_his_position_is_the_position_of_the_man_just_named(engine: AnswerEngine) -> None:
    _, position = chat(engine, "Who mocked the prime minister?", "what was his position?")
    assert position.read_as == "What was Tiran Khachatrian's position?"
    assert position.sentence is not None and position.sentence.short is not None
    assert "deputy chief of the general staff" in position.sentence.short.text


def test_his_title_after_who_refused_to_sign_is_the_presidents(engine: AnswerEngine) -> None:
    _, title = chat(engine, "Who refused to sign the order?", "what is his title?")
    assert title.sentence is not None and title.sentence.short is not None
    assert title.sentence.sentence.text.startswith("President Armen Sarkisian")
    assert title.sentence.short.text == "President"


@pytest.mark.parametrize("question", ["what is this article about?", "summarize the article", "tl;dr"])
def test_the_gist_is_the_opening_of_the_article(engine: AnswerEngine, question: str) -> None:
    answer = engine.ask(question)
    assert answer.kind == GIST and answer.answered and answer.sentence is not None
    assert answer.sentence.text.startswith("Armenia has fallen deeper into political turmoil")
    assert answer.passages[0].passage.id == f"{ARMENIA}#0"


def test_what_happened_next_quotes_the_sentence_after_the_answer(engine: AnswerEngine) -> None:
    _, then, after_that = chat(engine, "who was fired?", "what happened next?", "and then?")
    assert then.sentence is not None and after_that.sentence is not None
    assert then.sentence.text.startswith("President Armen Sarkisian, however, has refused")
    assert after_that.sentence.text.startswith("The Armenian Security Council on March 1")
    assert then.passages[0].highlight is not None


def test_what_else_gives_another_answer_then_runs_out(engine: AnswerEngine) -> None:
    answers = chat(engine, "who was fired?", "what else?", "what else?", "what else?")
    given = [a.sentence.short.text for a in answers if a.answered and a.sentence and a.sentence.short]
    assert given[0] == "Onik Gasparian"
    assert "Tiran Khachatrian" in given
    assert len(given) == len(set(given))  # never the same answer twice
    assert not answers[-1].answered


def test_a_question_that_stands_alone_is_answered_as_if_it_were_the_first(engine: AnswerEngine) -> None:
    """Every test question of the bundled article, asked after an answer to another one."""
    unrelated = chat(engine, "what do many Armenians think of the deal?")[0]
    assert unrelated.answered
    after = engine.converse("what do many Armenians think of the deal?", Conversation())[1]
    for question, _ in ANSWERABLE:
        alone = engine.ask(question)
        followed, _ = engine.converse(question, after)
        assert followed.read_as is None, question
        assert (followed.sentence, followed.confidence, followed.passages) == (
            alone.sentence,
            alone.confidence,
            alone.passages,
        ), question


# Several articles: the one in focus ------------------------------------------------------------------


def test_a_follow_up_stays_in_the_article_of_its_answer(two_articles: AnswerEngine) -> None:
    super_bowl, fired, position = chat(
        two_articles, "Who won Super Bowl 50?", "who was fired in Armenia?", "what was his position?"
    )
    assert super_bowl.sentence is not None and super_bowl.sentence.sentence.article_id == "super-bowl-50"
    assert fired.read_as is None and fired.sentence is not None and "Onik Gasparian" in fired.sentence.text
    assert position.focus == ARMENIA and position.sentence is not None
    assert position.sentence.sentence.article_id == ARMENIA
    assert "chief of the military’s General Staff" in position.sentence.text


def test_a_pronoun_about_another_article_changes_the_topic(two_articles: AnswerEngine) -> None:
    """'his' has nothing in the question to refer to, but the question's own words are the other
    article's: it is read as asked, not as a question about Gasparian."""
    _, switch = chat(
        two_articles, "who was fired?", "How many touchdowns did his team's quarterback record in the season?"
    )
    assert switch.read_as is None and switch.focus is None
    assert switch.passages[0].passage.article_id == "super-bowl-50"


def test_a_question_about_someone_unnamed_stays_with_the_story(two_articles: AnswerEngine) -> None:
    """ "was anyone hurt?" names nothing of either article: it is asked of the one just answered from,
    and "and the president?" asks about the man the article names with that title."""
    _, hurt = chat(two_articles, "Why did protesters break into the government building?", "was anyone hurt?")
    assert hurt.read_as is None and hurt.focus == ARMENIA
    assert {quoted.passage.article_id for quoted in hurt.passages} == {ARMENIA}
    _, president = chat(two_articles, "What did Pashinian call the officers' move?", "and the president?")
    assert president.read_as is not None and "President Armen Sarkisian" in president.read_as


def test_the_person_can_choose_the_article(two_articles: AnswerEngine) -> None:
    focused = Conversation().focused("super-bowl-50")
    answer, after = two_articles.converse("who was fired?", focused)
    assert answer.focus == "super-bowl-50"
    assert all(quoted.passage.article_id == "super-bowl-50" for quoted in answer.passages)
    assert after.focus == "super-bowl-50"  # it stays chosen
    everywhere, _ = two_articles.converse("who was fired?", after.focused(None))
    assert everywhere.sentence is not None and "Onik Gasparian" in everywhere.sentence.text


def test_the_gist_of_several_articles_lists_them_newest_first(two_articles: AnswerEngine) -> None:
    overview = two_articles.ask("what's the news?")
    assert overview.kind == OVERVIEW and overview.answered
    assert [q.passage.article_id for q in overview.passages] == [ARMENIA, "super-bowl-50"]  # dated first
    for quoted in overview.passages:
        assert quoted.highlight is not None and quoted.highlight[0] == 0  # each one's opening sentence
    # After an answer, the gist is of that answer's article.
    _, gist = chat(two_articles, "Who won Super Bowl 50?", "what is this article about?")
    assert gist.kind == GIST and gist.sentence is not None
    assert gist.sentence.text.startswith("Super Bowl 50 was an American football game")


def test_the_gist_of_the_article_a_question_names(two_articles: AnswerEngine) -> None:
    """Named by a word of its title, or by words only its text holds; the gist puts it in focus."""
    super_bowl, armenia = chat(
        two_articles, "what is the Super Bowl article about?", "tl;dr of the protest story"
    )
    assert super_bowl.kind == GIST and super_bowl.sentence is not None
    assert super_bowl.sentence.text.startswith("Super Bowl 50 was an American football game")
    assert armenia.kind == GIST and armenia.focus == ARMENIA
    # A name that matches nothing lists the articles.
    assert two_articles.ask("what is the volcano article about?").kind == OVERVIEW


def test_a_follow_up_on_an_article_that_was_removed_is_read_as_asked(two_articles: AnswerEngine) -> None:
    gone = Conversation(
        (Turn("who was fired?", True, "no-such-article", "no-such-article#0", 3, "x", "Gasparian"),)
    )
    answer, _ = two_articles.converse("what was his position?", gone)
    assert answer.read_as is None and answer.focus is None


# The store's memory ---------------------------------------------------------------------------


def test_ten_thousand_conversations_fit_in_fifty_megabytes(engine: AnswerEngine) -> None:
    """Each with four real turns: the answers' strings are shared as a chat's would not be, so
    every turn gets its own copies here."""
    _, held = engine.converse("who was fired?", Conversation())
    turn = held.turns[0]
    tracemalloc.start()
    store = Conversations(ConversationSettings(max_conversations=10_000))
    for number in range(10_000):
        turns = tuple(
            Turn(
                f"{turn.question} {number}-{k}",
                True,
                turn.article_id,
                turn.passage_id,
                turn.sentence,
                f"{turn.sentence_text} {number}-{k}",
                f"{turn.short} {number}",
                (6,),
                (f"{turn.short} {number}",),
            )
            for k in range(4)
        )
        store.put(("chat", number), Conversation(turns))
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(store) == 10_000
    assert used < 50 * 1024 * 1024, f"{used / 1e6:.1f} MB"


# Chain files and the command line ------------------------------------------------------------


def test_the_chain_file_is_read_and_a_bad_line_is_named(tmp_path: Path) -> None:
    chains = load_chains(DATA / "conversations.jsonl")
    assert len(chains) >= 40 and sum(len(chain) for chain in chains) >= 120
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"chain": [{"q": "who?", "answers": ["x"]}]}\n{"chain": [{"q": "why?"}]}\n', encoding="utf-8"
    )
    with pytest.raises(ChainFormatError, match=r"bad.jsonl, line 2: .*needs either answers"):
        load_chains(bad)


def test_ask_conversation_reads_stdin_as_one_conversation(
    engine: AnswerEngine, bundled_config: Config
) -> None:
    result = subprocess.run(
        [
            str(ARTICLEBOT),
            "ask",
            "--json",
            "--conversation",
            "-",
            "--index-dir",
            str(bundled_config.index_dir),
        ],
        input="who was fired?\nwhy?\n\nwhy?\n",
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["question"] for o in objects] == ["who was fired?", "why?", "why?"]
    assert [o["read_as"] for o in objects] == [None, "Why was Onik Gasparian fired?", None]
    assert objects[1]["focus"] == ARMENIA and objects[0]["kind"] == "answer"
