"""Building and updating an index folder: one build at a time, only changed articles embedded."""

from __future__ import annotations

import fcntl
import json
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

from index.articles import Article, KnownArticle, file_signatures
from index.embed import Embedder, embed_split
from index.errors import IndexCorruptError, IndexLocationError, IndexMismatchError
from index.local.bm25 import LexicalIndex
from index.local.dense import dense_index, describe_dense_index
from index.local.search import PassageIndex, Segment
from index.local.storage import (
    MANIFEST_TEMPORARY,
    SEGMENT,
    make_index_folder,
    new_segment_name,
    read_segment,
    save_manifest,
    write_error,
    write_segment,
)
from index.manifest import MANIFEST, Manifest, SegmentRecord
from index.split import Passage, Sentence, SplitSettings, split_article
from index.store import DEFAULT_ANN_THRESHOLD, BuildReport, UnreadArticles

log = logging.getLogger(__name__)

BUILD_LOCK = "build.lock"
# More segments than this and the small ones are merged into one (see _merge_small).
MAX_SEGMENTS = 8
DEFAULT_SPLIT = SplitSettings()


def build_index(
    articles: Sequence[Article | KnownArticle],
    embedder: Embedder,
    index_dir: Path,
    settings: SplitSettings = DEFAULT_SPLIT,
    *,
    rebuild: bool = False,
    progress: bool = False,
    on_article: Callable[[Article], None] | None = None,
    ann_threshold: int = DEFAULT_ANN_THRESHOLD,
    on_notice: Callable[[str], None] | None = None,
    reuse: PassageIndex | None = None,
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
            articles,
            embedder,
            index_dir,
            settings,
            rebuild,
            progress,
            on_article,
            ann_threshold,
            notice,
            reuse,
        )


