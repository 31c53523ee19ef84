"""Question → Answer: the one function every front end calls.

The answer is always a quote. The reader (bot/reader.py) reads the best passages the search
returns, chooses one (`choice_scores`), and marks the short answer in it; the sentence holding
that short answer is the answer sentence. When the reader's probability is below the
threshold the answer says so, and the closest passage is shown as the closest match, not as an
answer. Without a reader (the baseline `articlebot eval` compares against), the sentence that
matches the question best in meaning and words is chosen, and no short answer is given.
"""

from __future__ import annotations

import dataclasses
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bot.answer_type import expected_type, holds_type
from bot.reader import ABSTAIN_THRESHOLD, READER_CHOICES, Reader, Reading
from index.errors import ArticlebotError
from index.lexical import QUESTION_WORDS, stem, words
from index.split import Passage, Sentence
from index.store import Hit, SearchIndex, SearchSettings, standardise

MAX_QUESTION_CHARS = 1000
# The reader reads this many of the best passages; without it, their sentences compete to be the
# answer (5 beat 2, 3 on SQuAD v1.1).
CANDIDATE_PASSAGES = 5
# Which passage the reader's answer comes from: its answerable logit, plus these shares of the
# score of the short answer it found there and of the search's score for the passage (standard
# scores among the passages read, so alike in every search mode). Fitted by scripts/fit_choice.py
# on 2,000 questions of SQuAD v1.1's last 42 training articles: the answer sentence .855 -> .867
# there, and .834 -> .848 on the v1.1 dev sample, which it never saw. The probability that
# decides answer or abstain stays the logit's alone: adding these shares did not tell SQuAD
# v2.0's unanswerable questions apart any better (AUROC .712 alone, .701 to .712 with them).
SPAN_WEIGHT = 0.3
SEARCH_WEIGHT = 0.75
# The cascade: when set, the reader reads the search's best passage first and stops there when its
# probability is at least this, else reads the other candidates too and chooses among them all.
# Off until fitted on training articles (scripts/fit_choice.py prints each stop's share and cost).
# On the bot's own question set 0.85 stopped 31% of questions, answer sentence .857 -> .873,
# AUROC .848 -> .848 per article (.862 -> .861 pooled); 0.8 stopped 40%, AUROC -.004 and -.007.
# Fitted on training articles 400:442 (2,000 questions), 0.95 stops 45% at no cost there (.867 ->
# .868); on SQuAD v1.1 dev (1,500, per article) it costs answer sentence .848 -> .845, EM .625 ->
# .621, F1 .721 -> .716 for 31% less reading time, and one answer of the bundled article's bench is
# no faster (152 -> 158 ms p50): off.
CASCADE_STOP: float | None = None


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
    # The short answer inside the highlight, as characters of the passage.
    short: tuple[int, int] | None = None

    @property
    def text(self) -> str:
        return self.passage.text

    @property
    def paragraph(self) -> int:
        return self.passage.paragraph


