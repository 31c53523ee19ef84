"""The index in Milvus: Milvus Lite in-process (a file), or a Milvus server or cluster (a URI).

Two collections per generation: its passages (`<name>_g<stamp>`: the searched one) and its
documents (`<name>_g<stamp>_docs`: article metadata and text in chunks, and the manifest, word
counts and term frequencies as chunked rows). The alias `<name>` names the live generation. An
update changes the live generation in place (an article's rows deleted by its id, new rows
inserted); a rebuild fills a new generation and then moves the alias, so questions never see a
half-built index, as the local store's manifest swap promises.

Search standardises and weighs dense and BM25 scores exactly as the local store does
(`index.store.fuse`); Milvus proposes the candidates (a dense and a BM25 request) and returns the
vectors and sentence spans that score them, so no article is read to search. BM25 runs over the
passages' terms as index/lexical.py makes them (stop words out, Snowball stems, irregular verbs),
so both backends count the same words.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from index.articles import Article, KnownArticle, file_signatures
from index.embed import Embedder
from index.errors import ArticlebotError, IndexCorruptError, IndexMismatchError
from index.lexical import bm25_idf, tokenize, word_counts
from index.manifest import FORMAT_VERSION, Manifest
from index.split import Passage, Sentence, SplitSettings
from index.store import (
    DEFAULT_ANN_THRESHOLD,
    BuildReport,
    Hit,
    SearchSettings,
    Surrounding,
    UnreadArticles,
    fuse,
)

log = logging.getLogger(__name__)

INSTALL = "install them with: pip install -e '.[milvus]'"
REBUILD = "rebuild it with 'articlebot index --rebuild'"
# Fusions Milvus can do: ours (standardised scores, the default), or its own rankers, server-side.
FUSIONS = ("standardised", "weighted", "rrf")
# Characters of article text per document row (a VARCHAR holds 65,535 bytes: 4 bytes a character).
TEXT_CHUNK = 16_000
# Meta rows (manifest, word counts, term frequencies) are JSON cut into chunks of this many characters.
META_CHUNK = 16_000
MAX_ID = 512
INSERT_BATCH = 500
# A question checks at most this often whether another process published a new index.
IDENTITY_SECONDS = 1.0
PASSAGE_FIELDS = ["id", "article_id", "paragraph", "first_sentence", "last_sentence", "start", "end", "text"]
SCORING_FIELDS = [*PASSAGE_FIELDS, "vector", "sentences", "sentence_vectors"]


class MilvusUnavailable(ArticlebotError):
    """Milvus cannot be reached, refuses us, or is not installed."""


def _client_class() -> Any:
    quiet = not logging.getLogger().isEnabledFor(logging.DEBUG)
    if quiet:
        # gRPC's core logs to standard error by itself (a long build in Milvus Lite meets its
        # keepalive "too_many_pings" notices, which the client survives by reconnecting).
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise MilvusUnavailable(f"index.backend 'milvus' needs pymilvus and milvus-lite: {INSTALL}") from None
    # pymilvus sets up its own logging on import and logs every failed call with its traceback;
    # our errors say it in one line (with --debug, the root logger's level, they are kept).
    if quiet:
        for name in ("pymilvus", "milvus_lite"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    return MilvusClient


def _is_server(uri: str) -> bool:
    return "://" in uri


def connect(uri: str, token: str | None, timeout: float = 10.0) -> Any:
    """A MilvusClient for `uri`, every expected failure one sentence that says the fix."""
    client_class = _client_class()
    if not _is_server(uri):
        if not uri.endswith(".db"):
            raise MilvusUnavailable(f"a Milvus Lite file's name ends in .db, and {uri} does not: rename it")
        try:
            import milvus_lite  # noqa: F401
        except ImportError:
            raise MilvusUnavailable(f"a Milvus Lite file ({uri}) needs milvus-lite: {INSTALL}") from None
        from index.local.storage import make_index_folder

        make_index_folder(Path(uri).parent)
    try:
        return client_class(uri, token=token or "", timeout=timeout)
    except Exception as error:
        raise _unavailable(uri, error) from None


def _unavailable(uri: str, error: Exception) -> ArticlebotError:
    text = str(error)
    if not _is_server(uri):
        from index.local.storage import unwritable

        # Milvus Lite says "Open local milvus failed" of a read-only folder too.
        cause = unwritable(Path(uri).parent)
        if cause is not None:
            return cause
        if "Open local milvus failed" in text or "lock" in text.lower():
            return MilvusUnavailable(
                f"Milvus Lite's file {uri} is in use by another process (a running bot or build): "
                "stop it, or serve the index from a Milvus server (index.milvus_uri = 'http://host:19530')"
            )
        return MilvusUnavailable(f"Milvus Lite cannot open {uri}: {_short(text)}")
    lowered = text.lower()
    if any(word in lowered for word in ("auth", "credential", "token", "password", "permission", "denied")):
        return MilvusUnavailable(
            f"the Milvus server at {uri} refused the token: set index.milvus_token or ARTICLEBOT_MILVUS_TOKEN"
        )
    return MilvusUnavailable(
        f"cannot reach a Milvus server at {uri} ({_short(text)}): start it, or check index.milvus_uri"
    )


def _short(text: str) -> str:
    match = re.search(r"message=([^)]*)", text)
    line = (match.group(1) if match else text).strip().splitlines()
    return line[0][:160] if line else "no reason given"


# Schemas -------------------------------------------------------------------------------------------


def _create_generation(client: Any, name: str, dimension: int) -> None:
    """The passages and documents collections of one generation, indexed and loaded."""
    from pymilvus import DataType, Function, FunctionType

    passages = client.create_schema(auto_id=False, description="articlebot passages")
    passages.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID + 16)
    passages.add_field("article_id", DataType.VARCHAR, max_length=MAX_ID)
    for field in ("paragraph", "first_sentence", "last_sentence", "start", "end"):
        passages.add_field(field, DataType.INT64)
    passages.add_field("text", DataType.VARCHAR, max_length=65_535)
    # The passage's terms as index/lexical.py makes them, one word each for the standard tokenizer.
    passages.add_field(
        "terms",
        DataType.VARCHAR,
        max_length=65_535,
        enable_analyzer=True,
        analyzer_params={"tokenizer": "standard"},
    )
    passages.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    passages.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    # Each sentence's [paragraph, start, end], and its vector (float32, base64): the answer sentence
    # and the best-sentence half of the meaning score come back with the hit.
    passages.add_field("sentences", DataType.JSON)
    passages.add_field("sentence_vectors", DataType.VARCHAR, max_length=65_535)
    passages.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["terms"],
            output_field_names=["sparse"],
        )
    )
    index = client.prepare_index_params()
    index.add_index("vector", index_type="AUTOINDEX", metric_type="IP")
    # bm25s's defaults, which the local store uses.
    index.add_index(
        "sparse",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={"bm25_k1": 1.5, "bm25_b": 0.75},
    )
    # Strong: a worker's next question sees an update another process has just made.
    client.create_collection(name, schema=passages, consistency_level="Strong")
    # Not waited for: waiting asks Milvus Lite for a timestamp it cannot give; loading waits anyway.
    client.create_index(name, index, sync=False)

    documents = client.create_schema(auto_id=False, description="articlebot articles and manifest")
    documents.add_field("key", DataType.VARCHAR, is_primary=True, max_length=MAX_ID + 32)
    documents.add_field("article_id", DataType.VARCHAR, max_length=MAX_ID)
    documents.add_field("part", DataType.INT64)
    documents.add_field("text", DataType.VARCHAR, max_length=65_535)
    documents.add_field("info", DataType.JSON)
    # Milvus wants a vector field in every collection; this one holds nothing.
    documents.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="IP")
    client.create_collection(_documents(name), schema=documents, consistency_level="Strong")
    client.create_index(_documents(name), index, sync=False)
    for collection in (name, _documents(name)):
        client.load_collection(collection)


def _documents(generation: str) -> str:
    return f"{generation}_docs"


def _expression_list(values: Collection[str]) -> str:
    """A Milvus expression's list of strings (JSON's quoting and escapes are Milvus's)."""
    return "[" + ", ".join(json.dumps(value, ensure_ascii=False) for value in values) + "]"


