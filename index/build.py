"""Building and updating an index folder: one build at a time, only changed articles embedded."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from index.articles import Article
from index.dense import DEFAULT_ANN_THRESHOLD, dense_index, describe_dense_index
from index.embed import Embedder
from index.errors import IndexCorruptError, IndexLocationError, IndexMismatchError
from index.lexical import LexicalIndex
from index.manifest import MANIFEST, Manifest
from index.search import PassageIndex
from index.split import Passage, Sentence, SplitSettings, split_article
from index.storage import GENERATION, MANIFEST_TEMPORARY, load_index, save_index

log = logging.getLogger(__name__)

BUILD_LOCK = "build.lock"
DEFAULT_SPLIT = SplitSettings()


@dataclass(frozen=True)
class BuildReport:
    articles: int
    passages: int
    embedded_articles: int
    removed_articles: int
    seconds: float


def build_index(
    articles: Sequence[Article],
    embedder: Embedder,
    index_dir: Path,
    settings: SplitSettings = DEFAULT_SPLIT,
    *,
    rebuild: bool = False,
    progress: bool = False,
    on_article: Callable[[Article], None] | None = None,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    on_notice: Callable[[str], None] | None = None,
) -> tuple[PassageIndex, BuildReport]:
    """Bring the index at `index_dir` up to date with `articles`, embedding only what changed.

    When another process is building the same folder, waits for it, then updates what it built.
    An index of another format or model is built again from scratch. Both are said in one line
    through `on_notice` (else the log).
    """
    notice = on_notice or (lambda message: log.warning("%s", message))
    _refuse_foreign_folder(index_dir)
    with build_lock(index_dir, notice):
        _remove_leftovers(index_dir)
        return _build_index(
            articles, embedder, index_dir, settings, rebuild, progress, on_article, ann_threshold, notice
        )


def _refuse_foreign_folder(index_dir: Path) -> None:
    """A folder with no manifest that holds anything articlebot did not write is not an index:
    building there would delete whatever in it looks like a generation. Refuse it instead."""
    if not index_dir.is_dir() or (index_dir / MANIFEST).exists():
        return
    foreign = sorted(entry.name for entry in index_dir.iterdir() if not _is_ours(entry))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise IndexLocationError(
            f"{index_dir} holds files that are not an articlebot index ({shown}): "
            "give --index-dir (or index_dir) an empty or new folder"
        )


def _is_ours(entry: Path) -> bool:
    name = entry.name
    if name == BUILD_LOCK or MANIFEST_TEMPORARY.fullmatch(name):
        return True
    return entry.is_dir() and GENERATION.fullmatch(name) is not None


def _remove_leftovers(index_dir: Path) -> None:
    """Under the lock: generations no manifest names and manifest temporaries are a crashed or
    failed build's (a full disk, kill -9 while saving); each retry would otherwise add one."""
    try:
        current = Manifest.read(index_dir).generation
    except (FileNotFoundError, IndexCorruptError, IndexMismatchError):
        current = None
    for entry in index_dir.iterdir():
        if entry.name == current or not _is_ours(entry) or entry.name == BUILD_LOCK:
            continue
        log.info("removing %s, left by an unfinished build", entry)
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@contextmanager
def build_lock(index_dir: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the folder's build lock, waiting for whoever holds it.

    flock, because the kernel drops it when its holder ends, however it ends (kill -9 and crashes
    included): there is never a stale lock to clear by hand. The holder's process id is written
    in the file, for the message a waiting build gives.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / BUILD_LOCK).open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            message = (
                f"another build of the index at {index_dir} is running"
                f"{f' (process {holder})' if holder.isdigit() else ''}: waiting for it to finish"
            )
            if on_wait is not None:
                on_wait(message)
            else:
                log.warning("%s", message)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield  # closing the file releases the lock


