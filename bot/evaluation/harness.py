"""Index SQuAD articles the way the bot indexes news, ask their questions, and score the answers.

Two settings: per-article (one index per article, asked that article's questions: the bot's
everyday use) and pooled (every paragraph of the file in one index). Every passage and sentence
is embedded once and shared by both settings and every retrieval mode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.answer import AnswerSettings, Assessment, assess
from bot.conversation import Conversation, Turn
from bot.dialogue import Encode, plan
from bot.evaluation.metrics import (
    answered_rates,
    auroc,
    contains_answer,
    exact_match,
    first_hit_rank,
    hit_at,
    mrr_at,
    token_f1,
)
from bot.evaluation.squad import SquadArticle, SquadQuestion
from bot.followup import Kind, interpret
from bot.reader import Reader
from index.articles import Article
from index.embed import Embedder, embed_split
from index.local.bm25 import LexicalIndex
from index.local.search import PassageIndex
from index.split import Passage, Sentence, SplitSettings, split_article
from index.store import SearchIndex, SearchSettings

SETTINGS = ("per-article", "pooled")
# Without the reader, abstain below this cosine-and-overlap mean (the pre-reader fallback's scale).
BASELINE_THRESHOLD = 0.3
RANK_DEPTH = 10


@dataclass
class Outcome:
    """What the bot did with one question in one setting and mode."""

    question: SquadQuestion
    rank: int | None  # 1-based rank of the first passage holding a gold answer, within RANK_DEPTH
    sentence_correct: bool
    confidence: float
    # The short answer (the sentence, without a reader) scored as the official SQuAD script does.
    exact: float = 0.0
    f1: float = 0.0


@dataclass
class Result:
    """The figures for one setting and retrieval mode."""

    setting: str
    mode: str
    reader: bool
    questions: int
    answerable: int
    hit1: float
    hit3: float
    hit5: float
    mrr10: float
    sentence_accuracy: float
    exact: float
    f1: float
    auroc: float | None
    answered_accuracy: float | None
    answered_precision: float | None
    answered_recall: float | None
    seconds: float


@dataclass
class Corpus:
    """The SQuAD articles split into sentences and passages, with their vectors."""

    articles: list[Article]
    sentences: list[list[Sentence]]
    passages: list[list[Passage]]
    sentence_vectors: list[np.ndarray]
    passage_vectors: list[np.ndarray]

    def index_of(self, rows: Sequence[int]) -> PassageIndex:
        """An in-memory index over the articles at `rows`."""
        passages = [p for row in rows for p in self.passages[row]]
        dimension = self.passage_vectors[0].shape[1] if self.passage_vectors else 0
        return PassageIndex(
            [self.articles[row] for row in rows],
            [s for row in rows for s in self.sentences[row]],
            passages,
            _stack([self.sentence_vectors[row] for row in rows], dimension),
            _stack([self.passage_vectors[row] for row in rows], dimension),
            LexicalIndex.build([p.text for p in passages]),
        )


def squad_article(number: int, article: SquadArticle) -> Article:
    """A SQuAD article as a news article: its paragraphs separated by blank lines."""
    return Article(
        id=f"squad-{number:03d}",
        path=f"squad:{article.title}",
        title=article.title.replace("_", " "),
        text="\n\n".join(article.paragraphs),
    )


def prepare(
    squad: Sequence[SquadArticle], embedder: Embedder, split: SplitSettings, *, progress: bool = False
) -> Corpus:
    """Split every article and embed its passages and sentences, in a few large batches."""
    articles = [squad_article(number, article) for number, article in enumerate(squad)]
    parts = [split_article(article, split, embedder.count_tokens) for article in articles]
    sentences = [part[0] for part in parts]
    passages = [part[1] for part in parts]
    sentence_vectors, passage_vectors = embed_split(parts, embedder, split.vectors, progress=progress)
    return Corpus(
        articles,
        sentences,
        passages,
        _unstack(sentence_vectors, [len(group) for group in sentences]),
        _unstack(passage_vectors, [len(group) for group in passages]),
    )


def select_questions(
    squad: Sequence[SquadArticle], limit: int | None, sample: int | None = None
) -> list[list[SquadQuestion]]:
    """Each article's questions: the file's first `limit`, or `sample` spread evenly over the file."""
    total = sum(len(a.questions) for a in squad)
    if sample is not None and sample < total:
        # Every k-th question of the file, so every article is asked about in proportion.
        keep = {round(i * total / sample) for i in range(sample)}
        numbered = iter(range(total))
        return [[q for q in article.questions if next(numbered) in keep] for article in squad]
    chosen: list[list[SquadQuestion]] = []
    left = limit if limit is not None else total
    for article in squad:
        take = list(article.questions[: max(0, left)])
        left -= len(take)
        chosen.append(take)
    return chosen


def run_setting(
    setting: str,
    corpus: Corpus,
    questions: Sequence[Sequence[SquadQuestion]],
    vectors: dict[str, np.ndarray],
    search: SearchSettings,
    settings: AnswerSettings,
    reader: Reader | None,
    tick: Callable[[int], None] = lambda done: None,
    after_unrelated: Encode | None = None,
    pooled: SearchIndex | None = None,
) -> list[Outcome]:
    """Ask every question in one setting with `search` (its mode included), read or not. With
    `after_unrelated` (an encoder for questions a conversation rewrites), each question is asked
    as the follow-up of an answer to another article's question; the pooled setting asks `pooled`
    when given (another backend's index of every article)."""
    outcomes: list[Outcome] = []
    unrelated = _unrelated_turns(corpus, questions) if after_unrelated is not None else {}
    for index, asked in _indexes(setting, corpus, questions, pooled):
        for question in asked:
            vector = None if search.mode == "lexical" else vectors[question.id]
            if after_unrelated is None:
                assessment = assess(question.text, vector, index, reader, search, settings)
            else:
                previous = Conversation((unrelated[question.id],))
                assessment = _assess_in_conversation(
                    question, previous, vector, after_unrelated, index, reader, search, settings
                )
            outcomes.append(score_question(question, assessment))
        tick(len(asked))
    return outcomes


def _unrelated_turns(corpus: Corpus, questions: Sequence[Sequence[SquadQuestion]]) -> dict[str, Turn]:
    """For each question, an answered turn about the next article that has an answerable question."""
    firsts = [
        (row, next((q for q in group if q.answerable), None)) for row, group in enumerate(questions) if group
    ]
    firsts = [(row, q) for row, q in firsts if q is not None]
    turns: dict[str, Turn] = {}
    for row, group in enumerate(questions):
        others = [(r, q) for r, q in firsts if r != row]
        if not others:
            continue
        other_row, other = next(((r, q) for r, q in others if r > row), others[0])
        assert other is not None
        turn = Turn(other.text, True, corpus.articles[other_row].id, None, None, None, other.answers[0])
        turns.update((question.id, turn) for question in group)
    return turns


def seeming_follow_ups(corpus: Corpus, questions: Sequence[Sequence[SquadQuestion]]) -> int:
    """How many questions the text rules alone read as leaning on their unrelated turn."""
    unrelated = _unrelated_turns(corpus, questions)
    return sum(
        interpret(q.text, Conversation((unrelated[q.id],))).kind is not Kind.ALONE
        for group in questions
        for q in group
        if q.id in unrelated
    )


def _assess_in_conversation(
    question: SquadQuestion,
    conversation: Conversation,
    vector: np.ndarray | None,
    encode: Encode,
    index: SearchIndex,
    reader: Reader | None,
    search: SearchSettings,
    settings: AnswerSettings,
) -> Assessment:
    """What `respond` would search and read for the question after `conversation`."""
    reading, read_vector = plan(
        question.text,
        conversation,
        lambda text: vector if text == question.text else encode(text),
        index,
        search,
    )
    if reading.kind in (Kind.GIST, Kind.NEXT):
        return Assessment([], None, 0.0)  # an answer of no sentence the question's gold answer is in
    previous = reading.previous if reading.kind is Kind.ELSE else None
    exclude = previous.given() if previous is not None else None
    return assess(
        reading.question, read_vector, index, reader, search, settings, within=reading.within, exclude=exclude
    )


def score_question(question: SquadQuestion, assessment: Assessment) -> Outcome:
    """Where the first answering passage ranks, and whether the chosen sentence holds an answer."""
    answers = question.answers
    rank = first_hit_rank(
        [contains_answer(hit.passage.text, answers) for hit in assessment.hits[:RANK_DEPTH]]
    )
    best = assessment.best
    correct = best is not None and contains_answer(best.sentence.text, answers)
    predicted = "" if best is None else best.short.text if best.short else best.sentence.text
    return Outcome(
        question,
        rank if answers else None,
        correct,
        assessment.confidence,
        exact_match(predicted, answers) if answers else 0.0,
        token_f1(predicted, answers) if answers else 0.0,
    )


def summarise(
    setting: str, mode: str, reader: bool, outcomes: Sequence[Outcome], threshold: float, seconds: float
) -> Result:
    answerable = [o for o in outcomes if o.question.answerable]
    ranks = [o.rank for o in answerable]
    has_negatives = any(not o.question.answerable for o in outcomes)
    rates = (
        answered_rates(
            [o.confidence >= threshold for o in outcomes], [o.question.answerable for o in outcomes]
        )
        if has_negatives
        else None
    )
    share = len(answerable) or 1
    return Result(
        setting=setting,
        mode=mode,
        reader=reader,
        questions=len(outcomes),
        answerable=len(answerable),
        hit1=hit_at(ranks, 1),
        hit3=hit_at(ranks, 3),
        hit5=hit_at(ranks, 5),
        mrr10=mrr_at(ranks, RANK_DEPTH),
        sentence_accuracy=sum(o.sentence_correct for o in answerable) / len(answerable)
        if answerable
        else float("nan"),
        exact=sum(o.exact for o in answerable) / share,
        f1=sum(o.f1 for o in answerable) / share,
        auroc=auroc([o.confidence for o in outcomes], [o.question.answerable for o in outcomes])
        if has_negatives
        else None,
        answered_accuracy=rates["accuracy"] if rates else None,
        answered_precision=rates["precision"] if rates else None,
        answered_recall=rates["recall"] if rates else None,
        seconds=round(seconds, 1),
    )


def evaluate(
    corpus: Corpus,
    questions: Sequence[Sequence[SquadQuestion]],
    vectors: dict[str, np.ndarray],
    search: SearchSettings,
    base: AnswerSettings,
    settings_names: Sequence[str],
    modes: Sequence[str],
    readers: Sequence[Reader | None],
    tick: Callable[[int], None] = lambda done: None,
    outcomes_out: list[dict[str, object]] | None = None,
    after_unrelated: Encode | None = None,
    pooled: SearchIndex | None = None,
) -> list[Result]:
    """Every setting and mode asked with each reader (None: without one), summarised; each question's
    outcome is appended to `outcomes_out` when given."""
    results = []
    article_of = {q.id: row for row, group in enumerate(questions) for q in group}
    for setting in settings_names:
        for mode in modes:
            for reader in readers:
                started = time.perf_counter()
                searching = dataclasses.replace(search, mode=mode)
                answer_settings = base
                if reader is None:
                    # The baseline's confidence is a cosine-and-overlap mean, not a probability.
                    answer_settings = dataclasses.replace(base, abstain_threshold=BASELINE_THRESHOLD)
                outcomes = run_setting(
                    setting,
                    corpus,
                    questions,
                    vectors,
                    searching,
                    answer_settings,
                    reader,
                    tick,
                    after_unrelated,
                    pooled,
                )
                seconds = time.perf_counter() - started
                if outcomes_out is not None:
                    outcomes_out.extend(
                        {
                            "setting": setting,
                            "mode": mode,
                            "reader": reader is not None,
                            "id": o.question.id,
                            "article": article_of[o.question.id],
                            "answerable": o.question.answerable,
                            "confidence": o.confidence,
                            "rank": o.rank,
                            "sentence_correct": o.sentence_correct,
                            "exact": o.exact,
                            "f1": o.f1,
                        }
                        for o in outcomes
                    )
                results.append(
                    summarise(
                        setting,
                        mode,
                        reader is not None,
                        outcomes,
                        answer_settings.abstain_threshold,
                        seconds,
                    )
                )
    return results


def _indexes(
    setting: str,
    corpus: Corpus,
    questions: Sequence[Sequence[SquadQuestion]],
    pooled_index: SearchIndex | None = None,
) -> Iterator[tuple[SearchIndex, list[SquadQuestion]]]:
    if setting == "per-article":
        for row, asked in enumerate(questions):
            if asked:
                yield corpus.index_of([row]), list(asked)
    elif setting == "pooled":
        pooled = pooled_index or corpus.index_of(range(len(corpus.articles)))
        for asked in questions:
            if asked:
                yield pooled, list(asked)
    else:
        raise ValueError(f"unknown setting {setting!r}: choose one of {', '.join(SETTINGS)}")


class CachingEmbedder:
    """An embedder that keeps each batch's vectors on disk, keyed by model and texts."""

    def __init__(self, inner: Embedder, folder: Path) -> None:
        self.inner = inner
        self.folder = folder
        self.model_name = inner.model_name
        self.dimension = inner.dimension

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        digest = hashlib.sha256(self.model_name.encode())
        for text in texts:
            digest.update(text.encode("utf-8"))
            digest.update(b"\0")
        path = self.folder / f"{digest.hexdigest()[:24]}.npy"
        if path.exists():
            return np.load(path)
        vectors = self.inner.encode(texts, batch_size=batch_size, progress=progress)
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npy")
        np.save(temporary, vectors)
        temporary.replace(path)
        return vectors

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)


def _stack(blocks: Sequence[np.ndarray], dimension: int) -> np.ndarray:
    return np.concatenate(blocks) if blocks else np.zeros((0, dimension), dtype=np.float32)


def _unstack(vectors: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    offsets = np.cumsum([0, *sizes])
    return [vectors[offsets[i] : offsets[i + 1]] for i in range(len(sizes))]