# Rows ----------------------------------------------------------------------------------------------


def _vectors_text(vectors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype=np.float32).tobytes()).decode("ascii")


def _vectors_of(text: str, dimension: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).reshape(-1, dimension)


def _passage_rows(
    passages: Sequence[Passage],
    sentences: Sequence[Sentence],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
) -> list[dict[str, Any]]:
    terms = tokenize([passage.text for passage in passages])
    rows = []
    for passage, words, vector in zip(passages, terms, vectors, strict=True):
        inside = range(passage.first_sentence, passage.last_sentence + 1)
        rows.append(
            {
                "id": passage.id,
                "article_id": passage.article_id,
                "paragraph": passage.paragraph,
                "first_sentence": passage.first_sentence,
                "last_sentence": passage.last_sentence,
                "start": passage.start,
                "end": passage.end,
                "text": passage.text,
                "terms": " ".join(words),
                "vector": vector.tolist(),
                "sentences": [[sentences[i].paragraph, sentences[i].start, sentences[i].end] for i in inside],
                "sentence_vectors": _vectors_text(sentence_vectors[inside.start : inside.stop]),
            }
        )
    return rows


def _article_rows(article: Article, passages: int, sentences: Sequence[Sentence]) -> list[dict[str, Any]]:
    """An article as document rows: its text in chunks; metadata on the first; each chunk names
    the paragraphs (number, start, end) that start in it."""
    spans: dict[int, tuple[int, int]] = {}
    for sentence in sentences:
        spans[sentence.paragraph] = (spans.get(sentence.paragraph, (sentence.start, 0))[0], sentence.end)
    text = article.text
    chunks = [text[at : at + TEXT_CHUNK] for at in range(0, max(len(text), 1), TEXT_CHUNK)]
    rows = []
    for part, chunk in enumerate(chunks):
        low, high = part * TEXT_CHUNK, (part + 1) * TEXT_CHUNK
        info: dict[str, Any] = {
            "paragraphs": [[n, s, e] for n, (s, e) in sorted(spans.items()) if low <= s < high],
        }
        if part == 0:
            info.update(
                title=article.title,
                date=article.date,
                dateline=article.dateline,
                source=article.source,
                url=article.url,
                path=article.path,
                content_hash=article.content_hash,
                parts=len(chunks),
                passages=passages,
            )
        rows.append(
            {
                "key": _article_key(article.id, part),
                "article_id": article.id,
                "part": part,
                "text": chunk,
                "info": info,
                "unused": [0.0, 0.0],
            }
        )
    return rows


