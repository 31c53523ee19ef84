"""The long-lived service behind every front end: config, model, index, and `ask`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.answer import Answer, normalize_question
from bot.config import Config
from bot.conversation import Conversation
from bot.dialogue import respond
from bot.reader import Reader
from bot.spelling import SpellingCorrector
from index.articles import (
    Article,
    KnownArticle,
    article_file_names,
    file_signatures,
    load_articles,
    survey_articles,
)
from index.embed import Embedder, SentenceTransformerEmbedder
from index.errors import ArticlebotError, IndexMismatchError
from index.store import BuildReport, SearchIndex, Store, UnreadArticles
from index.web.ingest import ArticleFolder, Outcome

log = logging.getLogger(__name__)

# A long article takes seconds to split into sentences: say so in a log.
LONG_ARTICLE_CHARS = 200_000


@dataclass(frozen=True)
class Ingest:
    """What adding or removing articles did: one outcome per source, and the index update, if
    anything changed."""

    outcomes: list[Outcome]
    report: BuildReport | None
    folder: Path
    # The index as it stands afterwards (None if none was loaded and nothing changed).
    index: SearchIndex | None = None

    @property
    def failed(self) -> bool:
        return any(outcome.failed for outcome in self.outcomes)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_store(config: Config) -> Store:
    """The configured backend: the local index folder, or a Milvus collection."""
    if config.index.backend == "milvus":
        from index.milvus import MilvusStore

        return MilvusStore.of_settings(config.index, config.index_dir)
    from index.local.store import LocalStore

    return LocalStore(config.index_dir)


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
        self.embedder: Embedder = embedder or SentenceTransformerEmbedder(config.model.device)
        self.query_encoder: Embedder = query_encoder or _default_query_encoder(
            self.embedder, config.model.query_encoder
        )
        self.status = status
        self.store: Store = open_store(config)
        self._index: SearchIndex | None = None
        # The index the loaded one was read as: when another process (an `add`, a feed poll,
        # `articlebot index`) publishes a new one, the next question reads it.
        self._manifest_seen: Hashable | None = None
        self._reload = threading.Lock()
        self.reader = Reader(runtime=config.answer.reader)
        self._corrector: tuple[SearchIndex, SpellingCorrector] | None = None
        # Called with the new index after a reload, from the thread that asked.
        self.on_reload: Callable[[SearchIndex], None] | None = None
        # Why files were passed over, as the last read found them, and what of it was said:
        # a build says it, once per engine; a question over an index that is current does not.
        self._skipped: list[str] = []
        self._skips_said: set[str] = set()

    def read_articles(self) -> list[Article]:
        """The articles as they are on disk now (folders gain files while the bot runs)."""
        self._skipped = []
        return load_articles(
            self.config.article_paths(),
            max_bytes=int(self.config.max_article_mb * 1_000_000),
            on_skip=self._skipped.append,
        )

    @property
    def index(self) -> SearchIndex:
        """The index, the newest saved one: reloaded when another process has replaced it."""
        if self._index is None:
            return self.ensure_index()
        self.refresh()
        return self._index

    def ensure_index(self, *, rebuild: bool = False, progress: bool = False) -> SearchIndex:
        """Load the saved index, after building or updating it when the articles changed."""
        articles = None
        current = not rebuild and self._files_unchanged()
        if not rebuild and not current:
            articles = self.read_articles()
            current = self._index_is_current(articles)
        loaded = False
        if current:
            # One built another way (model, format) is built again: the build says so in one line.
            with contextlib.suppress(IndexMismatchError):
                self._set_index(self.store.load(self.embedder))
                loaded = True
        if not loaded:
            self.build(rebuild=rebuild, progress=progress, articles=articles)
        assert self._index is not None
        return self._index

    def _index_is_current(self, articles: list[Article]) -> bool:
        """Whether the saved index was built from exactly these articles, split as configured."""
        try:
            return self.store.read_manifest().is_current(articles, self.config.passages)
        except (FileNotFoundError, ArticlebotError):
            return False

    def _survey_articles(self) -> list[Article | KnownArticle]:
        """The articles for an update: a file the saved index holds unchanged (same size and
        modification time) is not read again, so adding one story to an archive reads one file."""
        try:
            manifest = self.store.read_manifest()
        except (FileNotFoundError, ArticlebotError):
            return list(self.read_articles())
        if manifest.split != self.config.passages or manifest.model != self.embedder.model_name:
            return list(self.read_articles())

        def known(file: Path, article_id: str) -> KnownArticle | None:
            held = manifest.articles.get(article_id)
            if held is None or manifest.sources.get(str(file)) != file_signatures([file]).get(str(file)):
                return None
            return KnownArticle(article_id, str(file), held)

        self._skipped = []
        return survey_articles(
            self.config.article_paths(),
            max_bytes=int(self.config.max_article_mb * 1_000_000),
            on_skip=self._skipped.append,
            known=known,
        )

    def _files_unchanged(self) -> bool:
        """Whether every article file is the one the saved index was built from, by size and
        modification time: a start over a large archive need not read and hash every file."""
        try:
            manifest = self.store.read_manifest()
        except (FileNotFoundError, ArticlebotError):
            return False
        if not manifest.sources or manifest.split != self.config.passages:
            return False
        try:
            files, skipped = article_file_names(self.config.article_paths())
        except ArticlebotError:
            return False
        # A skipped file is reported by the full read, so that path is taken whenever there is one.
        return not skipped and file_signatures(files) == manifest.sources

    def refresh(self) -> bool:
        """Read the index again if its manifest was replaced since it was loaded; True if it was.

        A stat per call: the manifest is replaced by a rename, the last step of every build, so a
        changed file always names a finished generation, and no question sees a half-built index.
        """
        if self._index is None or self._manifest_identity() == self._manifest_seen:
            return False
        with self._reload:
            seen = self._manifest_identity()
            if seen == self._manifest_seen:
                return False  # another thread reloaded it meanwhile
            try:
                # Segments never change: the ones already in memory are kept, only new ones read.
                index = self.store.load(self.embedder, reuse=self._index)
            except (FileNotFoundError, ArticlebotError) as error:
                # Keep answering from the index in memory; the build that broke it will say why.
                log.warning("the index at %s could not be reloaded: %s", self.store.location, error)
                self._manifest_seen = seen
                return False
            self._set_index(index, seen)
        if self.on_reload is not None:
            self.on_reload(index)
        return True

    def _set_index(self, index: SearchIndex, seen: Hashable | None = None) -> None:
        self._index = index
        self._manifest_seen = seen or self._manifest_identity()

    def _manifest_identity(self) -> Hashable | None:
        return self.store.identity()

    def build(
        self, *, rebuild: bool = False, progress: bool = False, articles: list[Article] | None = None
    ) -> BuildReport:
        """Build or update the index, re-embedding only added or changed articles (`articles`:
        the ones just read from disk, else they are read now)."""
        verb = "building" if rebuild or self.store.identity() is None else "updating"
        self.status(f"articlebot: {verb} the index at {self.store.location} …")
        surveyed: list[Article] | list[Article | KnownArticle]
        surveyed = (
            articles if articles is not None else self.read_articles() if rebuild else self._survey_articles()
        )
        self._say_skipped()
        build = functools.partial(
            self.store.build,
            embedder=self.embedder,
            settings=self.config.passages,
            rebuild=rebuild,
            progress=progress,
            ann_threshold=self.config.search.ann_threshold,
            on_notice=lambda message: self.status(f"articlebot: {message}"),
            on_article=self._report_splitting(every_hundredth=not progress),
            reuse=self._index,
        )
        try:
            index, report = build(surveyed)
        except UnreadArticles:
            # The index changed under the survey (another build, another format): read them all.
            index, report = build(self.read_articles())
        self._set_index(index)
        return report

    def _say_skipped(self) -> None:
        """The files the last read passed over, each said once in this engine's life."""
        for message in self._skipped:
            if message not in self._skips_said:
                self._skips_said.add(message)
                self.status(f"articlebot: {message}")

    # Articles arriving --------------------------------------------------------------------------

    def add(
        self, sources: Iterable[str], *, to: Path | None = None, allow_private: bool | None = None
    ) -> Ingest:
        """Save each source (page or feed URL, or article file) into the articles folder, then
        update the index by what changed."""
        with self._folder(to, allow_private) as folder:
            return self._updated(folder, folder.add(sources))

    def add_document(self, name: str, data: bytes) -> Ingest:
        """An article sent as a file (a Telegram document), saved and indexed like `add`."""
        with self._folder() as folder:
            return self._updated(folder, [folder.add_document(name, data)])

    def poll_feeds(self) -> Ingest:
        """Add what is new in the configured feeds, keeping the newest `ingest.max_articles`."""
        with self._folder() as folder:
            return self._updated(folder, folder.poll(self.config.feeds, self.config.ingest.max_articles))

    def remove_article(self, article_id: str) -> Ingest:
        """Remove an added article (its file in the articles folder) and update the index."""
        with self._folder() as folder:
            article = self.index.articles.get(article_id)
            if article is None:
                outcome = Outcome(article_id, "failed", "no such article in the index")
            else:
                outcome = folder.remove(Path(article.path))
            return self._updated(folder, [outcome])

    def _folder(self, to: Path | None = None, allow_private: bool | None = None) -> ArticleFolder:
        folder = to or self.config.add_folder()
        if folder is None:
            raise ArticlebotError(
                "the configured articles are files, not a folder: name a folder to save into with --to DIR"
            )
        if folder.exists() and not folder.is_dir():
            raise ArticlebotError(f"{folder} is a file, not a folder: name a folder to save articles into")
        return ArticleFolder(
            folder,
            allow_private=self.config.ingest.allow_private if allow_private is None else allow_private,
            max_bytes=int(self.config.max_article_mb * 1_000_000),
        )

    def _updated(self, folder: ArticleFolder, outcomes: list[Outcome]) -> Ingest:
        changed = any(outcome.changed for outcome in outcomes)
        report = self.build() if changed and self._reads(folder.folder) else None
        return Ingest(outcomes, report, folder.folder, self._index)

    def _reads(self, folder: Path) -> bool:
        """Whether the index is built from this folder (`add --to` may name another)."""
        resolved = folder.resolve()
        return any(resolved.is_relative_to(path.resolve()) for path in self.config.article_paths())

    def _report_splitting(self, *, every_hundredth: bool) -> Callable[[Article], None]:
        """Plain progress lines while articles are split, before the embedding's bar: every long
        article, and for a log (no bar is drawn when standard error is not a terminal) every
        hundredth."""
        count = 0

        def report(article: Article) -> None:
            nonlocal count
            count += 1
            if len(article.text) >= LONG_ARTICLE_CHARS or (every_hundredth and count % 100 == 0):
                self.status(
                    f"articlebot: splitting article {count}, {article.id} ({len(article.text):,} characters)"
                )

        return report

    def ask(self, question: str, top_k: int | None = None) -> Answer:
        """Answer one question as the first of a conversation; raises QuestionError for an empty
        or over-long one."""
        return self.converse(question, Conversation(), top_k)[0]

    def converse(
        self, question: str, conversation: Conversation, top_k: int | None = None
    ) -> tuple[Answer, Conversation]:
        """Answer `question` in the light of `conversation`; the answer, and the conversation with
        this turn added (the caller keeps it for the next question)."""
        question = normalize_question(question)
        index = self.index
        search = self.config.search
        if top_k is not None:
            search = dataclasses.replace(search, top_k=top_k)
        started = time.perf_counter()
        # Typos mended for searching and reading; the answer still shows the question as asked.
        mended = self._spelling(index).correct(question)
        encoding = 0.0

        def encode(text: str) -> np.ndarray | None:
            nonlocal encoding
            if search.mode == "lexical":
                return None
            begun = time.perf_counter()
            vector = self.query_encoder.encode([text])[0]
            encoding += time.perf_counter() - begun
            return vector

        reply = respond(mended, conversation, encode, index, self.reader, search, self.config.answer)
        answer = dataclasses.replace(reply.answer, question=question)
        answer.timings_ms["encode"] = round(encoding * 1000, 2)
        answer.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
        return answer, conversation.then(reply.turn, self.config.conversation.max_turns)

    def _spelling(self, index: SearchIndex) -> SpellingCorrector:
        """The corrector for this index's articles, made once per index."""
        if self._corrector is None or self._corrector[0] is not index:
            self._corrector = (index, SpellingCorrector.from_counts(index.word_counts))
        return self._corrector[1]