@dataclass(frozen=True)
class ShortAnswer:
    """The answer itself, inside the answer sentence; `start`/`end` index `Article.text`."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class AnswerSentence:
    """The sentence that answers, where it stands in its article, and the short answer in it."""

    sentence: Sentence
    title: str
    date: str | None
    score: float
    short: ShortAnswer | None = None

    @property
    def text(self) -> str:
        return self.sentence.text

    @property
    def short_span(self) -> tuple[int, int] | None:
        """Where the short answer stands within `text`, or None when there is none."""
        if self.short is None:
            return None
        return self.short.start - self.sentence.start, self.short.end - self.sentence.start


@dataclass(frozen=True)
class Answer:
    """What the bot says to a question. `passages[0]` holds the answer sentence, or the closest match."""

    question: str
    answered: bool
    sentence: AnswerSentence | None
    passages: tuple[QuotedPassage, ...]
    confidence: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The question as the conversation made it read ("why?" → "why was Onik Gasparian fired?"),
    # or None when it was read as asked.
    read_as: str | None = None
    # ANSWER: a quote answering the question; GIST: the opening of the article in focus;
    # OVERVIEW: the articles, each with its opening sentence (`passages`, newest first).
    kind: str = "answer"
    # The article the answer was sought in alone (the one in focus), or None: every article.
    focus: str | None = None


ANSWER, GIST, OVERVIEW = "answer", "gist", "overview"


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
    """The `[answer]` section: below `abstain_threshold` the bot says the article does not answer."""

    abstain_threshold: float = ABSTAIN_THRESHOLD
    # The reader's runtime: "onnx-int8" (int8 linear layers: about half the time per answer of
    # "onnx", the float32 graph, and the same quality within .002 on SQuAD's whole dev sets; the
    # model card's figures).
    reader: str = "onnx-int8"
    # Without a reader, how a candidate sentence is scored: meaning, the question's words (stemmed
    # and as written), holding the kind asked for, and the score and rank of its passage.
    # Chosen on SQuAD v1.1's even-numbered articles, confirmed on the odd ones (answer-sentence
    # accuracy per article .777 with cosine and overlap alone, .793 with all of them).
    cosine_weight: float = 0.5
    overlap_weight: float = 0.5
    exact_weight: float = 0.25
    type_weight: float = 0.1
    passage_weight: float = 0.05
    rank_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.abstain_threshold <= 1.0:
            raise ValueError(f"abstain_threshold is {self.abstain_threshold}: use a number from 0 to 1")
        if self.reader not in READER_CHOICES:
            raise ValueError(f"reader is {self.reader!r}: use {' or '.join(map(repr, READER_CHOICES))}")


@dataclass(frozen=True)
class SentenceChoice:
    """The answer sentence, the hit it stands in, its score, and the short answer in it."""

    sentence: Sentence
    hit: Hit
    score: float
    short: ShortAnswer | None = None


@dataclass(frozen=True)
class Assessment:
    """Everything `compose_answer` decides from: the hits, the answer sentence, and how sure it is."""

    hits: list[Hit]
    best: SentenceChoice | None
    confidence: float
    search_ms: float = 0.0
    read_ms: float = 0.0


def compose_answer(
    question: str,
    question_vector: np.ndarray | None,
    index: SearchIndex,
    reader: Reader | None,
    search: SearchSettings = SearchSettings(),
    settings: AnswerSettings = AnswerSettings(),
    *,
    within: str | None = None,
    exclude: Given | None = None,
    near: str | None = None,
) -> Answer:
    """Search (within one article, if given), read, decide whether the best reading answers, and
    quote it; what `exclude` holds (answers given before) is never the answer; the passage `near`
    names (a follow-up's last answer) is among those read when the search found it."""
    started = time.perf_counter()
    assessment = assess(
        question, question_vector, index, reader, search, settings, within=within, exclude=exclude, near=near
    )
    finished = time.perf_counter()
    hits, best = assessment.hits, assessment.best
    if not hits:
        return Answer(question, False, None, (), 0.0, {"search": _ms(started, finished)})
    answered = best is not None and assessment.confidence >= settings.abstain_threshold
    leader = hits[0] if best is None else best.hit
    chosen = [leader, *_without_near_duplicates(leader, hits, search.top_k - 1)]
    shown = best if answered else None
    quoted = tuple(_quote(hit, index, shown if hit is leader else None) for hit in chosen)
    sentence = None
    if answered and best is not None:
        article = index.articles[best.sentence.article_id]
        sentence = AnswerSentence(best.sentence, article.title, article.date, best.score, best.short)
    search_ms, read_ms = assessment.search_ms, assessment.read_ms
    timings = {
        "search": search_ms,
        "read": read_ms,
        "answer": round(_ms(started, finished) - search_ms - read_ms, 2),
    }
    return Answer(question, answered, sentence, quoted, assessment.confidence, timings)


def assess(
    question: str,
    question_vector: np.ndarray | None,
    index: SearchIndex,
    reader: Reader | None,
    search: SearchSettings = SearchSettings(),
    settings: AnswerSettings = AnswerSettings(),
    *,
    within: str | None = None,
    exclude: Given | None = None,
    near: str | None = None,
) -> Assessment:
    """Search, choose the answer sentence, and rate how likely it answers the question."""
    started = time.perf_counter()
    hits = search_hits(question, question_vector, index, search, within)
    if near is not None:
        hits = _reading_passage(hits, near)
    searched = time.perf_counter()
    if not hits:
        return Assessment([], None, 0.0, _ms(started, searched))
    if reader is not None:
        read = _read(question, hits[:CANDIDATE_PASSAGES], index, reader, exclude)
        if read is None:
            return Assessment(hits, None, 0.0, _ms(started, searched), _ms(searched, time.perf_counter()))
        choice, confidence = read
        return Assessment(
            hits, choice, confidence, _ms(started, searched), _ms(searched, time.perf_counter())
        )
    terms = _QuestionTerms.of(question, index)
    lexical = search.mode == "lexical"
    best, cosine, overlap = _best_sentence(
        terms, question_vector, hits[:CANDIDATE_PASSAGES], index, settings, lexical
    )
    # The baseline's confidence: how well the sentence matches the question in meaning and words.
    confidence = max(0.0, min(1.0, 0.5 * cosine + 0.5 * overlap)) if best is not None else 0.0
    return Assessment(hits, best, confidence, _ms(started, searched))


def search_hits(
    question: str,
    question_vector: np.ndarray | None,
    index: SearchIndex,
    search: SearchSettings,
    within: str | None = None,
) -> list[Hit]:
    """The passages an answer is chosen from (the first CANDIDATE_PASSAGES) and quoted beside it."""
    depth = max(search.top_k * 4, CANDIDATE_PASSAGES, 10)
    return index.search(
        question, question_vector, k=depth, settings=search, within=None if within is None else (within,)
    )


def _reading_passage(hits: list[Hit], passage_id: str) -> list[Hit]:
    """The hits with the passage `passage_id` among the first CANDIDATE_PASSAGES (in the last
    place, its own scores kept) when the search found it further down."""
    at = next((i for i, hit in enumerate(hits) if hit.passage.id == passage_id), None)
    last = CANDIDATE_PASSAGES - 1
    if at is None or at <= last:
        return hits
    return [*hits[:last], hits[at], *hits[last:at], *hits[at + 1 :]]


def _read(
    question: str,
    hits: Sequence[Hit],
    index: SearchIndex,
    reader: Reader,
    exclude: Given | None = None,
) -> tuple[SentenceChoice, float] | None:
    """The reader's choice among the passages, the sentence holding its short answer, and the
    probability that it answers; None when every reading gives what `exclude` holds. With the
    cascade on, the best passage is read first, and alone when it surely answers."""
    if CASCADE_STOP is None:
        readings = reader.read(question, [hit.passage.text for hit in hits])
    else:
        readings = reader.read(question, [hits[0].passage.text])
        first = read_choice(hits[0], readings[0], index)
        if readings[0].probability >= CASCADE_STOP and (exclude is None or not exclude.holds(first)):
            return first, readings[0].probability
        readings += reader.read(question, [hit.passage.text for hit in hits[1:]])
    scores = choice_scores(readings, hits)
    for rank in np.argsort(-scores, kind="stable"):
        choice = read_choice(hits[rank], readings[rank], index)
        if exclude is None or not exclude.holds(choice):
            return choice, readings[rank].probability
    return None


@dataclass(frozen=True)
class Given:
    """Answers given before ("what else?" asks for another): their sentences, and their short
    answers, since the same person or figure may stand in another sentence too."""

    sentences: frozenset[tuple[str, int]] = frozenset()  # (article id, sentence number)
    answers: tuple[str, ...] = ()

    def holds(self, choice: SentenceChoice) -> bool:
        if (choice.sentence.article_id, choice.sentence.index) in self.sentences:
            return True
        if choice.short is None:
            return False
        named = set(words(choice.short.text))
        return any(named & set(words(answer)) for answer in self.answers)


def choice_scores(
    readings: Sequence[Reading],
    hits: Sequence[Hit],
    span_weight: float = SPAN_WEIGHT,
    search_weight: float = SEARCH_WEIGHT,
) -> np.ndarray:
    """How strongly each read passage is chosen to answer: the higher, the likelier."""
    logits = np.array([reading.logit for reading in readings])
    spans = np.array([reading.span_score for reading in readings])
    searched = standardise(np.array([hit.score for hit in hits], dtype=np.float64))
    return logits + span_weight * spans + search_weight * searched


def read_choice(hit: Hit, reading: Reading, index: SearchIndex) -> SentenceChoice:
    """The sentence of `hit` holding the reader's short answer, and that answer within it."""
    start = hit.passage.start + reading.span[0]
    end = hit.passage.start + reading.span[1]
    sentences = index.sentences_of(hit.passage)
    sentence = next((s for s in sentences if s.start <= start < s.end), sentences[0])
    # A span that runs past its sentence is cut at the sentence's end: the answer stays one quote.
    start, end = max(start, sentence.start), min(end, sentence.end)
    text = index.articles[hit.passage.article_id].text
    short = ShortAnswer(text[start:end], start, end) if end > start else None
    return SentenceChoice(sentence, hit, reading.probability, short)


@dataclass(frozen=True)
class _QuestionTerms:
    """The question's content words, as written and stemmed, with their idf, and the kind asked for."""

    written: dict[str, str]  # word as written -> its stem
    idf: dict[str, float]  # stem -> idf
    kind: str | None

    @classmethod
    def of(cls, question: str, index: SearchIndex) -> _QuestionTerms:
        written = {word: stem(word) for word in words(question) if word not in QUESTION_WORDS}
        idf = {term: index.idf(term) for term in written.values()}
        return cls(written, idf, expected_type(question))


def _best_sentence(
    terms: _QuestionTerms,
    question_vector: np.ndarray | None,
    hits: Sequence[Hit],
    index: SearchIndex,
    settings: AnswerSettings,
    lexical: bool,
) -> tuple[SentenceChoice | None, float, float]:
    """The best-scoring sentence among the hits' sentences, with its cosine and word overlap."""
    # Each sentence once (passages overlap), with the rank and hit of the first passage holding it.
    rows: dict[tuple[str, int], tuple[int, Hit, Sentence, np.ndarray | None]] = {}
    for rank, hit in enumerate(hits):
        vectors = index.sentence_vectors_of(hit.passage) if question_vector is not None else None
        for number, sentence in enumerate(index.sentences_of(hit.passage)):
            vector = vectors[number] if vectors is not None else None
            rows.setdefault((sentence.article_id, sentence.index), (rank, hit, sentence, vector))
    if not rows:
        return None, 0.0, 0.0
    order = list(rows)
    sentences = [rows[key][2] for key in order]
    if question_vector is not None:
        cosines = np.array([rows[key][3] for key in order]) @ question_vector.astype(np.float32)
    else:
        cosines = np.zeros(len(order), dtype=np.float32)
    overlaps, exacts = _idf_overlap(terms, [s.text for s in sentences])
    question_words = set(terms.written)
    types = np.array(
        [float(holds_type(terms.kind, s.text, question_words)) for s in sentences], dtype=np.float32
    )
    ranks = np.array([rows[key][0] for key in order], dtype=np.float32)
    passage_scores = np.array([rows[key][1].score for key in order], dtype=np.float32)
    if lexical:
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
    hit = rows[order[best]][1]
    return (
        SentenceChoice(sentences[best], hit, float(scores[best])),
        float(cosines[best]),
        float(overlaps[best]),
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


def _quote(hit: Hit, index: SearchIndex, best: SentenceChoice | None) -> QuotedPassage:
    quoted = quote_passage(hit.passage, index, best.sentence if best is not None else None)
    short = None
    if best is not None and best.short is not None:
        short = (best.short.start - hit.passage.start, best.short.end - hit.passage.start)
    return dataclasses.replace(quoted, score=hit.score, dense=hit.dense, lexical=hit.lexical, short=short)


def quote_passage(passage: Passage, index: SearchIndex, highlight: Sentence | None = None) -> QuotedPassage:
    """A passage as shown, with `highlight` (a sentence, or a run of them, of its article) marked."""
    article = index.articles[passage.article_id]
    span = None
    if highlight is not None:
        span = (
            max(highlight.start, passage.start) - passage.start,
            min(highlight.end, passage.end) - passage.start,
        )
    return QuotedPassage(
        passage, article.title, article.date, 0.0, 0.0, 0.0, span, index.paragraph_count(article.id)
    )


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