def _article_key(article_id: str, part: int) -> str:
    return f"a:{article_id}/{part}"


def _meta_key(kind: str, part: int) -> str:
    return f"m:{kind}/{part}"


# Article rows have parts 0, 1, …; meta rows -1, -2, …, so no article id can be taken for one.
ARTICLES = "part >= 0"


def _meta_rows(kind: str, value: str) -> list[dict[str, Any]]:
    chunks = [value[at : at + META_CHUNK] for at in range(0, max(len(value), 1), META_CHUNK)]
    return [
        {
            "key": _meta_key(kind, part),
            "article_id": kind,
            "part": -1 - part,
            "text": chunk,
            "info": {"parts": len(chunks)},
            "unused": [0.0, 0.0],
        }
        for part, chunk in enumerate(chunks)
    ]


def _read_meta(client: Any, documents: str, kind: str) -> str | None:
    """A meta value, read by primary key (a filter scans every row in Milvus Lite)."""
    first = client.get(documents, ids=[_meta_key(kind, 0)], output_fields=["text", "info"])
    if not first:
        return None
    parts = int(first[0]["info"]["parts"])
    keys = [_meta_key(kind, n) for n in range(1, parts)]
    rest = client.get(documents, ids=keys, output_fields=["text", "part"]) if keys else []
    if len(rest) != parts - 1:
        return None
    return first[0]["text"] + "".join(row["text"] for row in sorted(rest, key=lambda row: -row["part"]))


def _iterate(client: Any, collection: str, expression: str, fields: list[str]) -> Iterator[dict[str, Any]]:
    iterator = client.query_iterator(collection, batch_size=2000, filter=expression, output_fields=fields)
    try:
        while batch := iterator.next():
            yield from batch
    finally:
        iterator.close()


# The store ---------------------------------------------------------------------------------------------