def _build_index(
    articles: Sequence[Article],
    embedder: Embedder,
    index_dir: Path,
    settings: SplitSettings,
    rebuild: bool,
    progress: bool,
    on_article: Callable[[Article], None] | None,
    ann_threshold: int,
    notice: Callable[[str], None],
) -> tuple[PassageIndex, BuildReport]:
    started = time.perf_counter()
    previous: PassageIndex | None = None
    if not rebuild and (index_dir / MANIFEST).exists():
        try:
            previous = load_index(index_dir, embedder)
        except IndexMismatchError as error:
            notice(f"{error.args[0].split(': rebuild')[0]}: building it again from scratch")
        if previous is not None and previous.manifest is not None and previous.manifest.split != settings:
            previous = None  # passages of another shape: every article is split again

    reused = {} if previous is None else _reusable(previous, articles)
    fresh = [article for article in articles if article.id not in reused]
    new_parts = _split_and_embed(fresh, embedder, settings, progress, on_article)

    sentences: list[Sentence] = []
    passages: list[Passage] = []
    sentence_blocks: list[np.ndarray] = []
    passage_blocks: list[np.ndarray] = []
    for article in articles:
        part = reused.get(article.id) or new_parts[article.id]
        sentences.extend(part.sentences)
        passages.extend(part.passages)
        sentence_blocks.append(part.sentence_vectors)
        passage_blocks.append(part.passage_vectors)
    dimension = embedder.dimension
    sentence_vectors = (
        np.concatenate(sentence_blocks) if sentence_blocks else np.zeros((0, dimension), np.float32)
    )
    passage_vectors = (
        np.concatenate(passage_blocks) if passage_blocks else np.zeros((0, dimension), np.float32)
    )
    faiss_index = dense_index(passage_vectors, ann_threshold)

    manifest = Manifest(
        model=embedder.model_name,
        dimension=dimension,
        articles={article.id: article.content_hash for article in articles},
        split=settings,
        passage_count=len(passages),
        sentence_count=len(sentences),
        dense_index=describe_dense_index(faiss_index),
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        versions=_library_versions(),
    )
    index = PassageIndex(
        articles,
        sentences,
        passages,
        sentence_vectors,
        passage_vectors,
        LexicalIndex.build([passage.text for passage in passages]),
        manifest,
        faiss_index,
    )
    save_index(index, index_dir)
    removed = 0 if previous is None else len(set(previous.articles) - {a.id for a in articles})
    report = BuildReport(len(articles), len(passages), len(fresh), removed, time.perf_counter() - started)
    return index, report


@dataclass
class _ArticlePart:
    sentences: list[Sentence]
    passages: list[Passage]
    sentence_vectors: np.ndarray
    passage_vectors: np.ndarray


def _reusable(previous: PassageIndex, articles: Sequence[Article]) -> dict[str, _ArticlePart]:
    """The parts of the previous index whose article is unchanged."""
    hashes = previous.manifest.articles if previous.manifest is not None else {}
    wanted = {a.id for a in articles if hashes.get(a.id) == a.content_hash}
    # Rows grouped in one pass each: a scan per article would be quadratic in a large archive.
    sentence_rows: dict[str, list[int]] = {}
    passage_rows: dict[str, list[int]] = {}
    for row, sentence in enumerate(previous.sentences):
        if sentence.article_id in wanted:
            sentence_rows.setdefault(sentence.article_id, []).append(row)
    for row, passage in enumerate(previous.passages):
        if passage.article_id in wanted:
            passage_rows.setdefault(passage.article_id, []).append(row)
    parts: dict[str, _ArticlePart] = {}
    for article_id in wanted:
        s_rows = sentence_rows.get(article_id, [])
        p_rows = passage_rows.get(article_id, [])
        parts[article_id] = _ArticlePart(
            [previous.sentences[row] for row in s_rows],
            [previous.passages[row] for row in p_rows],
            previous.sentence_vectors[s_rows],
            previous.passage_vectors[p_rows],
        )
    return parts


def _split_and_embed(
    articles: Sequence[Article],
    embedder: Embedder,
    settings: SplitSettings,
    progress: bool,
    on_article: Callable[[Article], None] | None,
) -> dict[str, _ArticlePart]:
    """Split every article, then embed all their passages and sentences in large batches."""
    split = {}
    for article in articles:
        if on_article is not None:
            on_article(article)
        split[article.id] = split_article(article, settings, embedder.count_tokens)
    all_passages = [p.text for sentences, passages in split.values() for p in passages]
    all_sentences = [s.text for sentences, passages in split.values() for s in sentences]
    # One call: one progress bar with one ETA, and batches sorted by length across both kinds.
    vectors = embedder.encode(all_passages + all_sentences, progress=progress)
    passage_vectors, sentence_vectors = vectors[: len(all_passages)], vectors[len(all_passages) :]
    parts = {}
    p_at = s_at = 0
    for article_id, (sentences, passages) in split.items():
        parts[article_id] = _ArticlePart(
            sentences,
            passages,
            sentence_vectors[s_at : s_at + len(sentences)],
            passage_vectors[p_at : p_at + len(passages)],
        )
        p_at += len(passages)
        s_at += len(sentences)
    return parts


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in ("sentence-transformers", "faiss-cpu", "bm25s", "numpy", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
