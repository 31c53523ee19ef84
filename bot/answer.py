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

from bot import abstain
from bot.answer_type import expected_type, holds_type
from index.errors import ArticlebotError
from index.lexical import QUESTION_WORDS, stem, words
from index.split import Passage, Sentence
from index.store import Hit, HybridWeights, PassageIndex

MAX_QUESTION_CHARS = 1000
# Sentences of this many of the best passages compete to be the answer (5 beat 2, 3 on SQuAD v1.1).
CANDIDATE_PASSAGES = 5


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
    paragraph_count: int = 0

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
    weights: HybridWeights = field(default_factory=HybridWeights)
    abstain_threshold: float = 0.12
    # How a candidate sentence is scored: meaning, the question's words (stemmed and as written),
    # holding the kind of thing asked for, and the score and rank of the passage it came from.
    # Chosen on SQuAD v1.1's even-numbered articles, confirmed on the odd ones (answer-sentence
    # accuracy per article .777 with cosine and overlap alone, .793 with all of them).
    cosine_weight: float = 0.5
    overlap_weight: float = 0.5
    exact_weight: float = 0.25
    type_weight: float = 0.1
    passage_weight: float = 0.05
    rank_weight: float = 0.0


@dataclass(frozen=True)
class SentenceChoice:
    """A candidate answer sentence, the best-ranked hit it stands in, and its scores."""

    sentence: Sentence
    hit: Hit
    rank: int
    score: float
    cosine: float
    overlap: float
    exact: float
    answer_type: float


@dataclass(frozen=True)
class Assessment:
    """Everything `compose_answer` decides from: hits, the best sentence, and the abstention features."""

    hits: list[Hit]
    best: SentenceChoice | None
    features: dict[str, float]
    confidence: float
    search_ms: float = 0.0


def compose_answer(
    question: str,
    question_vector: np.ndarray | None,
    index: PassageIndex,
    settings: AnswerSettings = AnswerSettings(),
) -> Answer:
    """Search, choose the answer sentence, decide whether it answers, and quote it."""
    started = time.perf_counter()
    assessment = assess(question, question_vector, index, settings)
    finished = time.perf_counter()
    hits, best = assessment.hits, assessment.best
    if not hits:
        return Answer(question, False, None, (), 0.0, {"search": _ms(started, finished)})
    answered = best is not None and assessment.confidence >= settings.abstain_threshold
    leader = hits[0] if best is None else best.hit
    chosen = [leader, *_without_near_duplicates(leader, hits, settings.top_k - 1)]
    highlighted = best.sentence if answered and best is not None else None
    quoted = tuple(_quote(hit, index, highlighted if hit is leader else None) for hit in chosen)
    sentence = None
    if answered and best is not None:
        article = index.articles[best.sentence.article_id]
        sentence = AnswerSentence(
            best.sentence, article.title, article.date, best.score, best.cosine, best.overlap
        )
    search = assessment.search_ms
    timings = {"search": search, "answer": round(_ms(started, finished) - search, 2)}
    return Answer(question, answered, sentence, quoted, assessment.confidence, timings)


def assess(
    question: str,
    question_vector: np.ndarray | None,
    index: PassageIndex,
    settings: AnswerSettings = AnswerSettings(),
) -> Assessment:
    """Search, score the candidate sentences, and rate how likely the best one answers."""
    started = time.perf_counter()
    depth = max(settings.top_k * 4, CANDIDATE_PASSAGES, 10)
    hits = index.search(question, question_vector, k=depth, mode=settings.mode, weights=settings.weights)
    searched = time.perf_counter()
    if not hits:
        return Assessment([], None, {}, 0.0, _ms(started, searched))
    terms = _QuestionTerms.of(question, index)
    best = _best_sentence(terms, question_vector, hits[:CANDIDATE_PASSAGES], index, settings)
    features = abstention_features(terms, best, hits)
    confidence = abstain.confidence(features, dense=question_vector is not None) if best is not None else 0.0
    return Assessment(hits, best, features, confidence, _ms(started, searched))