def _refuse_foreign_folder(index_dir: Path) -> None:
    """Build only where articlebot has built before, or in an empty or new folder.

    Anywhere else a build would remove what looks like its own (segments, older generations) and
    overwrite a `manifest.json`: a user's `gen-20240101T000000-1-1/` would go, and their file in
    it. Whatever its entries are called, a folder is taken for an index only by what a build
    leaves first and last: its lock file, taken before anything is written, or a manifest of its
    own (an older version's too, which may have left no lock)."""
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexLocationError(
            f"{index_dir} is a file, not a folder: give --index-dir (or index_dir) a folder for the index"
        )
    if not index_dir.is_dir() or _holds_our_manifest(index_dir):
        return
    locked = (index_dir / BUILD_LOCK).exists()
    # A damaged manifest of ours ("rebuild with --rebuild") stands beside our lock.
    foreign = sorted(
        entry.name
        for entry in index_dir.iterdir()
        if not (locked and (entry.name == MANIFEST or _is_ours(entry)))
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise IndexLocationError(
            f"{index_dir} holds files that are not an articlebot index ({shown}): "
            "give --index-dir (or index_dir) an empty or new folder"
        )


def _holds_our_manifest(index_dir: Path) -> bool:
    """A manifest.json a build wrote (it names a format version and a model), damaged or not."""
    try:
        data = json.loads((index_dir / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "format_version" in data and "model" in data


def _is_ours(entry: Path) -> bool:
    """A name a build gives what it writes besides the manifest (in a folder known to be an index)."""
    name = entry.name
    if name == BUILD_LOCK or MANIFEST_TEMPORARY.fullmatch(name):
        return True
    return entry.is_dir() and SEGMENT.fullmatch(name) is not None


def _remove_leftovers(index_dir: Path) -> None:
    """Under the lock: segments no manifest names and manifest temporaries are a crashed or
    failed build's (a full disk, kill -9 while saving); each retry would otherwise add one."""
    try:
        current = {record.name for record in Manifest.read(index_dir).segments}
    except (FileNotFoundError, IndexCorruptError, IndexMismatchError):
        current = set()
    for entry in index_dir.iterdir():
        if entry.name in current or not _is_ours(entry) or entry.name == BUILD_LOCK:
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
    make_index_folder(index_dir)
    try:
        lock_file = (index_dir / BUILD_LOCK).open("a+", encoding="utf-8")
    except OSError as error:
        raise write_error(error, index_dir) from None
    with lock_file as lock:
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
    articles: Sequence[Article | KnownArticle],
    embedder: Embedder,
    index_dir: Path,
    settings: SplitSettings,
    rebuild: bool,
    progress: bool,
    on_article: Callable[[Article], None] | None,
    ann_threshold: int,
    notice: Callable[[str], None],
    reuse: PassageIndex | None,
) -> tuple[PassageIndex, BuildReport]:
    started = time.perf_counter()
    previous = None if rebuild else _previous_manifest(index_dir, embedder, settings, notice)
    live = dict(previous.articles) if previous is not None else {}
    # Articles the caller found unchanged on disk come as KnownArticle: never embedded again.
    unread = [a.id for a in articles if isinstance(a, KnownArticle) and live.get(a.id) != a.content_hash]
    if unread:
        raise UnreadArticles(
            f"{len(unread)} articles were not read but the index does not hold them ({unread[0]}, …)"
        )
    fresh = [a for a in articles if isinstance(a, Article) and live.get(a.id) != a.content_hash]
    kept = {article.id for article in articles} - {article.id for article in fresh}
    # Removed and changed articles are masked where they stand; a segment left empty goes.
    records = [record.masking(set(live) - kept) for record in (previous.segments if previous else ())]
    records = [record for record in records if record.live]
    files = dict(previous.files) if previous is not None else {}
    written: list[Segment] = []
    if fresh:
        parts, vectors = split_and_embed(fresh, embedder, settings, progress, on_article)
        segment = _segment(new_segment_name(index_dir), fresh, parts, ann_threshold, vectors)
        files.update(write_segment(segment, index_dir))
        records.append(_record_of(segment))
        written.append(segment)
    loaded = {segment.name: segment for segment in [*(reuse.segments if reuse else ()), *written]}
    records, merged = _merge_small(records, loaded, index_dir, embedder.dimension, ann_threshold)
    for segment in merged:
        files.update(write_segment(segment, index_dir))
        loaded[segment.name] = segment
    named = {record.name for record in records}
    segments = [loaded.get(r.name) or read_segment(index_dir, r, embedder.dimension) for r in records]
    largest = max(segments, key=lambda segment: segment.passage_count, default=None)
    manifest = Manifest(
        model=embedder.model_name,
        dimension=embedder.dimension,
        articles={article.id: article.content_hash for article in articles},
        split=settings,
        passage_count=sum(r.passages for r in records),  # masked ones included
        sentence_count=sum(r.sentences for r in records),
        dense_index=describe_dense_index(largest.faiss_index) if largest is not None else "flat",
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        versions=_library_versions(),
        segments=tuple(records),
        files={name: record for name, record in files.items() if name.split("/", 1)[0] in named},
        sources=file_signatures(article.path for article in articles),
    )
    save_manifest(manifest, index_dir)
    deleted = {record.name: record.deleted for record in records if record.deleted}
    index = PassageIndex.of_segments(segments, deleted, manifest)
    removed = len(set(live) - {article.id for article in articles})
    report = BuildReport(
        len(articles), len(index.passages), len(fresh), removed, time.perf_counter() - started
    )
    return index, report


def _previous_manifest(
    index_dir: Path, embedder: Embedder, settings: SplitSettings, notice: Callable[[str], None]
) -> Manifest | None:
    """The saved index's manifest when this build can add to it; None when it starts afresh."""
    try:
        manifest = Manifest.read(index_dir)
        manifest.check_compatible(embedder, index_dir)
    except FileNotFoundError:
        return None
    except IndexMismatchError as error:
        notice(f"{error.args[0].split(': rebuild')[0]}: building it again from scratch")
        return None
    if manifest.split != settings:
        return None  # passages of another shape: every article is split again
    return manifest


def _segment(
    name: str,
    articles: Sequence[Article],
    parts: Sequence[_ArticlePart],
    ann_threshold: int,
    vectors: tuple[np.ndarray, np.ndarray] | None = None,
) -> Segment:
    """A segment of these articles, split and embedded: its BM25 and dense index built.
    `vectors`: the parts' sentence and passage vectors already stacked in their order."""
    sentences = [s for part in parts for s in part.sentences]
    passages = [p for part in parts for p in part.passages]
    dimension = parts[0].passage_vectors.shape[1] if parts else 0
    sentence_vectors, passage_vectors = vectors or (
        _stack([part.sentence_vectors for part in parts], dimension),
        _stack([part.passage_vectors for part in parts], dimension),
    )
    return Segment.of_rows(
        name,
        list(articles),
        sentences,
        passages,
        sentence_vectors,
        passage_vectors,
        LexicalIndex.build([passage.text for passage in passages]),
        dense_index(passage_vectors, ann_threshold),
    )


def _record_of(segment: Segment) -> SegmentRecord:
    return SegmentRecord(
        segment.name,
        tuple(segment.ids),
        segment.passage_count,
        segment.sentence_count,
    )


def _merge_small(
    records: list[SegmentRecord],
    loaded: dict[str, Segment],
    index_dir: Path,
    dimension: int,
    ann_threshold: int,
) -> tuple[list[SegmentRecord], list[Segment]]:
    """Above MAX_SEGMENTS, the small segments become one, as search engines merge theirs: every
    segment but the largest, and the largest too once half of it is masked. Nothing is embedded
    again: the live rows' vectors are copied, BM25 and the dense index built over them."""
    if len(records) <= MAX_SEGMENTS:
        return records, []
    largest = max(records, key=lambda record: record.passages)
    mostly_masked = len(largest.deleted) * 2 > len(largest.articles)
    merging = [r for r in records if r is not largest or mostly_masked]
    parts: list[_ArticlePart] = []
    articles: list[Article] = []
    for record in merging:
        segment = loaded.get(record.name) or read_segment(index_dir, record, dimension)
        live = PassageIndex.of_segments([segment], {record.name: record.deleted})
        for article in live.articles.values():
            articles.append(article)
        parts.extend(_parts_of(live))
    merged = _segment(new_segment_name(index_dir), articles, parts, ann_threshold)
    kept = [r for r in records if r not in merging]
    return [*kept, _record_of(merged)], [merged]


def _parts_of(index: PassageIndex) -> list[_ArticlePart]:
    """The index's live rows as one part per article, vectors copied out of the segment."""
    sentence_rows: dict[str, list[int]] = {}
    passage_rows: dict[str, list[int]] = {}
    for row, sentence in enumerate(index.sentences):
        sentence_rows.setdefault(sentence.article_id, []).append(row)
    for row, passage in enumerate(index.passages):
        passage_rows.setdefault(passage.article_id, []).append(row)
    return [
        _ArticlePart(
            [index.sentences[row] for row in sentence_rows.get(article_id, [])],
            [index.passages[row] for row in passage_rows.get(article_id, [])],
            np.asarray(index.sentence_vectors[sentence_rows.get(article_id, [])], dtype=np.float32),
            np.asarray(index.passage_vectors[passage_rows.get(article_id, [])], dtype=np.float32),
        )
        for article_id in index.articles
    ]


def _stack(blocks: Sequence[np.ndarray], dimension: int) -> np.ndarray:
    # One allocation: astype after concatenate would copy every vector a second time.
    return np.concatenate(blocks, dtype=np.float32) if blocks else np.zeros((0, dimension), np.float32)


@dataclass
class _ArticlePart:
    sentences: list[Sentence]
    passages: list[Passage]
    sentence_vectors: np.ndarray
    passage_vectors: np.ndarray


def split_and_embed(
    articles: Sequence[Article],
    embedder: Embedder,
    settings: SplitSettings,
    progress: bool,
    on_article: Callable[[Article], None] | None,
) -> tuple[list[_ArticlePart], tuple[np.ndarray, np.ndarray]]:
    """Split every article, then embed all their passages and sentences in large batches: a part
    per article (its vectors views, not copies) and the sentence and passage vectors of them all,
    which a segment takes as they are (at a million passages a copy is gigabytes)."""
    split = {}
    for article in articles:
        if on_article is not None:
            on_article(article)
        split[article.id] = split_article(article, settings, embedder.count_tokens)
    sentence_vectors, passage_vectors = embed_split(
        list(split.values()), embedder, settings.vectors, progress=progress
    )
    parts = []
    p_at = s_at = 0
    for sentences, passages in split.values():
        parts.append(
            _ArticlePart(
                sentences,
                passages,
                sentence_vectors[s_at : s_at + len(sentences)],
                passage_vectors[p_at : p_at + len(passages)],
            )
        )
        p_at += len(passages)
        s_at += len(sentences)
    return parts, (sentence_vectors, passage_vectors)


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in ("sentence-transformers", "faiss-cpu", "bm25s", "numpy", "torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
