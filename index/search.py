"""The corpus in memory and its search: passages, sentences, articles, and score fusion."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from index.articles import Article
from index.dense import DEFAULT_ANN_THRESHOLD, flat_index
from index.lexical import LexicalIndex, bm25_idf, tokenize
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


@dataclass
class Segment:
    """One part of an index that never changes once written: some articles with their sentences,
    passages, vectors, dense index and BM25.

    A build writes a new segment for the articles it embeds and leaves the others alone; an
    article removed or replaced is masked in the segment that holds it (the manifest lists it as
    deleted there) until small segments are merged, as search engines do. A running bot that
    reloads the index reads only the segments it has not seen.
    """

    name: str
    articles: Sequence[Article]
    sentences: Sequence[Sentence]
    passages: Sequence[Passage]
    sentence_vectors: np.ndarray
    passage_vectors: np.ndarray
    lexical: LexicalIndex
    faiss_index: Any = None  # exact search over passage_vectors when not given

    def __post_init__(self) -> None:
        if self.faiss_index is None:
            self.faiss_index = flat_index(self.passage_vectors)


class _Part:
    """A segment as an index sees it: which of its rows are live, and where they stand globally."""

    def __init__(self, segment: Segment, deleted: frozenset[str], passage_at: int, sentence_at: int) -> None:
        self.segment = segment
        self.deleted = deleted
        self.passage_rows = _live_rows(segment.passages, deleted)  # local rows of live passages
        self.sentence_rows = _live_rows(segment.sentences, deleted)
        self.passage_at = passage_at  # global row of its first live passage
        self.sentence_at = sentence_at
        # Local row -> global row (-1 for a deleted passage), for what FAISS finds.
        self.global_passage = np.full(len(segment.passages), -1, dtype=np.int64)
        self.global_passage[self.passage_rows] = np.arange(len(self.passage_rows)) + passage_at


def _live_rows(items: Sequence[Passage | Sentence], deleted: frozenset[str]) -> np.ndarray:
    if not deleted:
        return np.arange(len(items), dtype=np.int64)
    return np.array([row for row, item in enumerate(items) if item.article_id not in deleted], dtype=np.int64)


def _pick(items: Sequence[Any], rows: np.ndarray) -> Sequence[Any]:
    return items if len(rows) == len(items) else [items[row] for row in rows]


class _Rows:
    """Vectors of several segments as one array of live rows; indexing by a list of global rows
    gathers them. (One segment with nothing deleted uses its own array instead.)"""

    def __init__(self, blocks: Sequence[tuple[np.ndarray, np.ndarray]], dimension: int) -> None:
        self._blocks = blocks  # (vectors, local rows of the live ones), in global order
        self._starts = np.cumsum([0, *(len(rows) for _, rows in blocks)])
        self.shape = (int(self._starts[-1]), dimension)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """All live rows as one array (a copy: for tests and tools, not for search)."""
        whole = self[np.arange(len(self))]
        return whole if dtype is None else whole.astype(dtype)

    def __getitem__(self, rows: Sequence[int] | np.ndarray | int) -> np.ndarray:
        if isinstance(rows, int | np.integer):
            return self[[int(rows)]][0]
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        which = np.searchsorted(self._starts, rows, side="right") - 1
        for block in np.unique(which):
            vectors, local = self._blocks[block]
            mask = which == block
            out[mask] = vectors[local[rows[mask] - self._starts[block]]]
        return out


class PassageIndex:
    """The corpus and its search: live articles, passages and sentences of one or more segments.

    Rows are global: `passages[row]`, `passage_vectors[row]`, and the same for sentences, over the
    live rows of every segment in order.
    """

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
        """An index of one segment held in memory (evaluation, benchmarks, tests)."""
        segment = Segment(
            "memory", articles, sentences, passages, sentence_vectors, passage_vectors, lexical, faiss_index
        )
        self._set_up([segment], {}, manifest)

    @classmethod
    def of_segments(
        cls,
        segments: Sequence[Segment],
        deleted: Mapping[str, Collection[str]] | None = None,
        manifest: Manifest | None = None,
    ) -> PassageIndex:
        """The index of these segments, the articles in `deleted[segment name]` masked."""
        index = cls.__new__(cls)
        index._set_up(segments, deleted or {}, manifest)
        return index

    def _set_up(
        self, segments: Sequence[Segment], deleted: Mapping[str, Collection[str]], manifest: Manifest | None
    ) -> None:
        self.segments = list(segments)
        self.manifest = manifest
        self._parts: list[_Part] = []
        passage_at = sentence_at = 0
        for segment in self.segments:
            part = _Part(segment, frozenset(deleted.get(segment.name, ())), passage_at, sentence_at)
            self._parts.append(part)
            passage_at += len(part.passage_rows)
            sentence_at += len(part.sentence_rows)
        self.articles = {
            article.id: article
            for part in self._parts
            for article in part.segment.articles
            if article.id not in part.deleted
        }
        self.passages = [p for part in self._parts for p in _pick(part.segment.passages, part.passage_rows)]
        self.sentences = [
            s for part in self._parts for s in _pick(part.segment.sentences, part.sentence_rows)
        ]
        dimension = self.segments[0].passage_vectors.shape[1] if self.segments else 0
        whole = len(self._parts) == 1 and not self._parts[0].deleted
        self.passage_vectors: np.ndarray | _Rows = (
            self.segments[0].passage_vectors
            if whole
            else _Rows([(p.segment.passage_vectors, p.passage_rows) for p in self._parts], dimension)
        )
        self.sentence_vectors: np.ndarray | _Rows = (
            self.segments[0].sentence_vectors
            if whole
            else _Rows([(p.segment.sentence_vectors, p.sentence_rows) for p in self._parts], dimension)
        )
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
        # BM25 statistics over every segment, as one index would count them.
        self._documents = sum(part.segment.lexical.size for part in self._parts)

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
            lexical = self.lexical_scores(query)
            rows = _top(lexical, k)
            dense = self._dense_scores(query_vector, rows)
            return [
                self._hit(row, float(lexical[row]), float(d), float(lexical[row]))
                for row, d in zip(rows, dense, strict=True)
            ]
        if query_vector is None:
            raise ValueError(f"{mode} search needs the query's vector")
        depth = min(count, max(k, settings.candidates))
        dense_rows = self._dense_candidates(query_vector, depth)
        if mode == "dense":
            # Exact cosines of the candidates: an approximate index only proposes them.
            exact = self._dense_scores(query_vector, dense_rows)
            lexical = self.lexical_scores(query)
            return [
                self._hit(dense_rows[i], float(exact[i]), float(exact[i]), float(lexical[dense_rows[i]]))
                for i in np.argsort(-exact, kind="stable")[:k]
            ]
        lexical = self.lexical_scores(query)
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

    def _dense_candidates(self, query_vector: np.ndarray, depth: int) -> list[int]:
        """Each segment's best `depth` rows by its dense index, as global rows. A segment with
        articles masked is asked for twice as many, since masked rows take places in its top."""
        query = query_vector.reshape(1, -1).astype(np.float32)
        rows: list[int] = []
        for part in self._parts:
            size = len(part.segment.passages)
            if not len(part.passage_rows):
                continue
            _, found = part.segment.faiss_index.search(query, min(size, depth * (2 if part.deleted else 1)))
            local = found[0][found[0] >= 0]
            rows.extend(int(row) for row in part.global_passage[local] if row >= 0)
        return rows

    # Words -------------------------------------------------------------------------------

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency over every segment, as one index would count it."""
        containing = sum(part.segment.lexical.document_frequency(term) for part in self._parts)
        return bm25_idf(self._documents, containing)

    def lexical_scores(self, query: str) -> np.ndarray:
        """BM25 score of every live passage, in row order. Across segments each term counts with
        the whole index's idf, not its segment's, so a small new segment's rare words weigh what
        they would in one index (its length normalisation stays its own)."""
        terms = tokenize([query])[0]
        if len(self._parts) == 1:
            part = self._parts[0]
            scores = part.segment.lexical.scores_of(terms)
            return scores if not part.deleted else scores[part.passage_rows]
        idf = {term: self.idf(term) for term in set(terms)}
        blocks = [part.segment.lexical.scores_of(terms, idf)[part.passage_rows] for part in self._parts]
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)

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
