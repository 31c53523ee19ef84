"""Question → Answer: the one function every front end calls.

The answer is always a quote. Among the sentences of the best passages, the one that matches
the question best in meaning and in words is the answer sentence; when the evidence is weak the
answer says so, and the closest passage is shown as the closest match, not as an answer.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.articles import Article
from index.errors import ArticlebotError
from index.lexical import tokenize
from index.split import Passage, Sentence
from index.store import Hit, HybridWeights, PassageIndex

MAX_QUESTION_CHARS = 1000
# Sentences of this many of the best passages compete to be the answer.
CANDIDATE_PASSAGES = 3


class QuestionError(ArticlebotError):
    """The question cannot be asked as it is: empty, or too long."""


@dataclass(frozen=True)
class QuotedPassage:
    """A passage as shown to a reader, with where it stands and what to highlight."""

    passage: Passage
    title: str
    date: str | None
    score: float
    dense: float
    lexical: float
    highlight: tuple[int, int] | None = None

    @property
    def text(self) -> str:
        return self.passage.text

    @property
    def paragraph(self) -> int:
        return self.passage.paragraph


@dataclass(frozen=True)
class AnswerSentence:
    """The sentence that answers, where it stands in its article, and why it was picked."""

    sentence: Sentence
    title: str
    date: str | None
    score: float
    cosine: float
    overlap: float

    @property
    def text(self) -> str:
        return self.sentence.text


@dataclass(frozen=True)
class Answer:
    """What the bot says to a question. `passages[0]` holds the answer sentence, or the closest match."""

    question: str
    answered: bool
    sentence: AnswerSentence | None
    passages: tuple[QuotedPassage, ...]
    confidence: float
    timings_ms: dict[str, float] = field(default_factory=dict)


def normalize_question(text: str) -> str:
    """Collapse white space and repeated end punctuation; refuse empty and over-long questions."""
    cleaned = "".join(
        " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char
        for char in unicodedata.normalize("NFC", text)
        if unicodedata.category(char) not in ("Cf", "Cs", "Co")
    )
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    cleaned = re.sub(r"([?!.])[?!.\s]*$", r"\1", cleaned)
    if not re.search(r"\w", cleaned):
        raise QuestionError("ask a question about the article, e.g. 'who was fired?'")
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"that question is {len(cleaned):,} characters long; ask in at most {MAX_QUESTION_CHARS:,}"
        )
    return cleaned


@dataclass(frozen=True)
class AnswerSettings:
    top_k: int = 3
    mode: str = "hybrid"
    weights: HybridWeights = HybridWeights()
    abstain_threshold: float = 0.5
    cosine_weight: float = 0.5
    overlap_weight: float = 0.5


def compose_answer(
    question: str,
    question_vector: np.ndarray | None,
    index: PassageIndex,
    settings: AnswerSettings = AnswerSettings(),
) -> Answer:
    """Search, choose the answer sentence, decide whether it answers, and quote it."""
    started = time.perf_counter()
    depth = max(settings.top_k * 4, CANDIDATE_PASSAGES)
    hits = index.search(question, question_vector, k=depth, mode=settings.mode, weights=settings.weights)
    searched = time.perf_counter()
    if not hits:
        return Answer(question, False, None, (), 0.0, {"search": _ms(started, searched)})

    question_terms = set(tokenize([question])[0])
    best = _best_sentence(question_terms, question_vector, hits[:CANDIDATE_PASSAGES], index, settings)
    if best is None:
        leader = hits[0]
    else:
        leader = next(hit for hit in hits[:CANDIDATE_PASSAGES] if hit.passage.article_id == best[1].article_id
                      and best[1].index in hit.passage.sentence_ids)
    confidence = _confidence(best, hits)
    answered = best is not None and confidence >= settings.abstain_threshold

    chosen = [leader, *_without_near_duplicates(leader, hits, settings.top_k - 1)]
    quoted = tuple(
        _quote(hit, index.articles[hit.passage.article_id], best[1] if answered and hit is leader and best else None)
        for hit in chosen
    )
    sentence = None
    if answered and best is not None:
        score, chosen_sentence, cosine, overlap = best
        article = index.articles[chosen_sentence.article_id]
        sentence = AnswerSentence(chosen_sentence, article.title, article.date, score, cosine, overlap)
    finished = time.perf_counter()
    timings = {"search": _ms(started, searched), "answer": _ms(searched, finished)}
    return Answer(question, answered, sentence, quoted, confidence, timings)


def _best_sentence(
    question_terms: set[str],
    question_vector: np.ndarray | None,
    hits: Sequence[Hit],
    index: PassageIndex,
    settings: AnswerSettings,
) -> tuple[float, Sentence, float, float] | None:
    """(score, sentence, cosine, overlap) of the best sentence among the hits' sentences."""
    rows = list(dict.fromkeys(row for hit in hits for row in index.sentence_rows(hit.passage)))
    if not rows:
        return None
    sentences = [index.sentences[row] for row in rows]
    if question_vector is not None:
        cosines = index.sentence_vectors[rows] @ question_vector.astype(np.float32)
    else:
        cosines = np.zeros(len(rows), dtype=np.float32)
    overlaps = _idf_overlap(question_terms, [s.text for s in sentences], index)
    scores = settings.cosine_weight * cosines + settings.overlap_weight * overlaps
    best = int(np.argmax(scores))
    return float(scores[best]), sentences[best], float(cosines[best]), float(overlaps[best])


def _idf_overlap(question_terms: set[str], texts: Sequence[str], index: PassageIndex) -> np.ndarray:
    """Share of the question's idf weight that each text contains."""
    if not question_terms:
        return np.zeros(len(texts), dtype=np.float32)
    weights = {term: index.lexical.idf(term) for term in question_terms}
    total = sum(weights.values())
    return np.array(
        [sum(weights[t] for t in question_terms & set(terms)) / total for terms in tokenize(texts)],
        dtype=np.float32,
    )


def _confidence(best: tuple[float, Sentence, float, float] | None, hits: Sequence[Hit]) -> float:
    """How sure the bot is that the best sentence answers: its combined score."""
    if best is None:
        return 0.0
    return max(0.0, min(1.0, best[0]))


def _without_near_duplicates(leader: Hit, hits: Sequence[Hit], limit: int) -> list[Hit]:
    """Further hits, none repeating a sentence of one shown before it."""
    shown = [set(leader.passage.sentence_ids)]
    kept: list[Hit] = []
    for hit in hits:
        if len(kept) >= limit:
            break
        if hit.passage.id == leader.passage.id:
            continue
        ids = set(hit.passage.sentence_ids)
        if any(
            hit.passage.article_id == other.passage.article_id and ids & seen
            for other, seen in zip([leader, *kept], shown)
        ):
            continue
        kept.append(hit)
        shown.append(ids)
    return kept


def _quote(hit: Hit, article: Article, sentence: Sentence | None) -> QuotedPassage:
    highlight = None
    if sentence is not None:
        highlight = (sentence.start - hit.passage.start, sentence.end - hit.passage.start)
    return QuotedPassage(hit.passage, article.title, article.date, hit.score, hit.dense, hit.lexical, highlight)


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
