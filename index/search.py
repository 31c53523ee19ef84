"""The corpus in memory and its search: passages, sentences, articles, and score fusion."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from index.articles import Article
from index.dense import DEFAULT_ANN_THRESHOLD, flat_index
from index.lexical import LexicalIndex
from index.manifest import Manifest
from index.split import Passage, Sentence

SEARCH_MODES = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class Hit:
    """A passage found for a query, with the scores that ranked it."""

    passage: Passage
    score: float
    dense: float
    lexical: float


@dataclass(frozen=True)
class Surrounding:
    """A stretch of whole paragraphs of an article: its character span and paragraph numbers."""

    start: int
    end: int
    first_paragraph: int
    last_paragraph: int


@dataclass(frozen=True)
class SearchSettings:
    """The `[search]` section: how many passages an answer shows and how they are found.

    Hybrid search standardises meaning and words over the candidates, then weighs them. The
    meaning side is the passage's cosine blended with its best sentence's cosine
    (`sentence_share`), since a question usually matches one sentence, not a whole passage.
    Weights chosen on SQuAD v1.1 (even-numbered articles, confirmed on the odd ones): see the README.
    """

    top_k: int = 3
    mode: str = "hybrid"
    dense_weight: float = 0.7
    lexical_weight: float = 0.3
    # Above this many passages the dense index is approximate (FAISS IVF-SQ8), below it exact.
    ann_threshold: int = DEFAULT_ANN_THRESHOLD
    # Fixed, not configured: candidates each side proposes, and the best sentence's share of meaning.
    candidates: int = 50
    sentence_share: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= 50:
            raise ValueError(f"top_k is {self.top_k}: use a number from 1 to 50")
        if self.mode not in SEARCH_MODES:
            raise ValueError(f"mode is {self.mode!r}: use one of {', '.join(SEARCH_MODES)}")
        if self.dense_weight < 0 or self.lexical_weight < 0 or self.dense_weight + self.lexical_weight == 0:
            raise ValueError("dense_weight and lexical_weight must be >= 0 and not both 0")
        if self.ann_threshold < 1:
            raise ValueError(f"ann_threshold is {self.ann_threshold}: use a passage count >= 1")


class PassageIndex:
    """Everything a search needs, loaded into memory."""

    def __init__(
        self,
        articles: Sequence[Article],
        sentences: Sequence[Sentence],
        passages: Sequence[Passage],
        sentence_vectors: np.ndarray,
        passage_vectors: np.ndarray,
        lexical: LexicalIndex,
        manifest: Manifest | None = None,
        faiss_index: Any = None,
    ) -> None:
        self.articles = {article.id: article for article in articles}
        self.sentences = list(sentences)
        self.passages = list(passages)
        self.sentence_vectors = sentence_vectors
        self.passage_vectors = passage_vectors
        self.lexical = lexical
        self.manifest = manifest
        self.faiss_index = faiss_index if faiss_index is not None else flat_index(passage_vectors)
        self._passage_rows = {passage.id: row for row, passage in enumerate(self.passages)}
        self._sentence_rows: dict[tuple[str, int], int] = {
            (sentence.article_id, sentence.index): row for row, sentence in enumerate(self.sentences)
        }
        # Each article's paragraphs as character spans of its body, in one pass over the sentences.
        self._paragraphs: dict[str, dict[int, tuple[int, int]]] = {}
        for sentence in self.sentences:
            spans = self._paragraphs.setdefault(sentence.article_id, {})
            start = spans.get(sentence.paragraph, (sentence.start, 0))[0]
            spans[sentence.paragraph] = (start, sentence.end)

    # The corpus --------------------------------------------------------------------------

    @cached_property
    def passage_counts(self) -> Counter[str]:
        """Passages per article id."""
        return Counter(passage.article_id for passage in self.passages)

    def paragraph_count(self, article_id: str) -> int:
        return max(self._paragraphs.get(article_id, {0: (0, 0)}))

    def passage(self, passage_id: str) -> Passage | None:
        row = self._passage_rows.get(passage_id)
        return None if row is None else self.passages[row]

    def sentence_rows(self, passage: Passage) -> list[int]:
        """Rows of `sentences` and `sentence_vectors` for the sentences of `passage`."""
        return [self._sentence_rows[(passage.article_id, index)] for index in passage.sentence_ids]

    def sentences_of(self, passage: Passage) -> list[Sentence]:
        return [self.sentences[row] for row in self.sentence_rows(passage)]

    def surrounding(self, passage: Passage, paragraphs: int = 1) -> Surrounding:
        """The passage's paragraphs and `paragraphs` more on either side, within its article."""
        spans = self._paragraphs[passage.article_id]
        sentences = self.sentences_of(passage)
        first = max(min(spans), sentences[0].paragraph - paragraphs)
        last = min(max(spans), sentences[-1].paragraph + paragraphs)
        inside = [spans[number] for number in range(first, last + 1) if number in spans]
        return Surrounding(inside[0][0], inside[-1][1], first, last)

    # Search ------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        k: int = 5,
        settings: SearchSettings = SearchSettings(),
    ) -> list[Hit]:
        """The `k` best passages for a query, best first (`settings.top_k` is the answer's, not this)."""
        mode = settings.mode
        count = len(self.passages)
        if count == 0 or k <= 0:
            return []
        if mode == "lexical":
            lexical = self.lexical.scores(query)
            rows = _top(lexical, k)
            dense = self._dense_scores(query_vector, rows)
            return [
                self._hit(row, float(lexical[row]), float(d), float(lexical[row]))
                for row, d in zip(rows, dense, strict=True)
            ]
        if query_vector is None:
            raise ValueError(f"{mode} search needs the query's vector")
        depth = min(count, max(k, settings.candidates))
        _, found = self.faiss_index.search(query_vector.reshape(1, -1).astype(np.float32), depth)
        dense_rows = [int(row) for row in found[0] if row >= 0]
        if mode == "dense":
            # Exact cosines of the candidates: an approximate index only proposes them.
            exact = self._dense_scores(query_vector, dense_rows)
            lexical = self.lexical.scores(query)
            return [
                self._hit(dense_rows[i], float(exact[i]), float(exact[i]), float(lexical[dense_rows[i]]))
                for i in np.argsort(-exact, kind="stable")[:k]
            ]
        lexical = self.lexical.scores(query)
        candidates = list(dict.fromkeys([*dense_rows, *_top(lexical, depth)]))
        dense = self._dense_scores(query_vector, candidates)
        bm25 = lexical[candidates]
        meaning = dense
        if settings.sentence_share > 0:
            best_sentence = self._best_sentence_cosines(query_vector, candidates)
            meaning = (1 - settings.sentence_share) * dense + settings.sentence_share * best_sentence
        # Standard scores, not min-max: one outlier no longer squeezes every other candidate together.
        combined = settings.dense_weight * _standardise(meaning)
        combined += settings.lexical_weight * _standardise(bm25)
        order = np.argsort(-combined, kind="stable")[:k]
        return [self._hit(candidates[i], float(combined[i]), float(dense[i]), float(bm25[i])) for i in order]

    def _dense_scores(self, query_vector: np.ndarray | None, rows: Sequence[int]) -> np.ndarray:
        if query_vector is None:
            return np.full(len(rows), np.nan, dtype=np.float32)
        return np.asarray(
            self.passage_vectors[list(rows)] @ query_vector.astype(np.float32), dtype=np.float32
        )

    def _best_sentence_cosines(self, query_vector: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        """For each passage at `rows`, the cosine of its sentence closest to the query."""
        sentence_rows = [self.sentence_rows(self.passages[row]) for row in rows]
        flat = [r for group in sentence_rows for r in group]
        cosines = self.sentence_vectors[flat] @ query_vector.astype(np.float32)
        starts = np.cumsum([0, *(len(group) for group in sentence_rows[:-1])])
        return np.asarray(np.maximum.reduceat(cosines, starts), dtype=np.float32)

    def _hit(self, row: int, score: float, dense: float, lexical: float) -> Hit:
        return Hit(self.passages[row], score, dense, lexical)


def _top(scores: np.ndarray, k: int) -> list[int]:
    k = min(k, len(scores))
    if k == 0:
        return []
    rows = np.argpartition(-scores, k - 1)[:k]
    return [int(row) for row in rows[np.argsort(-scores[rows], kind="stable")]]


def _standardise(scores: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread; all-equal scores carry no preference and become 0."""
    spread = float(np.std(scores))
    if spread < 1e-9:
        return np.zeros_like(scores)
    return (scores - float(np.mean(scores))) / spread