class MilvusStore:
    """The `Store` of a Milvus collection. The build lock stays a file in `lock_dir` (index_dir):
    builds of one archive run on one machine; the workers that answer only read."""

    def __init__(
        self,
        uri: str,
        collection: str = "articlebot",
        token: str | None = None,
        lock_dir: Path | None = None,
        fusion: str = "standardised",
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"fusion is {fusion!r}: use one of {', '.join(FUSIONS)}")
        self.uri = uri
        self.collection = collection
        self.token = token
        self.lock_dir = lock_dir or Path(uri).parent
        self.fusion = fusion
        self._identity_at = 0.0
        self._identity: tuple[str, str] | None = None
        self._loaded: set[str] = set()

    @classmethod
    def of_settings(cls, settings: Any, index_dir: Path) -> MilvusStore:
        """From the config's `[index]` section; Milvus Lite's file defaults to milvus.db in index_dir."""
        uri = settings.milvus_uri or str(index_dir / "milvus.db")
        return cls(uri, settings.milvus_collection, settings.milvus_token, index_dir, settings.milvus_fusion)

    @property
    def location(self) -> str:
        return f"{self.uri} (Milvus collection {self.collection})"

    @cached_property
    def client(self) -> Any:
        return connect(self.uri, self.token)

    def _call(self, what: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A Milvus call; a lost server is one sentence, not a traceback."""
        try:
            return what(*args, **kwargs)
        except ArticlebotError:
            raise
        except Exception as error:
            if type(error).__name__.endswith(("MilvusException", "RpcError")):
                raise _unavailable(self.uri, error) from None
            raise

    def generation(self) -> str | None:
        """The collection the alias names now (loaded for search), or None when there is no index."""
        client = self.client
        try:
            generation = str(client.describe_alias(self.collection)["collection_name"])
        except Exception as error:
            if "does not exist" in str(error) or "not found" in str(error).lower():
                return None
            raise _unavailable(self.uri, error) from None
        if generation not in self._loaded:
            # Milvus Lite opens a file with every collection released; a server keeps them loaded.
            for collection in (generation, _documents(generation)):
                self._call(self.client.load_collection, collection)
            self._loaded.add(generation)
        return generation

    def close(self) -> None:
        """Let go of the client, and of Milvus Lite's file: another process may open it then."""
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()
            if not _is_server(self.uri):
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)
        self._loaded.clear()

    def read_manifest(self) -> Manifest:
        generation = self.generation()
        if generation is None:
            raise FileNotFoundError(self.location)
        text = self._call(lambda: _read_meta(self.client, _documents(generation), "manifest"))
        if text is None:
            raise IndexCorruptError(f"the index at {self.location} has no manifest: {REBUILD}")
        manifest = Manifest.from_json(text, Path(self.uri) / "manifest.json")
        return manifest

    def identity(self) -> tuple[str, str] | None:
        """The live generation and when it was last built or updated (asked at most once a second)."""
        now = time.monotonic()
        if now - self._identity_at < IDENTITY_SECONDS and self._identity is not None:
            return self._identity
        generation = self.generation()
        stamp = None
        if generation is not None:
            key = _meta_key("manifest", 0)
            rows = self._call(
                lambda: self.client.get(_documents(generation), ids=[key], output_fields=["info"])
            )
            stamp = rows[0]["info"].get("stamp") if rows else None
        self._identity = (generation, str(stamp)) if generation is not None else None
        self._identity_at = now
        return self._identity

    def load(self, embedder: Embedder, reuse: Any = None) -> MilvusIndex:
        manifest = self.read_manifest()
        check_compatible(manifest, embedder, self.location)
        generation = self.generation()
        assert generation is not None
        return MilvusIndex(self, generation, manifest, self.fusion)

    def check(self) -> str:
        """The collection's counts held to its manifest's: passages, articles, and each article's passages."""
        manifest = self.read_manifest()
        generation = self.generation()
        assert generation is not None
        index = MilvusIndex(self, generation, manifest, self.fusion)
        stored = self._call(lambda: self.client.query(generation, filter="", output_fields=["count(*)"]))
        passages = int(stored[0]["count(*)"])
        problems = []
        if passages != manifest.passage_count:
            problems.append(f"{passages} passages, not {manifest.passage_count}")
        if set(index.infos) != set(manifest.articles):
            problems.append(f"{len(index.infos)} articles, not {len(manifest.articles)}")
        counted = Counter(
            row["article_id"] for row in _iterate(self.client, generation, 'id != ""', ["article_id"])
        )
        wrong = [a for a, info in index.infos.items() if counted.get(a, 0) != info["passages"]]
        if wrong:
            problems.append(
                f"{len(wrong)} articles with another number of passages than written ({wrong[0]}, …)"
            )
        if problems:
            raise IndexCorruptError(
                f"the index at {self.location} is damaged ({'; '.join(problems)}): {REBUILD}"
            )
        return (
            f"the index at {self.location} is whole: {passages} passages of {len(manifest.articles)} "
            "articles, as its manifest says"
        )

    # Building ---------------------------------------------------------------------------------------

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
        reuse: Any = None,
    ) -> tuple[MilvusIndex, BuildReport]:
        from index.local.build import build_lock

        notice = on_notice or (lambda message: log.warning("%s", message))
        with build_lock(self.lock_dir, notice):
            return self._build(articles, embedder, settings, rebuild, progress, on_article, notice)

    def _build(
        self,
        articles: Sequence[Article | KnownArticle],
        embedder: Embedder,
        settings: SplitSettings,
        rebuild: bool,
        progress: bool,
        on_article: Callable[[Article], None] | None,
        notice: Callable[[str], None],
    ) -> tuple[MilvusIndex, BuildReport]:
        from index.local.build import split_and_embed

        started = time.perf_counter()
        client = self.client
        live_generation = self.generation()
        previous = None if rebuild else self._previous(embedder, settings, notice)
        self._drop_stale(live_generation)
        live = dict(previous.articles) if previous is not None else {}
        unread = [a.id for a in articles if isinstance(a, KnownArticle) and live.get(a.id) != a.content_hash]
        if unread:
            raise UnreadArticles(f"{len(unread)} articles were not read but the index does not hold them")
        too_long = next((a.id for a in articles if len(a.id.encode("utf-8")) > MAX_ID), None)
        if too_long is not None:
            raise ArticlebotError(f"the article id {too_long[:40]}… is over {MAX_ID} bytes: rename its file")
        if settings.max_sentences * embedder.dimension * 16 // 3 > 65_000:
            raise ArticlebotError(
                f"passages.max_sentences is {settings.max_sentences}: the milvus backend holds a "
                "passage's sentence vectors in one field, which fits up to 31 sentences"
            )
        fresh = [a for a in articles if isinstance(a, Article) and live.get(a.id) != a.content_hash]
        kept = {a.id for a in articles} - {a.id for a in fresh}
        gone = sorted(set(live) - kept)  # removed, or changed and written again
        if previous is None:
            # The clock to the nanosecond, read once: two rebuilds in one second get two names (the
            # remainder of perf_counter_ns() that stood here gave the same one about once in 1,000).
            now = time.time_ns()
            stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now // 10**9))
            generation = f"{self.collection}_g{stamp}{now % 10**9:09d}"
            self._call(lambda: _create_generation(client, generation, embedder.dimension))
            words: Counter[str] = Counter()
            terms: Counter[str] = Counter()
        else:
            assert live_generation is not None
            generation = live_generation
            words, terms = self._counts(generation)
            self._forget(generation, gone, words, terms)
        parts, _ = split_and_embed(fresh, embedder, settings, progress, on_article)
        # Rows are made and inserted a batch at a time: at 200,000 passages, every row as Python
        # objects at once would be gigabytes (a vector as a list of floats is 9 kB).
        passage_rows: list[dict[str, Any]] = []
        document_rows: list[dict[str, Any]] = []
        for article, part in zip(fresh, parts, strict=True):
            passage_rows += _passage_rows(
                part.passages, part.sentences, part.passage_vectors, part.sentence_vectors
            )
            document_rows += _article_rows(article, len(part.passages), part.sentences)
            words.update(word_counts([article.text]))
            terms.update(term for words_ in tokenize([p.text for p in part.passages]) for term in set(words_))
            if len(passage_rows) >= INSERT_BATCH:
                self._insert(generation, passage_rows)
                self._insert(_documents(generation), document_rows)
                passage_rows, document_rows = [], []
        self._insert(generation, passage_rows)
        self._insert(_documents(generation), document_rows)
        passage_count = self._passage_total(generation)
        manifest = Manifest(
            model=embedder.model_name,
            dimension=embedder.dimension,
            articles={article.id: article.content_hash for article in articles},
            split=settings,
            passage_count=passage_count,
            sentence_count=0,
            dense_index="milvus",
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            versions=_library_versions(),
            sources=file_signatures(article.path for article in articles),
        )
        self._write_meta(generation, manifest, words, terms)
        self._call(lambda: client.flush(generation))
        if generation != live_generation:
            # The new generation is whole: point the alias at it. The one it replaces is dropped by
            # the next build, so a question already reading it in another process can finish.
            if live_generation is None:
                self._call(lambda: client.create_alias(generation, self.collection))
            else:
                self._call(lambda: client.alter_alias(generation, self.collection))
        self._identity_at = 0.0
        index = MilvusIndex(self, generation, manifest, self.fusion)
        removed = len(set(live) - {a.id for a in articles})
        report = BuildReport(len(articles), passage_count, len(fresh), removed, time.perf_counter() - started)
        return index, report

    def _previous(
        self, embedder: Embedder, settings: SplitSettings, notice: Callable[[str], None]
    ) -> Manifest | None:
        try:
            manifest = self.read_manifest()
            check_compatible(manifest, embedder, self.location)
        except FileNotFoundError:
            return None
        except (IndexMismatchError, IndexCorruptError) as error:
            notice(f"{error.args[0].split(': rebuild')[0]}: building it again from scratch")
            return None
        return manifest if manifest.split == settings else None

    def _drop_stale(self, live: str | None) -> None:
        """Generations of this collection the alias does not name: replaced by the last rebuild,
        or left half-built by a crashed one."""
        pattern = re.compile(rf"{re.escape(self.collection)}_g\d+(_docs)?")
        for name in self._call(self.client.list_collections):
            if pattern.fullmatch(name) and live not in (name, name.removesuffix("_docs")):
                log.info("dropping %s, a generation no longer served", name)
                self._call(self.client.drop_collection, name)

    def _counts(self, generation: str) -> tuple[Counter[str], Counter[str]]:
        documents = _documents(generation)
        words = _read_meta(self.client, documents, "words")
        terms = _read_meta(self.client, documents, "terms")
        if words is None or terms is None:
            raise IndexCorruptError(f"the index at {self.location} lacks its word counts: {REBUILD}")
        return Counter(json.loads(words)), Counter(json.loads(terms))

    def _forget(self, generation: str, gone: Sequence[str], words: Counter[str], terms: Counter[str]) -> None:
        """Delete these articles' rows by their id, and take their words out of the counts."""
        client = self.client
        for at in range(0, len(gone), 200):
            batch = gone[at : at + 200]
            listed = _expression_list(batch)
            mine = f"{ARTICLES} and article_id in {listed}"
            texts = _iterate(client, _documents(generation), mine, ["text"])
            words.subtract(word_counts(row["text"] for row in texts))
            for row in _iterate(client, generation, f"article_id in {listed}", ["text"]):
                terms.subtract(set(tokenize([row["text"]])[0]))
            self._call(client.delete, generation, filter=f"article_id in {listed}")
            self._call(client.delete, _documents(generation), filter=mine)
        for counter in (words, terms):
            for key in [key for key, count in counter.items() if count <= 0]:
                del counter[key]

    def _insert(self, collection: str, rows: Sequence[dict[str, Any]]) -> None:
        for at in range(0, len(rows), INSERT_BATCH):
            batch = rows[at : at + INSERT_BATCH]
            self._call(self.client.insert, collection, list(batch))

    def _passage_total(self, generation: str) -> int:
        rows = self._call(lambda: self.client.query(generation, filter="", output_fields=["count(*)"]))
        return int(rows[0]["count(*)"])

    def _write_meta(
        self, generation: str, manifest: Manifest, words: Counter[str], terms: Counter[str]
    ) -> None:
        """Upserted by key, the manifest last: its first row's stamp tells readers a new index is there."""
        documents = _documents(generation)
        for kind, value in (("words", json.dumps(words)), ("terms", json.dumps(terms))):
            self._replace_meta(documents, kind, value)
        rows = _meta_rows("manifest", manifest.to_json())
        rows[0]["info"]["stamp"] = f"{time.time():.6f}"
        self._replace_meta(documents, "manifest", rows)

    def _replace_meta(self, documents: str, kind: str, value: str | list[dict[str, Any]]) -> None:
        rows = _meta_rows(kind, value) if isinstance(value, str) else value
        # Later parts first and the first part last, so a reader that sees the new first part finds
        # every part it names.
        for at in range(len(rows), 0, -INSERT_BATCH):
            batch = rows[max(0, at - INSERT_BATCH) : at]
            self._call(self.client.upsert, documents, batch)
        stale = f'part < {-len(rows)} and article_id == "{kind}"'
        self._call(lambda: self.client.delete(documents, filter=stale))


