"""What the answer step and the engine need of an index, whichever engine holds it.

Two backends sit behind these interfaces: the local store (index/local/: FAISS and BM25 segments
in a folder) and Milvus (index/milvus.py: Milvus Lite in-process, or a Milvus server or cluster).
A third (OpenSearch, say) is one more module that implements `SearchIndex` and `Store`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.articles import Article, KnownArticle
from index.embed import Embedder
from index.manifest import Manifest
from index.split import Passage, Sentence, SplitSettings

SEARCH_MODES = ("hybrid", "dense", "lexical")
# Above this many passages the local dense index is approximate (config search.ann_threshold).
DEFAULT_ANN_THRESHOLD = 200_000


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
    Weights chosen on SQuAD v1.1 (even-numbered articles, confirmed on the odd ones): see docs/design.md.
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


def fuse(
    dense: np.ndarray, best_sentence: np.ndarray, bm25: np.ndarray, settings: SearchSettings
) -> np.ndarray:
    """Hybrid scores of candidates: meaning (the passage's cosine blended with its best
    sentence's) and BM25, each standardised over the candidates, summed by weight."""
    share = settings.sentence_share
    meaning = (1 - share) * dense + share * best_sentence if share > 0 else dense
    # Standard scores, not min-max: one outlier no longer squeezes every other candidate together.
    combined = settings.dense_weight * standardise(meaning)
    return combined + settings.lexical_weight * standardise(bm25)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread; all-equal scores carry no preference and become 0."""
    spread = float(np.std(scores))
    if spread < 1e-9:
        return np.zeros_like(scores)
    return (scores - float(np.mean(scores))) / spread


class UnreadArticles(ValueError):
    """A build was given articles as known (not read) that the index it updates does not hold."""


@dataclass(frozen=True)
class BuildReport:
    articles: int
    passages: int
    embedded_articles: int
    removed_articles: int
    seconds: float


class SearchIndex(Protocol):
    """The corpus and its search, as the answer step and the front ends use them."""

    @property
    def articles(self) -> Mapping[str, Article]:
        """The live articles by id."""
        ...

    @property
    def passage_counts(self) -> Mapping[str, int]:
        """Passages per article id."""
        ...

    @property
    def word_counts(self) -> Mapping[str, int]:
        """How often each word occurs (lower-cased, as written): what typos are mended against."""
        ...

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        k: int = 5,
        settings: SearchSettings = ...,
        *,
        within: Collection[str] | None = None,
    ) -> list[Hit]:
        """The `k` best passages for a query, best first; only articles in `within` when given."""
        ...

    def passage(self, passage_id: str) -> Passage | None: ...

    def sentences_of(self, passage: Passage) -> list[Sentence]: ...

    def sentence_vectors_of(self, passage: Passage) -> np.ndarray:
        """The unit vectors of the passage's sentences, in order."""
        ...

    def surrounding(self, passage: Passage, paragraphs: int = 1) -> Surrounding: ...

    def paragraph_count(self, article_id: str) -> int: ...

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency of a (stemmed) term over the passages."""
        ...


class Store(Protocol):
    """Where an index is kept, built and loaded from: a folder, or a Milvus collection."""

    @property
    def location(self) -> str:
        """Where it is, for messages ('/home/you/.cache/articlebot/index', 'milvus.db: articlebot')."""
        ...

    def read_manifest(self) -> Manifest:
        """What the saved index holds; FileNotFoundError when there is none."""
        ...

    def identity(self) -> Hashable | None:
        """Changes whenever a build publishes a new index (None: no index)."""
        ...

    def load(self, embedder: Embedder, reuse: SearchIndex | None = None) -> SearchIndex:
        """The saved index, refused with the reason when another model or format built it."""
        ...

    def build(
        self,
        articles: Sequence[Article | KnownArticle],
        embedder: Embedder,
        settings: SplitSettings,
        *,
        rebuild: bool = False,
        progress: bool = False,
        on_article: Callable[[Article], None] | None = None,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        on_notice: Callable[[str], None] | None = None,
        reuse: SearchIndex | None = None,
    ) -> tuple[SearchIndex, BuildReport]:
        """Bring the index up to date with `articles`, embedding only what changed."""
        ...

    def check(self) -> str:
        """Verify the saved index whole (`articlebot index --check`); one line saying what was checked."""
        ...
