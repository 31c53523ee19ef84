"""The long-lived service behind every front end: config, model, index, and `ask`."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from functools import cached_property

from bot.answer import Answer, AnswerSettings, compose_answer, normalize_question
from bot.config import Config
from bot.reader import Reader
from bot.spelling import SpellingCorrector
from index.articles import Article, load_articles
from index.embed import Embedder, SentenceTransformerEmbedder
from index.store import (
    MANIFEST,
    BuildReport,
    HybridWeights,
    PassageIndex,
    build_index,
    index_is_current,
    load_index,
)

# A long article takes seconds to split into sentences: say so in a log.
LONG_ARTICLE_CHARS = 200_000


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _default_query_encoder(embedder: Embedder, choice: str = "fast") -> Embedder:
    """Questions go through the torch-free encoder of the same model when it can run here.

    It gives the index embedder's vectors (cosine >= 0.9999, tests/test_fast_encoder.py) without
    importing torch, which costs seconds per process; anything else encodes with the embedder.
    """
    if choice == "fast" and isinstance(embedder, SentenceTransformerEmbedder):
        from index.fast_encoder import fast_query_encoder

        fast = fast_query_encoder()
        if fast is not None and fast.model_name == embedder.model_name:
            return fast
    return embedder


class AnswerEngine:
    """Loads the index once (building or updating it first if needed) and answers questions."""

    def __init__(
        self,
        config: Config,
        embedder: Embedder | None = None,
        status: Callable[[str], None] = _stderr,
        query_encoder: Embedder | None = None,
    ) -> None:
        self.config = config
        # The embedder builds the index; the query encoder turns questions into vectors and
        # must give the same vectors (it may be a lighter runtime of the same model).
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(config.device)
        self.query_encoder: Embedder = query_encoder or _default_query_encoder(
            self.embedder, config.query_encoder
        )
        self.status = status
        self._index: PassageIndex | None = None
        self.reader = Reader()
        self._corrector: tuple[PassageIndex, SpellingCorrector] | None = None

    @property
    def settings(self) -> AnswerSettings:
        c = self.config
        return AnswerSettings(
            top_k=c.top_k,
            mode=c.mode,
            weights=HybridWeights(dense=c.dense_weight, lexical=c.lexical_weight),
            abstain_threshold=c.abstain_threshold,
        )

    @cached_property
    def articles(self) -> list[Article]:
        return load_articles(
            self.config.articles,
            max_bytes=int(self.config.max_article_mb * 1_000_000),
            on_skip=lambda message: self.status(f"articlebot: {message}"),
        )

    @property
    def index(self) -> PassageIndex:
        if self._index is None:
            self._index = self.ensure_index()
        return self._index

    def ensure_index(self, *, rebuild: bool = False, progress: bool = False) -> PassageIndex:
        """Load the saved index, after building or updating it when the articles changed."""
        directory = self.config.index_dir
        if not rebuild and index_is_current(directory, self.articles, self.config.passages):
            self._index = load_index(directory, self.embedder)
            return self._index
        self.build(rebuild=rebuild, progress=progress)
        assert self._index is not None
        return self._index

    def build(self, *, rebuild: bool = False, progress: bool = False) -> BuildReport:
        """Build or update the index, re-embedding only added or changed articles."""
        verb = "building" if rebuild or not (self.config.index_dir / MANIFEST).exists() else "updating"
        self.status(f"articlebot: {verb} the index at {self.config.index_dir} …")
        self._index, report = build_index(
            self.articles,
            self.embedder,
            self.config.index_dir,
            self.config.passages,
            rebuild=rebuild,
            progress=progress,
            ann_threshold=self.config.ann_threshold,
            on_wait=lambda message: self.status(f"articlebot: {message}"),
            on_article=None if progress else self._report_splitting(),
        )
        return report

    def _report_splitting(self) -> Callable[[Article], None]:
        """Plain progress lines for a log (no bar is drawn when standard error is not a terminal):
        every long article, and every hundredth."""
        count = 0

        def report(article: Article) -> None:
            nonlocal count
            count += 1
            if len(article.text) >= LONG_ARTICLE_CHARS or count % 100 == 0:
                self.status(
                    f"articlebot: splitting article {count}, {article.id} ({len(article.text):,} characters)"
                )

        return report

    def ask(self, question: str, top_k: int | None = None) -> Answer:
        """Answer one question; raises QuestionError for an empty or over-long one."""
        question = normalize_question(question)
        index = self.index
        settings = self.settings
        if top_k is not None:
            settings = dataclasses.replace(settings, top_k=top_k)
        started = time.perf_counter()
        # Typos mended for searching and reading; the answer still shows the question as asked.
        mended = self._spelling(index).correct(question)
        vector = None if settings.mode == "lexical" else self.query_encoder.encode([mended])[0]
        encoded = time.perf_counter()
        answer = compose_answer(mended, vector, index, self.reader, settings)
        answer = dataclasses.replace(answer, question=question)
        answer.timings_ms["encode"] = round((encoded - started) * 1000, 2)
        answer.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    def _spelling(self, index: PassageIndex) -> SpellingCorrector:
        """The corrector for this index's articles, made once per index."""
        if self._corrector is None or self._corrector[0] is not index:
            texts = (article.text for article in index.articles.values())
            self._corrector = (index, SpellingCorrector(texts))
        return self._corrector[1]