def check_compatible(manifest: Manifest, embedder: Embedder, location: str) -> None:
    """Refuse an index built by another format, model or dimension, saying which."""
    for key, mine, wanted in (
        ("format_version", manifest.format_version, FORMAT_VERSION),
        ("model", manifest.model, embedder.model_name),
        ("dimension", manifest.dimension, embedder.dimension),
    ):
        if mine != wanted:
            raise IndexMismatchError(
                f"the index at {location} was built with {key} {mine!r}, not {wanted!r}: {REBUILD}"
            )


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in ("pymilvus", "milvus-lite", "sentence-transformers", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


# The index ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scored:
    """A candidate passage with what scores it, as Milvus returned it."""

    passage: Passage
    vector: np.ndarray
    sentences: list[Sentence]
    sentence_vectors: np.ndarray


class MilvusIndex:
    """The `SearchIndex` of one Milvus generation: searched and read in Milvus, question by question."""

    def __init__(
        self, store: MilvusStore, generation: str, manifest: Manifest, fusion: str = "standardised"
    ) -> None:
        self.store = store
        self.client = store.client
        self.generation = generation
        self.documents = _documents(generation)
        self.manifest = manifest
        self.fusion = fusion
        self.dimension = manifest.dimension
        # The last articles read, and each passage's sentences as they came with it.
        self._article = lru_cache(maxsize=64)(self._read_article)
        self._sentences: dict[str, tuple[list[Sentence], np.ndarray]] = {}

    # The corpus ------------------------------------------------------------------------------------

    @cached_property
    def infos(self) -> dict[str, dict[str, Any]]:
        """Every article's metadata (no text), read once, when first asked for."""
        rows = _iterate(self.client, self.documents, "part == 0", ["article_id", "info"])
        return {row["article_id"]: row["info"] for row in rows}

    @property
    def articles(self) -> Mapping[str, Article]:
        return _MilvusArticles(self)

    @cached_property
    def passage_counts(self) -> Counter[str]:
        return Counter({article_id: int(info["passages"]) for article_id, info in self.infos.items()})

    @cached_property
    def word_counts(self) -> Counter[str]:
        return Counter(json.loads(_read_meta(self.client, self.documents, "words") or "{}"))

    @cached_property
    def _terms(self) -> Counter[str]:
        return Counter(json.loads(_read_meta(self.client, self.documents, "terms") or "{}"))

    def idf(self, term: str) -> float:
        return bm25_idf(self.manifest.passage_count, self._terms.get(term, 0))

    def _read_article(self, article_id: str) -> Article | None:
        """One article, by primary key: a question's quote needs no list of every article."""
        first = self.client.get(
            self.documents, ids=[_article_key(article_id, 0)], output_fields=["text", "info"]
        )
        if not first:
            return None
        info = first[0]["info"]
        keys = [_article_key(article_id, n) for n in range(1, int(info["parts"]))]
        rest = self.client.get(self.documents, ids=keys, output_fields=["text", "part"]) if keys else []
        text = first[0]["text"] + "".join(row["text"] for row in sorted(rest, key=lambda row: row["part"]))
        return _article_of(article_id, info, text)

    def read_articles(self, article_ids: Sequence[str]) -> list[Article]:
        """These articles (those the index holds), in order, read in one request."""
        infos = {a: self.infos[a] for a in article_ids if a in self.infos}
        keys = [_article_key(a, n) for a, info in infos.items() for n in range(int(info["parts"]))]
        fields = ["article_id", "part", "text"]
        rows = self.client.get(self.documents, ids=keys, output_fields=fields) if keys else []
        parts: dict[str, list[tuple[int, str]]] = {}
        for row in rows:
            parts.setdefault(row["article_id"], []).append((int(row["part"]), row["text"]))
        return [
            _article_of(article_id, info, "".join(text for _, text in sorted(parts.get(article_id, []))))
            for article_id, info in infos.items()
        ]

    def paragraph_spans(self, article_id: str) -> dict[int, tuple[int, int]]:
        info = self.infos.get(article_id)
        if info is None:
            return {}
        keys = [_article_key(article_id, n) for n in range(int(info["parts"]))]
        rows = self.client.get(self.documents, ids=keys, output_fields=["info"])
        return {int(n): (int(s), int(e)) for row in rows for n, s, e in row["info"]["paragraphs"]}

    def paragraph_count(self, article_id: str) -> int:
        return max(self.paragraph_spans(article_id), default=0)

    def passage(self, passage_id: str) -> Passage | None:
        rows = self.client.get(self.generation, ids=[passage_id], output_fields=SCORING_FIELDS)
        return self._remember(rows[0]).passage if rows else None

    def _passage_sentences(self, passage_id: str) -> tuple[list[Sentence], np.ndarray]:
        rows = self.client.get(self.generation, ids=[passage_id], output_fields=SCORING_FIELDS)
        if not rows:
            raise KeyError(passage_id)
        scored = self._remember(rows[0])
        return scored.sentences, scored.sentence_vectors

    def sentences_of(self, passage: Passage) -> list[Sentence]:
        return self._sentence_data(passage)[0]

    def sentence_vectors_of(self, passage: Passage) -> np.ndarray:
        return self._sentence_data(passage)[1]

    def _sentence_data(self, passage: Passage) -> tuple[list[Sentence], np.ndarray]:
        # Kept from the search that found the passage; read again when another thread's searches
        # have since emptied the cache.
        return self._sentences.get(passage.id) or self._passage_sentences(passage.id)

    def surrounding(self, passage: Passage, paragraphs: int = 1) -> Surrounding:
        spans = self.paragraph_spans(passage.article_id)
        sentences = self.sentences_of(passage)
        first = max(min(spans), sentences[0].paragraph - paragraphs)
        last = min(max(spans), sentences[-1].paragraph + paragraphs)
        inside = [spans[number] for number in range(first, last + 1) if number in spans]
        return Surrounding(inside[0][0], inside[-1][1], first, last)

    def _remember(self, row: dict[str, Any]) -> _Scored:
        """A returned row as a passage, its vector and its sentences (kept for the answer step)."""
        passage = Passage(
            row["id"],
            row["article_id"],
            int(row["paragraph"]),
            int(row["first_sentence"]),
            int(row["last_sentence"]),
            int(row["start"]),
            int(row["end"]),
            row["text"],
        )
        vectors = _vectors_of(row["sentence_vectors"], self.dimension)
        sentences = [
            Sentence(
                passage.article_id,
                passage.first_sentence + number,
                int(paragraph),
                int(start),
                int(end),
                passage.text[int(start) - passage.start : int(end) - passage.start],
            )
            for number, (paragraph, start, end) in enumerate(row["sentences"])
        ]
        if len(self._sentences) > 4096:
            self._sentences.clear()
        self._sentences[passage.id] = (sentences, vectors)
        return _Scored(passage, np.asarray(row["vector"], dtype=np.float32), sentences, vectors)

    # Search ----------------------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        k: int = 5,
        settings: SearchSettings = SearchSettings(),
        *,
        within: Collection[str] | None = None,
    ) -> list[Hit]:
        """The `k` best passages, best first; only articles in `within` when it is given."""
        count = self.manifest.passage_count
        if count == 0 or k <= 0 or (within is not None and not within):
            return []
        mode = settings.mode
        if mode != "lexical" and query_vector is None:
            raise ValueError(f"{mode} search needs the query's vector")
        expression = "" if within is None else f"article_id in {_expression_list(list(within))}"
        terms = " ".join(tokenize([query])[0])
        depth = min(count, max(k, settings.candidates))
        if mode == "lexical":
            found = self._lexical(terms, depth if k > depth else k, expression)
            return [self._hit(s, score, self._cosine(s, query_vector), score) for s, score in found]
        assert query_vector is not None
        vector = np.asarray(query_vector, dtype=np.float32)
        if mode == "dense":
            dense = self._search("vector", [vector.tolist()], depth, expression)
            scored = [(s, float(s.vector @ vector)) for s in dense]
            scored.sort(key=lambda pair: -pair[1])
            return [self._hit(s, cosine, cosine, 0.0) for s, cosine in scored[:k]]
        if self.fusion != "standardised":
            return self._ranked(vector, terms, k, depth, expression, settings)
        dense = self._search("vector", [vector.tolist()], depth, expression)
        lexical = dict((s.passage.id, score) for s, score in self._lexical(terms, depth, expression))
        candidates = {s.passage.id: s for s in dense}
        missing = [pid for pid in lexical if pid not in candidates]
        if missing:
            candidates.update((s.passage.id, s) for s in self._rows(missing))
        unscored = [pid for pid in candidates if pid not in lexical]
        if unscored and terms:
            # BM25 scores of the dense side's candidates that its own top did not reach.
            listed = f"id in {_expression_list(unscored)}"
            lexical.update((s.passage.id, score) for s, score in self._lexical(terms, len(unscored), listed))
        ordered = list(candidates.values())
        cosines = np.array([s.vector @ vector for s in ordered], dtype=np.float32)
        best = np.array([float(np.max(s.sentence_vectors @ vector)) for s in ordered], dtype=np.float32)
        bm25 = np.array([lexical.get(s.passage.id, 0.0) for s in ordered], dtype=np.float32)
        combined = fuse(cosines, best, bm25, settings)
        order = np.argsort(-combined, kind="stable")[:k]
        return [self._hit(ordered[i], float(combined[i]), float(cosines[i]), float(bm25[i])) for i in order]

    def _ranked(
        self, vector: np.ndarray, terms: str, k: int, depth: int, expression: str, settings: SearchSettings
    ) -> list[Hit]:
        """One server-side hybrid request, fused by Milvus's own WeightedRanker or RRFRanker."""
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        requests = [
            AnnSearchRequest(
                data=[vector.tolist()], anns_field="vector", param={}, limit=depth, expr=expression or None
            )
        ]
        if terms:
            requests.append(
                AnnSearchRequest(
                    data=[terms], anns_field="sparse", param={}, limit=depth, expr=expression or None
                )
            )
        weights = (settings.dense_weight, settings.lexical_weight)[: len(requests)]
        ranker = WeightedRanker(*weights) if self.fusion == "weighted" else RRFRanker()
        result = self.store._call(
            lambda: self.client.hybrid_search(
                self.generation, requests, ranker=ranker, limit=k, output_fields=SCORING_FIELDS
            )
        )
        hits = []
        for row in result[0]:
            scored = self._remember(row["entity"])
            hits.append(self._hit(scored, float(row["distance"]), float(scored.vector @ vector), 0.0))
        return hits

    def _search(self, field: str, data: list[Any], limit: int, expression: str) -> list[_Scored]:
        return [scored for scored, _ in self._search_scored(field, data, limit, expression)]

    def _search_scored(
        self, field: str, data: list[Any], limit: int, expression: str
    ) -> list[tuple[_Scored, float]]:
        result = self.store._call(
            lambda: self.client.search(
                self.generation,
                data=data,
                anns_field=field,
                limit=limit,
                filter=expression,
                output_fields=SCORING_FIELDS,
            )
        )
        return [(self._remember(row["entity"]), float(row["distance"])) for row in result[0]]

    def _lexical(self, terms: str, limit: int, expression: str) -> list[tuple[_Scored, float]]:
        """BM25's best, with their scores (Milvus Lite reports a BM25 score as its negative)."""
        if not terms or limit <= 0:
            return []
        found = self._search_scored("sparse", [terms], limit, expression)
        return [(scored, abs(score)) for scored, score in found]

    def _rows(self, passage_ids: Sequence[str]) -> list[_Scored]:
        rows = self.store._call(
            lambda: self.client.get(self.generation, ids=list(passage_ids), output_fields=SCORING_FIELDS)
        )
        return [self._remember(row) for row in rows]

    @staticmethod
    def _cosine(scored: _Scored, vector: np.ndarray | None) -> float:
        return float(scored.vector @ vector) if vector is not None else float("nan")

    @staticmethod
    def _hit(scored: _Scored, score: float, dense: float, lexical: float) -> Hit:
        return Hit(scored.passage, score, dense, lexical)


