"""The pieces the answer step is scored by: answer types and irregular verbs (the baseline without a
reader), and the reader's confidence against the threshold."""

from __future__ import annotations

import pytest

from bot.answer_type import expected_type, holds_type
from bot.engine import AnswerEngine
from index.lexical import stem, tokenize


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("who was fired?", "person"),
        ("When did the protests start?", "date"),
        ("In what year was the deal signed?", "date"),
        ("How many days did the fighting last?", "number"),
        ("Where did the protesters go?", "place"),
        ("What did the council condemn?", None),
    ],
)
def test_the_kind_of_answer_a_question_asks_for(question: str, kind: str | None) -> None:
    assert expected_type(question) == kind


def test_a_sentence_holds_the_kind_asked_for_only_when_the_question_did_not_say_it() -> None:
    assert holds_type("number", "It ended 44 days of fighting.", set())
    assert not holds_type("number", "It ended after weeks of fighting.", set())
    assert holds_type("date", "They met on March 1.", set())
    assert holds_type("person", "Pashinian fired Onik Gasparian.", {"pashinian"})
    assert not holds_type("person", "He fired Gasparian.", {"gasparian"})
    assert not holds_type(None, "Anything at all, 1990.", set())


def test_irregular_past_forms_meet_their_base_form() -> None:
    assert stem("broke") == stem("break") == stem("breaks")
    assert stem("won") == stem("win")
    # Words that are also common nouns or adjectives keep their own stem.
    assert stem("found") != stem("find")
    assert tokenize(["Nagorno-Karabakh's 44 days"]) == [["nagorno", "karabakh", "44", "day"]]


@pytest.mark.slow
def test_off_topic_questions_score_far_below_the_threshold_and_on_topic_ones_above(
    engine: AnswerEngine,
) -> None:
    threshold = engine.config.answer.abstain_threshold
    for question in (
        "What is the capital of France?",
        "Who won the 2018 World Cup?",
        "What is the weather in Tokyo?",
    ):
        assert engine.ask(question).confidence < threshold, question
    for question in ("who was fired?", "who refused to sign the order?", "who was dismissed last week?"):
        assert engine.ask(question).confidence >= threshold, question
