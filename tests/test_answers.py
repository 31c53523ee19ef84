"""Answers over the bundled article, with the real model, FAISS and BM25."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bot.answer import MAX_QUESTION_CHARS, SPAN_WEIGHT, QuestionError, choice_scores, normalize_question
from bot.config import Config
from bot.engine import AnswerEngine
from bot.reader import Reading
from index.embed import SentenceTransformerEmbedder
from index.split import Passage
from index.store import Hit

pytestmark = pytest.mark.slow

# Each question with a phrase only the sentence that answers it contains.
ANSWERABLE = [
    ("who was fired?", "immediately fired Onik Gasparian"),
    ("who was dismissed last week?", "dismissed Tiran Khachatrian"),
    ("what did the protesters break into?", "broke into a government building"),
    ("how many days did the fighting last?", "44 days of fierce fighting"),
    ("who refused to sign the order?", "has refused to sign the order"),
    ("what did the council condemn?", "also condemned any involvement"),
    ("what did the officers sign?", "signed a letter accusing"),
    ("where did the protesters invade?", "invaded the legislature"),
    ("when will the opposition hold another rally?", "another rally later on March 1"),
    ("What did Pashinian call the move?", "an attempted military coup"),
    ("were there any injuries?", "no immediate reports of injuries"),
    ("what did Khachatrian mock?", "mocked the prime minister’s analysis"),
    ("which districts did Armenia cede?", "all seven surrounding districts"),
    ("what do many Armenians think of the deal?", "humiliating loss"),
    ("who backed Azerbaijan's military?", "Turkish-backed military"),
]
OFF_TOPIC = ["What is the capital of France?", "How do I bake sourdough bread?"]


@pytest.mark.parametrize(("question", "phrase"), ANSWERABLE)
def test_answers_with_the_sentence_that_answers(engine: AnswerEngine, question: str, phrase: str) -> None:
    answer = engine.ask(question)
    assert answer.answered, f"abstained (confidence {answer.confidence:.2f})"
    assert answer.sentence is not None
    assert phrase in answer.sentence.text
    best = answer.passages[0]
    assert best.highlight is not None
    start, end = best.highlight
    assert best.text[start:end] == answer.sentence.text


def test_who_was_fired_quotes_gasparian_and_supports_with_khachatrian(engine: AnswerEngine) -> None:
    answer = engine.ask("who was fired?")
    assert answer.sentence is not None
    assert "Onik Gasparian" in answer.sentence.text
    assert answer.sentence.title == engine.index.articles["armenia-2021-03-01"].title
    assert answer.sentence.date == "2021-03-01"
    assert answer.sentence.sentence.paragraph == 7
    assert any("Tiran Khachatrian" in quoted.text for quoted in answer.passages)


@pytest.mark.parametrize("question", [*OFF_TOPIC, "who won the football match?"])
def test_abstains_when_the_article_does_not_answer(engine: AnswerEngine, question: str) -> None:
    answer = engine.ask(question)
    assert not answer.answered
    assert answer.sentence is None
    # The closest passage is still shown, but nothing in it is marked as the answer.
    assert answer.passages
    assert all(quoted.highlight is None for quoted in answer.passages)


def test_the_int8_reader_gives_the_float32_answers_over_the_bundled_article(
    engine: AnswerEngine, bundled_config: Config, embedder: SentenceTransformerEmbedder
) -> None:
    """The default int8 file and `answer.reader = "onnx"`, the float32 graph, read the same index
    to the same answer sentences and refusals on the bundled article."""
    config = dataclasses.replace(
        bundled_config, answer=dataclasses.replace(bundled_config.answer, reader="onnx")
    )
    float32 = AnswerEngine(config, embedder=embedder, status=lambda message: None)
    assert (engine.reader.runtime, float32.reader.runtime) == ("onnx-int8", "onnx")
    for question in [question for question, _ in ANSWERABLE] + OFF_TOPIC:
        ours, theirs = engine.ask(question), float32.ask(question)
        assert ours.answered == theirs.answered, question
        if theirs.sentence is not None:
            assert ours.sentence is not None and ours.sentence.text == theirs.sentence.text, question


def test_a_follow_up_reads_the_passage_of_the_answer_it_leans_on(engine: AnswerEngine) -> None:
    """`near` (the last answer's passage) is read even when the search ranks it below the passages
    read; the rest keep their order."""
    from bot.answer import CANDIDATE_PASSAGES, assess

    question = "what did the protesters break into?"
    vector = engine.query_encoder.encode([question])[0]
    plain = assess(question, vector, engine.index, engine.reader)
    assert len(plain.hits) > CANDIDATE_PASSAGES
    far = plain.hits[-1].passage.id
    leaning = assess(question, vector, engine.index, engine.reader, near=far)
    read = [hit.passage.id for hit in leaning.hits[:CANDIDATE_PASSAGES]]
    assert read == [hit.passage.id for hit in plain.hits[: CANDIDATE_PASSAGES - 1]] + [far]
    assert leaning.best is not None and "broke into" in leaning.best.sentence.text


def test_passages_never_repeat_a_sentence(engine: AnswerEngine) -> None:
    for question in ["who was fired?", "what happened in Yerevan?", "Nagorno-Karabakh"]:
        answer = engine.ask(question, top_k=6)
        spans = [(quoted.passage.start, quoted.passage.end) for quoted in answer.passages]
        for i, (start, end) in enumerate(spans):
            for other_start, other_end in spans[i + 1 :]:
                assert end <= other_start or other_end <= start, f"{question!r}: overlapping passages"


def test_top_k_limits_the_passages(engine: AnswerEngine) -> None:
    assert len(engine.ask("who was fired?", top_k=1).passages) == 1
    assert len(engine.ask("who was fired?", top_k=3).passages) == 3


def test_answer_is_a_quote_at_its_place_in_the_article(engine: AnswerEngine) -> None:
    answer = engine.ask("who refused to sign the order?")
    assert answer.sentence is not None
    article = engine.index.articles[answer.sentence.sentence.article_id]
    sentence = answer.sentence.sentence
    assert article.text[sentence.start : sentence.end] == answer.sentence.text
    for quoted in answer.passages:
        assert article.text[quoted.passage.start : quoted.passage.end] == quoted.text


def test_timings_are_reported(engine: AnswerEngine) -> None:
    answer = engine.ask("who was fired?")
    assert {"encode", "search", "total"} <= set(answer.timings_ms)
    assert answer.timings_ms["total"] >= answer.timings_ms["search"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  who   was\tfired??? ", "who was fired?"),
        ("who\nwas fired", "who was fired"),
        ("who was fired?!?", "who was fired?"),
        ("Who was FIRED\u200b?", "Who was FIRED?"),
        ("<b>who</b> was fired? & co", "<b>who</b> was fired? & co"),
    ],
)
def test_normalize_question(raw: str, expected: str) -> None:
    assert normalize_question(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "???", "\u200b\n", "👀 🔥 ?"])
def test_empty_question_gets_a_hint(raw: str) -> None:
    with pytest.raises(QuestionError, match="ask a question"):
        normalize_question(raw)


def test_over_long_question_is_refused() -> None:
    with pytest.raises(QuestionError, match="at most 1,000"):
        normalize_question("why " * (MAX_QUESTION_CHARS // 4 + 1))


def test_odd_unicode_and_html_are_answered_not_crashed(engine: AnswerEngine) -> None:
    for question in ["<script>alert(1)</script> who was fired?", "кто был уволен?", "ｗｈｏ was ﬁred 👀"]:
        answer = engine.ask(question)
        assert answer.passages


def _reading_and_hit(logit: float, span_score: float, search_score: float) -> tuple[Reading, Hit]:
    passage = Passage("p", "a", 0, 0, 0, 0, 1, "x")
    return Reading(logit, (0, 1), span_score), Hit(passage, search_score, 0.0, 0.0)


def test_the_choice_weighs_the_short_answer_and_the_search_beside_the_probability() -> None:
    """Pure logic, beside the real reader's answers above: a passage a little less likely to
    answer, but with a much stronger short answer and ranked higher, is the one chosen; the
    search's scale (BM25 in the hundreds, or standardised) does not change the choice."""
    likely, strong = _reading_and_hit(2.0, 1.0, 0.2), _reading_and_hit(1.5, 6.0, 0.9)
    readings, hits = zip(likely, strong, strict=True)
    assert int(np.argmax(choice_scores(readings, hits, 0.0, 0.0))) == 0
    assert int(np.argmax(choice_scores(readings, hits))) == 1
    scaled = [Hit(hit.passage, hit.score * 300 + 40, 0.0, 0.0) for hit in hits]
    np.testing.assert_allclose(choice_scores(readings, scaled), choice_scores(readings, hits))
    alone = choice_scores(readings[:1], hits[:1])  # one passage: its search score says nothing
    assert alone[0] == pytest.approx(2.0 + SPAN_WEIGHT * 1.0)
