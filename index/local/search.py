"""The local store's corpus and its search: segments of passages, sentences and articles, and score fusion."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar, overload

import numpy as np

from index.articles import Article
from index.lexical import bm25_idf, tokenize, word_counts
from index.local.bm25 import LexicalIndex
from index.local.dense import flat_index
from index.manifest import Manifest
from index.split import Passage, Sentence
from index.store import Hit, SearchSettings, Surrounding, fuse

# Columns of a segment's tables (int32): a passage, and a sentence, by their row.
PASSAGE_COLUMNS = ("article", "paragraph", "first_sentence", "last_sentence", "start", "end")
SENTENCE_COLUMNS = ("article", "paragraph", "start", "end")


class Segment:
    """One part of an index that never changes once written: some articles, with their passages
    and sentences as rows of two integer tables, their vectors, dense index and BM25.

    A passage or sentence is a span of its article's text; the tables hold the spans (and the
    article as a number), and a `Passage` or `Sentence` object is made only for the rows a
    question touches, so loading a large archive makes no object per row. An article's passages
    and sentences are consecutive rows, in order: passage `k` of article `a` is `a#k`.

    A build writes a new segment for the articles it embeds and leaves the others alone; an
    article removed or replaced is masked in the segment that holds it (the manifest lists it as
    deleted there) until small segments are merged, as search engines do. A running bot that
    reloads the index reads only the segments it has not seen.
    """

    def __init__(
        self,
        name: str,
        articles: Sequence[Article],
        passage_table: np.ndarray,
        sentence_table: np.ndarray,
        sentence_vectors: np.ndarray,
        passage_vectors: np.ndarray,
        lexical: LexicalIndex,
        faiss_index: Any = None,  # exact search over passage_vectors when not given
        words: Counter[str] | None = None,  # counted from the articles when not given
        ids: Sequence[str] | None = None,  # the articles' ids, when `articles` reads them lazily
    ) -> None:
        self.name = name
        self._words = words
        self.articles = articles
        self.ids = list(ids) if ids is not None else [article.id for article in articles]
        self.passage_table = passage_table.reshape(-1, len(PASSAGE_COLUMNS))
        self.sentence_table = sentence_table.reshape(-1, len(SENTENCE_COLUMNS))
        self.sentence_vectors = sentence_vectors
        self.passage_vectors = passage_vectors
        self.lexical = lexical
        self.faiss_index = faiss_index if faiss_index is not None else flat_index(passage_vectors)
        codes = range(len(self.ids) + 1)
        # First row of each article (and one past the last), in each table.
        self.passage_start = np.searchsorted(self.passage_table[:, 0], codes)
        self.sentence_start = np.searchsorted(self.sentence_table[:, 0], codes)
        self.code = {article_id: code for code, article_id in enumerate(self.ids)}

    @classmethod
    def of_rows(
        cls,
        name: str,
        articles: Sequence[Article],
        sentences: Sequence[Sentence],
        passages: Sequence[Passage],
        sentence_vectors: np.ndarray,
        passage_vectors: np.ndarray,
        lexical: LexicalIndex,
        faiss_index: Any = None,
    ) -> Segment:
        """A segment of passage and sentence objects (each article's consecutive, in order)."""
        code = {article.id: number for number, article in enumerate(articles)}
        passage_table = np.array(
            [
                (code[p.article_id], p.paragraph, p.first_sentence, p.last_sentence, p.start, p.end)
                for p in passages
            ],
            dtype=np.int32,
        ).reshape(-1, len(PASSAGE_COLUMNS))
        sentence_table = np.array(
            [(code[s.article_id], s.paragraph, s.start, s.end) for s in sentences], dtype=np.int32
        ).reshape(-1, len(SENTENCE_COLUMNS))
        segment = cls(
            name,
            articles,
            passage_table,
            sentence_table,
            sentence_vectors,
            passage_vectors,
            lexical,
            faiss_index,
        )
        if not _grouped(segment.passage_table[:, 0]) or not _grouped(segment.sentence_table[:, 0]):
            raise ValueError("each article's passages and sentences must be consecutive, in article order")
        return segment

    @property
    def words(self) -> Counter[str]:
        """How often each word of its articles occurs: what typos in questions are mended against."""
        if self._words is None:
            self._words = word_counts(article.text for article in self.articles)
        return self._words

    @property
    def passage_count(self) -> int:
        return len(self.passage_table)

    @property
    def sentence_count(self) -> int:
        return len(self.sentence_table)

    def passage(self, row: int) -> Passage:
        code, paragraph, first, last, start, end = (int(v) for v in self.passage_table[row])
        article = self.articles[code]
        number = row - int(self.passage_start[code])
        return Passage(
            f"{article.id}#{number}", article.id, paragraph, first, last, start, end, article.text[start:end]
        )

    def sentence(self, row: int) -> Sentence:
        code, paragraph, start, end = (int(v) for v in self.sentence_table[row])
        article = self.articles[code]
        return Sentence(
            article.id, row - int(self.sentence_start[code]), paragraph, start, end, article.text[start:end]
        )

    def passage_ids(self) -> Iterator[str]:
        """Every passage's id, in row order, without making the passages."""
        for code, article_id in enumerate(self.ids):
            for number in range(int(self.passage_start[code + 1] - self.passage_start[code])):
                yield f"{article_id}#{number}"

    def article_rows(self, article_id: str, table: str = "passage") -> range:
        """The rows of one article in the passage (or sentence) table."""
        starts = self.passage_start if table == "passage" else self.sentence_start
        code = self.code[article_id]
        return range(int(starts[code]), int(starts[code + 1]))


def _grouped(codes: np.ndarray) -> bool:
    return bool(np.all(codes[1:] >= codes[:-1])) if len(codes) else True


class _Part:
    """A segment as an index sees it: which of its rows are live, and where they stand globally."""

    def __init__(self, segment: Segment, deleted: frozenset[str], passage_at: int, sentence_at: int) -> None:
        self.segment = segment
        self.deleted = deleted
        gone = np.array([segment.code[a] for a in deleted if a in segment.code], dtype=np.int64)
        self.passage_rows = _live_rows(segment.passage_table[:, 0], gone)  # local rows of live passages
        self.sentence_rows = _live_rows(segment.sentence_table[:, 0], gone)
        self.passage_at = passage_at  # global row of its first live passage
        self.sentence_at = sentence_at
        # Local row -> global row (-1 for a masked one).
        self.global_passage = _globals(segment.passage_count, self.passage_rows, passage_at)
        self.global_sentence = _globals(segment.sentence_count, self.sentence_rows, sentence_at)
        # The live passages as runs of rows: an article's passages are consecutive, so a few masked
        # articles leave a few runs, copied whole (at a million rows, 3 ms less than fancy indexing).
        breaks = np.flatnonzero(np.diff(self.passage_rows) != 1) + 1
        runs = np.split(self.passage_rows, breaks)
        self._passage_runs = [(int(run[0]), int(run[-1]) + 1) for run in runs if len(run)]

    def live_passages(self, values: np.ndarray) -> np.ndarray:
        """`values` of every local passage row, kept for the live ones only, in order."""
        if not self.deleted:
            return values
        return np.concatenate([values[a:b] for a, b in self._passage_runs] or [values[:0]])


def _live_rows(codes: np.ndarray, gone: np.ndarray) -> np.ndarray:
    if not len(gone):
        return np.arange(len(codes), dtype=np.int64)
    return np.flatnonzero(~np.isin(codes, gone)).astype(np.int64)


def _globals(count: int, live: np.ndarray, at: int) -> np.ndarray:
    rows = np.full(count, -1, dtype=np.int64)
    rows[live] = np.arange(len(live)) + at
    return rows


class _Rows:
    """Vectors of several segments as one array of live rows; indexing by a list of global rows
    gathers them. (One segment with nothing masked uses its own array instead.)"""

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


_Row = TypeVar("_Row", Passage, Sentence)


class _Objects(Sequence[_Row]):
    """The live passages (or sentences) of every segment as one sequence, each object made when
    it is asked for."""

    def __init__(self, parts: Sequence[_Part], kind: str) -> None:
        self._parts = parts
        self._kind = kind
        self._starts = np.cumsum([0, *(len(self._rows(part)) for part in parts)])

    def _rows(self, part: _Part) -> np.ndarray:
        return part.passage_rows if self._kind == "passage" else part.sentence_rows

    def __len__(self) -> int:
        return int(self._starts[-1])

    @overload
    def __getitem__(self, row: int) -> _Row: ...

    @overload
    def __getitem__(self, row: slice) -> list[_Row]: ...

    def __getitem__(self, row: int | slice) -> _Row | list[_Row]:
        if isinstance(row, slice):
            return [self[number] for number in range(*row.indices(len(self)))]
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        which = int(np.searchsorted(self._starts, row, side="right")) - 1
        part = self._parts[which]
        local = int(self._rows(part)[row - int(self._starts[which])])
        made = part.segment.passage(local) if self._kind == "passage" else part.segment.sentence(local)
        return made  # type: ignore[return-value]

    def __iter__(self) -> Iterator[_Row]:
        for part in self._parts:
            make = part.segment.passage if self._kind == "passage" else part.segment.sentence
            for local in self._rows(part):
                yield make(int(local))  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


class _LiveArticles(Mapping[str, Article]):
    """The live articles by id, each read from its segment when asked for."""

    def __init__(self, holder: Mapping[str, _Part]) -> None:
        self._holder = holder

    def __getitem__(self, article_id: str) -> Article:
        segment = self._holder[article_id].segment
        return segment.articles[segment.code[article_id]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._holder)

    def __len__(self) -> int:
        return len(self._holder)


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
        segment = Segment.of_rows(
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
        # Each live article: the part that holds it.
        self._holder: dict[str, _Part] = {}
        for part in self._parts:
            for article_id in part.segment.ids:
                if article_id not in part.deleted:
                    self._holder[article_id] = part
        self.articles: Mapping[str, Article] = _LiveArticles(self._holder)
        self.passages: Sequence[Passage] = _Objects(self._parts, "passage")
        self._passage_starts = np.cumsum([0, *(len(part.passage_rows) for part in self._parts)])
        self.sentences: Sequence[Sentence] = _Objects(self._parts, "sentence")
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
        self._paragraphs: dict[str, dict[int, tuple[int, int]]] = {}
        # BM25 statistics over every segment, as one index would count them.
        self._documents = sum(part.segment.lexical.size for part in self._parts)

    # The corpus --------------------------------------------------------------------------

    @cached_property
    def word_counts(self) -> Counter[str]:
        """Every segment's word counts together (a masked article's words linger until a merge)."""
        if len(self.segments) == 1:
            return self.segments[0].words
        total: Counter[str] = Counter()
        for segment in self.segments:
            total.update(segment.words)
        return total

    @cached_property
    def passage_counts(self) -> Counter[str]:
        """Passages per article id."""
        return Counter(
            {
                article_id: len(part.segment.article_rows(article_id))
                for article_id, part in self._holder.items()
            }
        )

    def paragraph_count(self, article_id: str) -> int:
        return max(self._paragraph_spans(article_id), default=0)

    def passage(self, passage_id: str) -> Passage | None:
        article_id, _, number = passage_id.rpartition("#")
        part = self._holder.get(article_id)
        if part is None or not number.isdigit():
            return None
        rows = part.segment.article_rows(article_id)
        if int(number) >= len(rows):
            return None
        return part.segment.passage(rows[int(number)])

    def sentence_rows(self, passage: Passage) -> list[int]:
        """Rows of `sentences` and `sentence_vectors` for the sentences of `passage`."""
        part = self._holder[passage.article_id]
        first = part.segment.article_rows(passage.article_id, "sentence").start
        local = np.arange(passage.first_sentence, passage.last_sentence + 1) + first
        return [int(row) for row in part.global_sentence[local]]

    def _sentence_rows_at(self, row: int) -> np.ndarray:
        """`sentence_rows` of the passage at global `row`, from the tables alone: a search scores
        a hundred candidates' sentences, and making each candidate a Passage would read its
        article (at a million passages, 4 ms a search, the article cache thrashing)."""
        which = int(np.searchsorted(self._passage_starts, row, side="right")) - 1
        part = self._parts[which]
        local = int(part.passage_rows[row - int(self._passage_starts[which])])
        code, _, first, last = (int(v) for v in part.segment.passage_table[local, :4])
        base = int(part.segment.sentence_start[code])
        return part.global_sentence[base + first : base + last + 1]

    def sentence_vectors_of(self, passage: Passage) -> np.ndarray:
        return np.asarray(self.sentence_vectors[self.sentence_rows(passage)], dtype=np.float32)

    def sentences_of(self, passage: Passage) -> list[Sentence]:
        part = self._holder[passage.article_id]
        first = part.segment.article_rows(passage.article_id, "sentence").start
        return [part.segment.sentence(first + index) for index in passage.sentence_ids]

    def surrounding(self, passage: Passage, paragraphs: int = 1) -> Surrounding:
        """The passage's paragraphs and `paragraphs` more on either side, within its article."""
        spans = self._paragraph_spans(passage.article_id)
        sentences = self.sentences_of(passage)
        first = max(min(spans), sentences[0].paragraph - paragraphs)
        last = min(max(spans), sentences[-1].paragraph + paragraphs)
        inside = [spans[number] for number in range(first, last + 1) if number in spans]
        return Surrounding(inside[0][0], inside[-1][1], first, last)

    def _paragraph_spans(self, article_id: str) -> dict[int, tuple[int, int]]:
        """An article's paragraphs as character spans of its body, worked out once when asked."""
        spans = self._paragraphs.get(article_id)
        if spans is None:
            spans = {}
            part = self._holder.get(article_id)
            if part is not None:
                rows = part.segment.article_rows(article_id, "sentence")
                for _, paragraph, start, end in part.segment.sentence_table[rows.start : rows.stop].tolist():
                    spans[paragraph] = (spans.get(paragraph, (start, 0))[0], end)
            self._paragraphs[article_id] = spans
        return spans

    # Search ------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        k: int = 5,
        settings: SearchSettings = SearchSettings(),
        *,
        within: Collection[str] | None = None,
    ) -> list[Hit]:
        """The `k` best passages for a query, best first (`settings.top_k` is the answer's, not this);
        with `within`, only the passages of those articles compete."""
        mode = settings.mode
        allowed = None if within is None else self.article_passage_rows(within)
        count = len(self.passages) if allowed is None else len(allowed)
        if count == 0 or k <= 0:
            return []
        if mode == "lexical":
            lexical = self.lexical_scores(query)
            rows = _top(lexical, k) if allowed is None else _top_of(lexical, allowed, k)
            dense = self._dense_scores(query_vector, rows)
            return [
                self._hit(row, float(lexical[row]), float(d), float(lexical[row]))
                for row, d in zip(rows, dense, strict=True)
            ]
        if query_vector is None:
            raise ValueError(f"{mode} search needs the query's vector")
        depth = min(count, max(k, settings.candidates))
        if allowed is None:
            dense_rows = self._dense_candidates(query_vector, depth)
        else:
            # An article or a few: every passage is scored exactly, as the flat index would.
            exact = self._dense_scores(query_vector, allowed)
            dense_rows = [int(allowed[i]) for i in _top(exact, depth)]
        if mode == "dense":
            # Exact cosines of the candidates: an approximate index only proposes them.
            exact = self._dense_scores(query_vector, dense_rows)
            lexical = self.lexical_scores(query)
            return [
                self._hit(dense_rows[i], float(exact[i]), float(exact[i]), float(lexical[dense_rows[i]]))
                for i in np.argsort(-exact, kind="stable")[:k]
            ]
        lexical = self.lexical_scores(query)
        lexical_rows = _top(lexical, depth) if allowed is None else _top_of(lexical, allowed, depth)
        candidates = list(dict.fromkeys([*dense_rows, *lexical_rows]))
        dense = self._dense_scores(query_vector, candidates)
        bm25 = lexical[candidates]
        best_sentence = self._best_sentence_cosines(query_vector, candidates)
        combined = fuse(dense, best_sentence, bm25, settings)
        order = np.argsort(-combined, kind="stable")[:k]
        return [self._hit(candidates[i], float(combined[i]), float(dense[i]), float(bm25[i])) for i in order]

    def article_passage_rows(self, article_ids: Collection[str]) -> np.ndarray:
        """The global rows of these articles' live passages (an unknown id has none)."""
        blocks = []
        for article_id in article_ids:
            part = self._holder.get(article_id)
            if part is not None:
                local = part.segment.article_rows(article_id)
                blocks.append(part.global_passage[local.start : local.stop])
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)

    def _dense_candidates(self, query_vector: np.ndarray, depth: int) -> list[int]:
        """Each segment's best `depth` rows by its dense index, as global rows. A segment with
        articles masked is asked for twice as many, since masked rows take places in its top."""
        query = query_vector.reshape(1, -1).astype(np.float32)
        rows: list[int] = []
        for part in self._parts:
            size = part.segment.passage_count
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
            return self._parts[0].live_passages(self._parts[0].segment.lexical.scores_of(terms))
        idf = {term: self.idf(term) for term in set(terms)}
        blocks = [part.live_passages(part.segment.lexical.scores_of(terms, idf)) for part in self._parts]
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)

    def _dense_scores(self, query_vector: np.ndarray | None, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        if query_vector is None:
            return np.full(len(rows), np.nan, dtype=np.float32)
        return np.asarray(
            self.passage_vectors[list(rows)] @ query_vector.astype(np.float32), dtype=np.float32
        )

    def _best_sentence_cosines(self, query_vector: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        """For each passage at `rows`, the cosine of its sentence closest to the query."""
        sentence_rows = [self._sentence_rows_at(row) for row in rows]
        flat = [int(r) for group in sentence_rows for r in group]
        cosines = self.sentence_vectors[flat] @ query_vector.astype(np.float32)
        starts = np.cumsum([0, *(len(group) for group in sentence_rows[:-1])])
        return np.asarray(np.maximum.reduceat(cosines, starts), dtype=np.float32)

    def _hit(self, row: int, score: float, dense: float, lexical: float) -> Hit:
        return Hit(self.passages[row], score, dense, lexical)


def _top(scores: np.ndarray, k: int) -> list[int]:
    k = min(k, len(scores))
    if k == 0:
        return []
    # BM25 scores nothing in most passages: choosing among the scored ones only is 8 ms less a
    # search at a million passages.
    scored = np.flatnonzero(scores)
    if len(scored) >= k:
        rows = scored[np.argpartition(-scores[scored], k - 1)[:k]]
    else:
        rows = np.argpartition(-scores, k - 1)[:k]
    return [int(row) for row in rows[np.argsort(-scores[rows], kind="stable")]]


def _top_of(scores: np.ndarray, rows: np.ndarray, k: int) -> list[int]:
    """The `k` best of `rows` by `scores[rows]`, best first."""
    return [int(rows[i]) for i in _top(scores[rows], k)]
