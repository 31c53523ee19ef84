"""Typos mended from the articles' words; real words, names and other scripts left alone."""

from __future__ import annotations

import pytest

from bot.config import BUNDLED_ARTICLES
from bot.spelling import SpellingCorrector


@pytest.fixture(scope="module")
def corrector() -> SpellingCorrector:
    text = (BUNDLED_ARTICLES / "armenia-2021-03-01.txt").read_text(encoding="utf-8")
    return SpellingCorrector([text])


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("wh0 was fird??", "who was fired??"),  # a look-alike digit; a letter left out
        ("who was fied?", "who was fired?"),
        ("what did the oficers sign?", "what did the officers sign?"),
        ("whoo was fired", "who was fired"),  # a letter typed twice
        ("what did Pashinyan call the move", "what did pashinian call the move"),  # the article's spelling
    ],
)
def test_typos_become_the_articles_words(corrector: SpellingCorrector, typed: str, meant: str) -> None:
    assert corrector.correct(typed) == meant


@pytest.mark.parametrize(
    "question",
    [
        "How do I bake sourdough bread?",  # English words the article lacks: "bake" never becomes "make"
        "Who won the football match?",
        "who was fired?",
        "кто был уволен?",
        "what happened in 2021?",
        "who is Tiran Khachatrian",
    ],
)
def test_known_words_are_left_alone(corrector: SpellingCorrector, question: str) -> None:
    assert corrector.correct(question) == question


def test_a_word_far_from_every_article_word_stays_as_typed() -> None:
    corrector = SpellingCorrector(["The storm hit the coast."], english=set())
    assert corrector.correct("xylophone storn") == "xylophone storm"