def _article_of(article_id: str, info: dict[str, Any], text: str) -> Article:
    return Article(
        id=article_id,
        path=info["path"],
        title=info["title"],
        text=text,
        date=info.get("date"),
        dateline=info.get("dateline"),
        source=info.get("source"),
        url=info.get("url"),
    )


class _MilvusArticles(Mapping[str, Article]):
    """The live articles by id: ids and metadata read once, each text when asked for."""

    def __init__(self, index: MilvusIndex) -> None:
        self._index = index

    def __getitem__(self, article_id: str) -> Article:
        article = self._index._article(article_id)
        if article is None:
            raise KeyError(article_id)
        return article

    def __iter__(self) -> Iterator[str]:
        return iter(self._index.infos)

    def __len__(self) -> int:
        return len(self._index.infos)

    def values(self) -> ValuesView[Article]:
        """Every article, read a few hundred at a time (not one request each)."""
        return _Values(self)


class _Values(ValuesView[Article]):
    BATCH = 256

    def __init__(self, articles: _MilvusArticles) -> None:
        super().__init__(articles)
        self._articles = articles

    def __iter__(self) -> Iterator[Article]:
        ids = list(self._articles)
        for at in range(0, len(ids), self.BATCH):
            yield from self._articles._index.read_articles(ids[at : at + self.BATCH])
