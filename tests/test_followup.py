"""How a question is read after the turn before it (pure rules, no model), and the conversation store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.conversation import Conversation, Conversations, ConversationSettings, Turn
from bot.followup import Kind, interpret, with_holders

DATA = Path(__file__).parent / "data"
ARMENIA = "armenia-2021-03-01"


def after(question: str, short: str | None, *, article: str = ARMENIA, sentence: int = 6) -> Conversation:
    """A conversation whose last turn asked `question` and was answered with `short`."""
    text = f"A sentence holding {short}." if short else None
    return Conversation((Turn(question, short is not None, article, f"{article}#3", sentence, text, short),))


@pytest.mark.parametrize(
    ("before", "short", "follow_up", "read_as"),
    [
        # The examples.
        ("who was fired?", "Onik Gasparian", "why?", "Why was Onik Gasparian fired?"),
        (
            "Who mocked the prime minister?",
            "Tiran Khachatrian",
            "what was his position?",
            "What was Tiran Khachatrian's position?",
        ),
        # A title is left out of the name, or "what is his title?" would hold its own answer.
        (
            "Who refused to sign the order?",
            "President Armen Sarkisian",
            "what is his title?",
            "What is Armen Sarkisian's title?",
        ),
        # The question word swapped, the answer put in where the old question word stood.
        (
            "Who mocked the prime minister?",
            "Tiran Khachatrian",
            "why?",
            "Why did Tiran Khachatrian mock the prime minister?",
        ),
        (
            "Who did Pashinian dismiss last week?",
            "Tiran Khachatrian",
            "why?",
            "Why did Pashinian dismiss Tiran Khachatrian last week?",
        ),
        (
            "Who did the Broncos defeat?",
            "New England Patriots",
            "by what score?",
            "By what score did the Broncos defeat New England Patriots?",
        ),
        (
            "When did the protesters invade the legislature?",
            "March 1",
            "why?",
            "Why did the protesters invade the legislature?",
        ),
        (
            "Who refused to sign the order?",
            "Armen Sarkisian",
            "how come?",
            "Why did Armen Sarkisian refuse to sign the order?",
        ),
        ("who was fired?", "Onik Gasparian", "when was that?", "When was Onik Gasparian fired?"),
        # "and X?": the last question about someone else; a possessive for a possessive.
        (
            "What record did the Panthers finish the season with?",
            "15–1",
            "and the Broncos?",
            "What record did the Broncos finish the season with?",
        ),
        ("What did Tesla's father do?", "a priest", "and his mother?", "What did Tesla's mother do?"),
        (
            "What are opposition supporters expected to do?",
            "hold another rally",
            "and Pashinian's supporters?",
            "What are Pashinian's supporters expected to do?",
        ),
        # After a place or a date, "he" is whom the question was about, not the answer.
        ("Where was Tesla born?", "Smiljan", "what did his father do?", "What did Tesla's father do?"),
        # "it" takes what the last answer named, cut to its phrase.
        (
            "What did the officers sign?",
            "a letter accusing Pashinian of treason",
            "what did it say?",
            "What did a letter say?",
        ),
        (
            "When did the inspectors find the cracks?",
            "November 8",
            "what caused them?",
            "What caused the cracks?",
        ),
        (
            "Who refused to sign the order?",
            "Armen Sarkisian",
            "how old is he?",
            "How old is Armen Sarkisian?",
        ),
        # "they" takes the whole name, even where a word of it could be a verb ("Mars": "mar").
        (
            "Who joined Coldplay at the halftime show?",
            "Beyoncé and Bruno Mars",
            "what songs did they play?",
            "What songs did Beyoncé and Bruno Mars play?",
        ),
        # "he" after a question about someone's brother is the brother, not his owner.
        (
            "What happened to Tesla's older brother?",
            "killed in a horse-riding accident",
            "what was his name?",
            "What was Tesla's older brother's name?",
        ),
        # "there" is the place the last answer named.
        (
            "Where did Tesla go to school?",
            "Karlovac",
            "who influenced him there?",
            "Who influenced Tesla in Karlovac?",
        ),
        ("Where did Tesla study in 1880?", "Prague", "why did he go there?", "Why did Tesla go to Prague?"),
        (
            "Where did Tesla study in 1880?",
            "Prague",
            "when had he travelled there?",
            "When had Tesla travelled to Prague?",
        ),
        # "why not?" keeps its "not".
        (
            "did Gasparian attend the meeting?",
            "did not attend",
            "why not?",
            "Why did Gasparian not attend the meeting?",
        ),
        # "who announced it?": that what the last question asked about happened.
        (
            "Why was the Mill Street Bridge closed?",
            "cracks",
            "who announced it?",
            "Who announced the Mill Street Bridge was closed?",
        ),
        ("who was fired?", "Onik Gasparian", "who announced it?", "Who announced Onik Gasparian was fired?"),
        ("Why was the bridge closed?", "cracks", "who announced it?", "Who announced the bridge was closed?"),
        # An answer that opened its sentence loses its capital "The" inside the question.
        ("Who won Super Bowl 50?", "The Broncos", "who did they beat?", "Who did the Broncos beat?"),
        # "any involvement by …" is no one "it" can point back to: "it" is what the question was about.
        (
            "What did the council condemn?",
            "any involvement by the armed forces in the political process",
            "who leads it?",
            "Who leads the council?",
        ),
        # A question word with its preposition; an answer after the verb's own preposition.
        (
            "Who did Tesla clash with?",
            "Professor Poeschl",
            "over what?",
            "Over what did Tesla clash with Professor Poeschl?",
        ),
        # The answer takes the place of "do" in "told to do".
        (
            "What were Millbrook residents told to do?",
            "keep their windows shut",
            "for how long?",
            "For how long were Millbrook residents told to keep their windows shut?",
        ),
        # "and a repair?" replaces the whole of "a new Mill Street Bridge", not its name alone.
        (
            "How much would a new Mill Street Bridge cost?",
            "$48 million",
            "and a repair?",
            "How much would a repair cost?",
        ),
        # "he" and "it" are not the same one: "it" is what the name owned, not the man who answered.
        (
            "Who licensed Tesla's motor?",
            "George Westinghouse",
            "how much did he pay for it?",
            "How much did George Westinghouse pay for Tesla's motor?",
        ),
        # An act is no one: "them" are who acted, "it" what they acted on.
        (
            "What did the officers do in response?",
            "signed a letter",
            "how many of them signed it?",
            "How many of the officers signed a letter?",
        ),
        # A possessive followed by a capitalised word is part of the name.
        (
            "When did Levi's Stadium open?",
            "2014",
            "how much did it cost?",
            "How much did Levi's Stadium cost?",
        ),
        # "and the Panthers?" stands in for the name it is most like: "the" before it, a plural.
        (
            "By what score did the Broncos defeat New England Patriots in the AFC Championship Game?",
            "20–18",
            "and the Panthers?",
            "By what score did the Panthers defeat New England Patriots in the AFC Championship Game?",
        ),
    ],
)
def test_a_follow_up_is_read_with_what_it_leans_on(
    before: str, short: str, follow_up: str, read_as: str
) -> None:
    reading = interpret(follow_up, after(before, short))
    assert reading.kind is Kind.FOLLOW_UP
    assert reading.read_as == read_as == reading.question
    assert reading.within == ARMENIA


@pytest.mark.parametrize(
    "question",
    [
        "Who won Super Bowl 50?",
        "What did Tesla do with his money?",  # the question says whose
        "Who was famed for their Christian spirit?",  # "their" is whoever "who" is
        "What is it called when steam drives a turbine?",  # an "it" that stands for nothing
        "Is it easier to change EU law than to keep it?",
        "What does it mean for the dollar to float?",
        "What about Luther declined as his antisemitism increased?",  # not "and X?": a clause
        "It is said that Tesla never slept: how long did he sleep?",
        "Were there any injuries?",  # a "there" that stands for no place
        "How many seats are there in the stadium?",
    ],
)
def test_a_question_that_stands_alone_is_read_as_asked(question: str) -> None:
    reading = interpret(question, after("who was fired?", "Onik Gasparian"))
    assert reading.kind is Kind.ALONE
    assert reading.question == question
    assert reading.read_as is None and reading.within is None


def test_a_who_answer_that_names_no_one_gives_way_to_the_name_in_its_sentence() -> None:
    """The reader's short answer to "who did the Broncos defeat?" was the score: "by what score?"
    puts in the name the answer sentence holds and the question does not."""
    sentence = "The Broncos denied the New England Patriots a title, defeating them 20–18."
    turn = Turn("Who did the Broncos defeat?", True, "sb", "sb#3", 4, sentence, "20–18")
    reading = interpret("by what score?", Conversation((turn,)))
    assert reading.read_as == "By what score did the Broncos defeat New England Patriots?"


def test_a_there_with_no_place_asked_for_reads_as_asked_in_the_last_answers_article() -> None:
    reading = interpret(
        "how many people live there?",
        after("since when had Armenian forces occupied those districts?", "1990s"),
    )
    assert reading.kind is Kind.FOLLOW_UP and reading.within == ARMENIA
    assert reading.question == "how many people live there?" and reading.read_as is None


@pytest.mark.parametrize("question", ["was anyone hurt?", "Did anybody object?", "was anything stolen?"])
def test_a_question_about_someone_unnamed_reads_as_asked_in_the_last_answers_article(question: str) -> None:
    """It names nothing that could point to an article: it asks about the story just told."""
    reading = interpret(question, after("What did the protesters chant for?", "step down"))
    assert reading.kind is Kind.FOLLOW_UP and reading.within == ARMENIA
    assert reading.question == question and reading.read_as is None
    assert interpret(question).kind is Kind.ALONE  # as the first question, it is asked everywhere
    # Naming what it is about, it stands alone.
    named = interpret("was anyone hurt in the Super Bowl?", after("who was fired?", "Gasparian"))
    assert named.kind is Kind.ALONE


def test_a_score_is_no_one_so_they_are_whom_the_turn_before_named() -> None:
    won = Turn(
        "Who won Super Bowl 50?", True, "sb", "sb#1", 2, "The Broncos took an early lead.", "The Broncos"
    )
    score = Turn(
        "What was the score?", True, "sb", "sb#4", 9, "The Panthers scored 500 points.", "500 points"
    )
    reading = interpret("who did they beat?", Conversation((won, score)))
    assert reading.read_as == "Who did the Broncos beat?" and reading.within == "sb"


def test_a_pronoun_with_nothing_to_take_reads_as_asked_in_the_story_of_the_last_answer() -> None:
    """ "who is she?" after a refusal that followed an answer: no one to take "she" from, but the
    story is still the one the last answer came from."""
    answered = Turn(
        "Will the workers be paid?", True, ARMENIA, f"{ARMENIA}#2", 4, "They will be paid.", "paid"
    )
    refused = Turn("What does the union say?", False)
    conversation = Conversation((answered, refused))
    assert conversation.article_in_focus == ARMENIA
    reading = interpret("who is she?", conversation)
    assert reading.kind is Kind.FOLLOW_UP and reading.within == ARMENIA
    assert reading.question == "who is she?" and reading.read_as is None


@pytest.mark.parametrize(
    ("question", "about"),
    [
        ("what is the Tesla article about?", "tesla"),
        ("tl;dr of the Corvane fire story", "corvane fire"),
        ("Summarize the Super Bowl article", "super bowl"),
        ("give me the gist of the bridge story", "bridge"),
    ],
)
def test_the_gist_of_an_article_named_by_its_topic(question: str, about: str) -> None:
    reading = interpret(question, after("who was fired?", "Onik Gasparian"))
    assert (reading.kind, reading.about) == (Kind.GIST, about)


def test_a_role_is_read_as_the_name_the_article_gives_its_holder() -> None:
    article = "Mayor Dana Whitfield closed the bridge. Whitfield said the money went elsewhere."
    read = "What did the mayor say about the council?"
    named = "What did Mayor Dana Whitfield say about the council?"
    assert with_holders(read, "and the mayor?", article) == named
    # Two mayors, or none: the role stays as the person put it.
    assert with_holders(read, "and the mayor?", article + " Mayor Ann Lee came too.") == read
    assert with_holders(read, "and the mayor?", "The bridge was closed.") == read
    assert with_holders(read, "And the Mayor?", article) == named  # however it is written
    # Only a title the person named: "the council" of the old question is no title.
    assert with_holders(read, "and the council?", "Council Tanaka spoke.") == read


def test_nothing_leans_on_an_empty_conversation() -> None:
    for question in (
        "why?",
        "what was his position?",
        "what else?",
        "what happened next?",
        "and the Broncos?",
    ):
        reading = interpret(question, Conversation())
        assert reading.kind is Kind.ALONE and reading.question == question


@pytest.mark.parametrize(
    "question",
    [
        "what is this article about?",
        "Summarize the article",
        "tl;dr",
        "What happened?",
        "what's the news?",
        "summary",
    ],
)
def test_the_gist_is_asked_for_in_many_words(question: str) -> None:
    assert interpret(question).kind is Kind.GIST
    # After an answer, the gist is of that answer's article.
    assert interpret(question, after("who was fired?", "Onik Gasparian")).within == ARMENIA


def test_what_happened_to_someone_is_no_request_for_the_gist() -> None:
    assert interpret("What happened to his lab?").kind is Kind.ALONE
    # Questions about a report or a story are no requests for an article's gist (SQuAD holds them).
    for question in (
        "What was the name of the WWF report?",
        "What was the focus of the 2007/2008 Human Development Report?",
        "What was the title of Crouch's article?",
    ):
        assert interpret(question).kind is Kind.ALONE, question


def test_what_else_asks_the_last_question_again_and_next_continues_the_article() -> None:
    conversation = after("who was fired?", "Onik Gasparian")
    other = interpret("what else?", conversation)
    assert (other.kind, other.question, other.within) == (Kind.ELSE, "who was fired?", ARMENIA)
    assert other.read_as == "who was fired (besides Onik Gasparian)?"
    # "who else was dismissed?" says what it asks: searched everywhere, asked as written.
    dismissed = interpret("Who else was dismissed?", conversation)
    assert (dismissed.kind, dismissed.question, dismissed.within) == (
        Kind.ELSE,
        "Who else was dismissed?",
        None,
    )
    for question in ("what happened next?", "tell me more", "and then?", "go on"):
        assert interpret(question, conversation).kind is Kind.NEXT


def test_a_refused_turn_gives_no_article_to_lean_on() -> None:
    refused = Conversation((Turn("Who is Armenia's foreign minister?", False),))
    reading = interpret("when was he appointed?", refused)
    assert reading.kind is Kind.FOLLOW_UP and reading.within is None
    assert interpret("what happened next?", refused).kind is Kind.ALONE


def test_the_article_chosen_holds_every_question() -> None:
    focused = Conversation(focus="super-bowl-50")
    assert interpret("who won?", focused).within == "super-bowl-50"
    assert interpret("what is this about?", focused).within == "super-bowl-50"


def test_an_answer_known_only_from_its_message_still_carries_a_follow_up() -> None:
    """A Telegram answer sent before a restart: its sentence and short answer, no question."""
    restored = Conversation(
        (Turn(None, True, ARMENIA, f"{ARMENIA}#3", 6, "Pashinian fired Onik Gasparian.", "Onik Gasparian"),)
    )
    assert interpret("what was his position?", restored).read_as == "What was Onik Gasparian's position?"
    assert interpret("why?", restored).read_as == "Why Pashinian fired Onik Gasparian?"


def test_few_questions_of_the_own_set_seem_to_lean_on_an_unrelated_answer() -> None:
    """The bot's own questions stand alone; after an answer about something else, only those with a
    pronoun that has nothing to refer to in the question are read as leaning on it (and
    bot/dialogue.py then checks their words against the article)."""
    data = json.loads((DATA / "article_questions.json").read_text(encoding="utf-8"))["data"]
    questions = [qa["question"] for article in data for p in article["paragraphs"] for qa in p["qas"]]
    leaning = [
        q
        for q in questions
        if interpret(q, after("Who won Super Bowl 50?", "Denver Broncos")).kind is not Kind.ALONE
    ]
    assert leaning == [
        "When did they invade the legislature?",
        "since when had armenian forces occupied those districts",
        "Which stadium hosted it?",
        "why wasn't it called Super Bowl L",
    ]


# The store -------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_conversations_are_forgotten_when_idle_and_the_oldest_go_first() -> None:
    clock = Clock()
    store = Conversations(ConversationSettings(idle_minutes=1, max_conversations=2), clock)
    one = after("who was fired?", "Onik Gasparian")
    store.put("a", one)
    clock.now = 30
    store.put("b", one)
    assert store.get("a") is one
    clock.now = 61  # "a" was last put at 0: idle for over a minute
    assert store.get("a") == Conversation()
    assert store.get("b") is one
    store.put("c", one)
    store.put("d", one)  # over the cap of two: the least recently used ("b") goes
    assert len(store) == 2 and store.get("b") == Conversation()


def test_a_conversation_keeps_its_last_turns() -> None:
    conversation = Conversation()
    for number in range(6):
        conversation = conversation.then(Turn(f"question {number}", False), max_turns=4)
    assert [turn.question for turn in conversation.turns] == [f"question {n}" for n in range(2, 6)]
    assert conversation.focused("x").focus == "x" and conversation.focused("x").turns == conversation.turns


def test_bad_conversation_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_turns"):
        ConversationSettings(max_turns=0)
    with pytest.raises(ValueError, match="idle_minutes"):
        ConversationSettings(idle_minutes=0)