@dataclass(frozen=True)
class _QuestionTerms:
    """The question's content words, as written and stemmed, with their idf, and the kind asked for."""

    written: dict[str, str]  # word as written -> its stem
    idf: dict[str, float]  # stem -> idf
    kind: str | None
    negated: bool
    names: tuple[str, ...]  # capitalised words after the first, lower-cased
    numbers: tuple[str, ...]
    length: int

    @classmethod
    def of(cls, question: str, index: PassageIndex) -> _QuestionTerms:
        written = {word: stem(word) for word in words(question) if word not in QUESTION_WORDS}
        idf = {term: index.lexical.idf(term) for term in written.values()}
        negated = bool(_NEGATION.search(question))
        names = tuple(name.lower() for name in _QUESTION_NAME.findall(question))
        numbers = tuple(_QUESTION_NUMBER.findall(question))
        return cls(written, idf, expected_type(question), negated, names, numbers, len(question.split()))


_QUESTION_NAME = re.compile(r"(?<=\w )[A-Z][\w'-]+")
_QUESTION_NUMBER = re.compile(r"\d[\d,.]*")
_NEGATION = re.compile(r"\b(?:not|never|no|none|nor|n't|without)\b|n't\b", re.IGNORECASE)


def _best_sentence(
    terms: _QuestionTerms,
    question_vector: np.ndarray | None,
    hits: Sequence[Hit],
    index: PassageIndex,
    settings: AnswerSettings,
) -> SentenceChoice | None:
    """The best-scoring sentence among the hits' sentences."""
    rows: dict[int, tuple[int, Hit]] = {}
    for rank, hit in enumerate(hits):
        for row in index.sentence_rows(hit.passage):
            rows.setdefault(row, (rank, hit))
    if not rows:
        return None
    order = list(rows)
    sentences = [index.sentences[row] for row in order]
    if question_vector is not None:
        cosines = index.sentence_vectors[order] @ question_vector.astype(np.float32)
    else:
        cosines = np.zeros(len(order), dtype=np.float32)
    overlaps, exacts = _idf_overlap(terms, [s.text for s in sentences])
    question_words = set(terms.written)
    types = np.array(
        [float(holds_type(terms.kind, s.text, question_words)) for s in sentences], dtype=np.float32
    )
    ranks = np.array([rows[row][0] for row in order], dtype=np.float32)
    passage_scores = np.array([rows[row][1].score for row in order], dtype=np.float32)
    if settings.mode == "lexical":
        # Raw BM25 has no fixed scale: relative to the best passage's.
        passage_scores = passage_scores / max(float(hits[0].score), 1e-9)
    scores = (
        settings.cosine_weight * cosines
        + settings.overlap_weight * overlaps
        + settings.exact_weight * exacts
        + settings.type_weight * types
        + settings.passage_weight * passage_scores
        - settings.rank_weight * ranks
    )
    best = int(np.argmax(scores))
    rank, hit = rows[order[best]]
    return SentenceChoice(
        sentences[best],
        hit,
        rank,
        float(scores[best]),
        float(cosines[best]),
        float(overlaps[best]),
        float(exacts[best]),
        float(types[best]),
    )


