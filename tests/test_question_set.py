"""Questions people ask about two articles, written for this test: the answerable ones answered with
the right sentence, the ones the article does not answer (off-topic, or on its topic but not in it)
refused. The set is tests/data/article_questions.json (SQuAD v2.0 format, so `articlebot eval`
reports it too); the second article is tests/data/super-bowl-50.txt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.answer import Answer
from bot.config import BUNDLED_ARTICLES, Config
from bot.engine import AnswerEngine
from bot.evaluation.metrics import contains_answer
from index.embed import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
QUESTIONS = [
    (qa["id"], qa["question"], tuple(a["text"] for a in qa["answers"]))
    for article in json.loads((DATA / "article_questions.json").read_text(encoding="utf-8"))["data"]
    for paragraph in article["paragraphs"]
    for qa in paragraph["qas"]
]


@pytest.fixture(scope="module")
def two_articles(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> AnswerEngine:
    """Both articles in one index, as a user who added the second one would have them."""
    config = Config(
        articles=(BUNDLED_ARTICLES, DATA / "super-bowl-50.txt"),
        index_dir=tmp_path_factory.mktemp("two-articles"),
    )
    engine = AnswerEngine(config, embedder=embedder, status=lambda message: None)
    engine.ensure_index()
    return engine


# Questions about something else entirely: recipes, prices, jokes, capitals, weather, sport.
OFF_TOPIC = {
    "armenia-u02", "armenia-u03", "armenia-u04", "armenia-u05", "armenia-u06", "armenia-u07",
    "armenia-u08", "superbowl-u01", "superbowl-u02", "superbowl-u03", "superbowl-u04", "superbowl-u06",
}  # fmt: skip


@pytest.fixture(scope="module")
def answers(two_articles: AnswerEngine) -> dict[str, tuple[tuple[str, ...], Answer]]:
    return {qid: (golds, two_articles.ask(question)) for qid, question, golds in QUESTIONS}


def test_the_set_is_large_enough() -> None:
    for prefix in ("armenia", "superbowl"):
        answerable = [q for q in QUESTIONS if q[0].startswith(prefix) and q[2]]
        unanswerable = [q for q in QUESTIONS if q[0].startswith(prefix) and not q[2]]
        assert len(answerable) >= 30 and len(unanswerable) >= 20, prefix


def test_off_topic_questions_are_refused(answers: dict[str, tuple[tuple[str, ...], Answer]]) -> None:
    answered = [qid for qid in OFF_TOPIC if answers[qid][1].answered]
    assert not answered, answered


def test_answerable_questions_are_answered_with_the_right_sentence(
    answers: dict[str, tuple[tuple[str, ...], Answer]],
) -> None:
    """Measured when written: 62 of 63 answered, 51 with a sentence holding the answer (docs/quality.md)."""
    asked = [(golds, answer) for golds, answer in answers.values() if golds]
    answered = sum(answer.answered for _, answer in asked)
    right = sum(
        answer.sentence is not None and contains_answer(answer.sentence.text, golds)
        for golds, answer in asked
    )
    assert answered >= 0.95 * len(asked), f"{answered} of {len(asked)} answered"
    assert right >= 0.75 * len(asked), f"{right} of {len(asked)} with the right sentence"


def test_most_questions_the_articles_do_not_answer_are_refused(
    answers: dict[str, tuple[tuple[str, ...], Answer]],
) -> None:
    """Measured when written: 23 of 43 refused; the on-topic ones (other officials, a swapped year,
    a false premise) are where the reader still answers. docs/quality.md reports them."""
    unanswerable = [answer for golds, answer in answers.values() if not golds]
    refused = sum(not answer.answered for answer in unanswerable)
    assert refused >= 0.45 * len(unanswerable), f"{refused} of {len(unanswerable)} refused"