def _idf_overlap(terms: _QuestionTerms, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Share of the question's idf weight each text holds: by stem, and by the word as written."""
    if not terms.idf:
        zeros = np.zeros(len(texts), dtype=np.float32)
        return zeros, zeros
    total = sum(terms.idf.values())
    by_stem = np.zeros(len(texts), dtype=np.float32)
    as_written = np.zeros(len(texts), dtype=np.float32)
    for i, text in enumerate(texts):
        text_words = set(words(text))
        text_stems = {stem(word) for word in text_words}
        by_stem[i] = sum(weight for term, weight in terms.idf.items() if term in text_stems) / total
        # A stem counts once, when any of the question's spellings of it appears as written.
        exact = {term for word, term in terms.written.items() if word in text_words}
        as_written[i] = sum(terms.idf[term] for term in exact) / total
    return by_stem, as_written


def abstention_features(
    terms: _QuestionTerms, best: SentenceChoice | None, hits: Sequence[Hit]
) -> dict[str, float]:
    """What the abstention model weighs: how well the best sentence and passage match the question.

    Most unanswerable questions in SQuAD v2.0 are on the article's topic, so besides similarity the
    model looks at what of the question is missing: its rarest word not in the best sentence or
    passage, names and numbers the passage does not hold, words none of the top passages hold.
    """
    top = hits[0]
    second_dense = max((hit.dense for hit in hits[1:]), default=0.0)
    total_idf = sum(terms.idf.values()) or 1.0
    features = {
        "top_dense": _finite(top.dense),
        "top_lexical": _finite(top.lexical) / (2.5 * total_idf),
        "dense_gap": _finite(top.dense) - _finite(second_dense),
        "sentence_cosine": 0.0,
        "sentence_overlap": 0.0,
        "sentence_exact": 0.0,
        "sentence_type": 0.0,
        "asks_type": float(terms.kind is not None),
        "question_terms": float(len(terms.idf)),
        "negated": float(terms.negated),
        "missing_idf": 0.0,
        "passage_missing_max_idf": 0.0,
        "passage_missing_share": 0.0,
        "passage_missing_terms": 0.0,
        "sentence_missing_max_idf": 0.0,
        "top3_missing_terms": float(len(terms.idf)),
        "names_missing": float(len(terms.names)),
        "numbers_missing": float(len(terms.numbers)),
        "question_words": float(terms.length),
        "sentence_score": 0.0,
        "top_score": _finite(top.score),
    }
    top3_stems: set[str] = set()
    for hit in hits[:3]:
        top3_stems.update(stem(word) for word in words(hit.passage.text))
    features["top3_missing_terms"] = float(sum(1 for term in terms.idf if term not in top3_stems))
    if best is not None:
        passage_text = best.hit.passage.text
        passage_stems = {stem(word) for word in words(passage_text)}
        passage_missing = [weight for term, weight in terms.idf.items() if term not in passage_stems]
        lowered = passage_text.lower()
        features.update(
            passage_missing_max_idf=max(passage_missing, default=0.0),
            passage_missing_share=sum(passage_missing) / total_idf,
            passage_missing_terms=float(len(passage_missing)),
            names_missing=float(sum(1 for name in terms.names if name not in lowered)),
            numbers_missing=float(sum(1 for number in terms.numbers if number not in passage_text)),
            sentence_score=best.score,
        )
    if best is not None:
        sentence_stems = {stem(word) for word in words(best.sentence.text)}
        missing = [weight for term, weight in terms.idf.items() if term not in sentence_stems]
        features.update(
            sentence_missing_max_idf=max(missing, default=0.0),
            sentence_cosine=best.cosine,
            sentence_overlap=best.overlap,
            sentence_exact=best.exact,
            sentence_type=best.answer_type,
            missing_idf=max(missing, default=0.0) / total_idf,
        )
    return features


def _finite(value: float) -> float:
    return 0.0 if value != value else float(value)


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
            for other, seen in zip([leader, *kept], shown, strict=True)
        ):
            continue
        kept.append(hit)
        shown.append(ids)
    return kept


def _quote(hit: Hit, index: PassageIndex, sentence: Sentence | None) -> QuotedPassage:
    article = index.articles[hit.passage.article_id]
    highlight = None
    if sentence is not None:
        highlight = (sentence.start - hit.passage.start, sentence.end - hit.passage.start)
    return QuotedPassage(
        hit.passage,
        article.title,
        article.date,
        hit.score,
        hit.dense,
        hit.lexical,
        highlight,
        index.paragraph_counts.get(article.id, 0),
    )


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
