"""The persisted index: segments of passages, sentences, vectors, FAISS and BM25, and a manifest.

Layout of an index folder:

    manifest.json          what was built, how, from which articles, and the segments that hold
                           them (with the articles masked in each); written last, atomically
    seg-<stamp>/           one segment, never changed once written
        articles.jsonl     article metadata, a JSON line each
        texts.bin          the articles' body texts, UTF-8, one after another (offsets refer to them)
        articles.npy       one row an article: where its line and its text stand in those two files
        ids.json           the article ids, in order
        passages.npy       one row a passage: article number, paragraph, sentence range, span
        sentences.npy      one row a sentence: article number, paragraph, span
        words.json         how often each word occurs (what typos in questions are mended against)
        passage_vectors.npy, sentence_vectors.npy
        passages.faiss     the segment's dense index (exact, or IVF-SQ8 when it is large)
        lexical/           bm25s files and document frequencies

    build.lock             held (flock) by the one build of this folder running now

A build writes its new segment beside the others and only then replaces the manifest, so an
interrupted build leaves the previous index whole; segments the new manifest no longer names
(merged ones) are removed after it. Readers take no lock (a build can take minutes); one that
finds a segment gone reads the manifest again. Segments never change, so a reader that has
some loaded reads only the new ones.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import mmap
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Collection, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import overload

import numpy as np

from index.articles import Article
from index.embed import Embedder
from index.errors import IndexCorruptError, IndexLocationError, IndexMismatchError, IndexWriteError
from index.files import atomic_write
from index.local.bm25 import LexicalIndex
from index.local.dense import set_search_depth
from index.local.search import PASSAGE_COLUMNS, SENTENCE_COLUMNS, PassageIndex, Segment
from index.manifest import MANIFEST, REBUILD, FileRecord, Manifest, SegmentRecord

log = logging.getLogger(__name__)

# Files up to this size are checksummed on every load (the bundled index in all: ~1 ms);
# `articlebot index --check` checksums the larger ones too.
CHECKSUM_ON_LOAD_BYTES = 16_000_000
# Names this module gives what it writes, so that nothing else in a folder is ever removed.
# Segments; and generations, an older format's, so an upgrade removes them too.
SEGMENT = re.compile(r"(seg|gen)-\d{8}T\d{6}-\d+-\d+")
MANIFEST_TEMPORARY = re.compile(rf"\.{re.escape(MANIFEST)}\..+\.tmp")


def new_segment_name(index_dir: Path) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return f"seg-{stamp}-{os.getpid()}-{time.perf_counter_ns() % 10**9}"


def write_segment(segment: Segment, index_dir: Path) -> dict[str, FileRecord]:
    """Write one segment into its own folder, synced; its files' sizes and checksums, by their
    path in the index folder. A failed write leaves nothing behind (IndexWriteError says why)."""
    import faiss

    folder = index_dir / segment.name
    try:
        folder.mkdir(parents=True)
        _write_articles(folder, segment.articles)
        np.save(folder / "passages.npy", segment.passage_table.astype(np.int32))
        np.save(folder / "sentences.npy", segment.sentence_table.astype(np.int32))
        (folder / "words.json").write_text(json.dumps(segment.words, ensure_ascii=False), encoding="utf-8")
        np.save(folder / "passage_vectors.npy", np.asarray(segment.passage_vectors, dtype=np.float32))
        np.save(folder / "sentence_vectors.npy", np.asarray(segment.sentence_vectors, dtype=np.float32))
        try:
            faiss.write_index(segment.faiss_index, str(folder / "passages.faiss"))
        except RuntimeError as error:  # FAISS says why a write failed in words, without an errno
            raise OSError(str(error)) from None
        segment.lexical.save(folder / "lexical")
        _fsync_tree(folder)
        return {
            path.relative_to(index_dir).as_posix(): FileRecord(path.stat().st_size, _sha256(path))
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
    except OSError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise write_error(error, index_dir) from None


def save_manifest(manifest: Manifest, index_dir: Path) -> None:
    """Point the index at these segments, then remove the segments it no longer names.

    The caller holds `build_lock` (as `build_index` does): the removal takes every segment the
    manifest does not name, a concurrent build's unfinished one too.
    """
    try:
        atomic_write(index_dir / MANIFEST, manifest.to_json())
    except OSError as error:
        raise write_error(error, index_dir) from None
    named = {record.name for record in manifest.segments}
    for entry in index_dir.iterdir():
        if entry.name not in named and SEGMENT.fullmatch(entry.name) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def make_index_folder(index_dir: Path) -> None:
    """Create the index folder and those above it, or say in one line why it cannot be."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # A file stands where the folder, or one of the folders above it, should be.
        blocking = next(
            (p for p in (index_dir, *index_dir.parents) if p.exists() and not p.is_dir()), index_dir
        )
        raise IndexLocationError(
            f"the index folder {index_dir} cannot be made: {blocking} is a file, not a folder; "
            "give --index-dir (or index_dir) another place"
        ) from None
    except OSError as error:
        raise write_error(error, index_dir) from None


def unwritable(folder: Path) -> IndexWriteError | None:
    """Why nothing can be written in `folder` (read-only, no permission, a full disk), or None:
    tried with a temporary file, since no other test is true for root on a read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as error:
        return write_error(error, folder)


_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def write_error(error: OSError, index_dir: Path) -> IndexWriteError:
    """The one line for a failed write of the index at `index_dir`."""
    return IndexWriteError(f"cannot save the index at {index_dir}: {_write_failure(error, index_dir)}")


def _write_failure(error: OSError, index_dir: Path) -> str:
    """Why writing the index failed, in words and with the fix, by the error's errno.

    FAISS names the errno only in words ("… (File too large)"); numpy reports a short write with
    none at all ("38400 requested and 4968 written"): with a file-size limit set (`ulimit -f`)
    that is the likeliest cause, else a full disk."""
    code = getattr(error, "errno", None)
    if code is None:
        text = str(error)
        code = next((known for known in _WRITE_ERRORS if os.strerror(known) in text), None)
        if code is None and "requested and" in text:
            code = errno.EFBIG if _file_size_limit() is not None else errno.ENOSPC
    if code == errno.ENOSPC:
        free = shutil.disk_usage(index_dir).free
        return f"the disk is full ({free / 1e6:.0f} MB free): free some space and build again"
    if code == errno.EDQUOT:
        return "the disk quota is used up: free some space or raise the quota, and build again"
    if code == errno.EFBIG:
        limit = _file_size_limit()
        which = (
            ""
            if limit is None
            else f" of {limit / 1e6:,.0f} MB"
            if limit >= 1e6
            else f" of {limit // 1000} KB"
        )
        return (
            f"a file is over the file-size limit{which} this process runs under (ulimit -f): "
            "raise it and build again"
        )
    if code == errno.EROFS:
        return "the folder is on a read-only file system: give --index-dir (or index_dir) a writable one"
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"no permission to write in {index_dir}: give --index-dir (or index_dir) a folder you can write"
        )
    return error.strerror or str(error)


def _file_size_limit() -> int | None:
    """The soft RLIMIT_FSIZE in bytes, or None when files may grow without limit."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_index(index_dir: Path, embedder: Embedder, reuse: PassageIndex | None = None) -> PassageIndex:
    """Load the index, refusing a mismatched or damaged one with the reason. Segments already
    loaded in `reuse` (the index a running bot holds) are taken from it, not read again."""
    manifest = Manifest.read(index_dir)
    try:
        return _load(index_dir, manifest, embedder, reuse)
    except IndexCorruptError:
        # A build may have replaced the manifest and removed a segment it named between reading
        # the one and the other: then the index is whole, only newer. Once is enough, since a
        # build takes far longer than a load; a segment that stays bad is damage.
        try:
            latest = Manifest.read(index_dir)
        except (IndexCorruptError, IndexMismatchError, FileNotFoundError):
            latest = manifest
        if latest.segments == manifest.segments:
            raise
        log.info("the index at %s changed while it was read; reading the new one", index_dir)
        return _load(index_dir, latest, embedder, reuse)


def _load(
    index_dir: Path, manifest: Manifest, embedder: Embedder, reuse: PassageIndex | None
) -> PassageIndex:
    manifest.check_compatible(embedder, index_dir)
    loaded = {segment.name: segment for segment in (reuse.segments if reuse is not None else ())}
    needed = [record for record in manifest.segments if record.name not in loaded]
    verify_files(index_dir, manifest, every_checksum=False, segments={record.name for record in needed})
    segments = [
        loaded.get(record.name) or read_segment(index_dir, record, embedder.dimension)
        for record in manifest.segments
    ]
    deleted = {record.name: record.deleted for record in manifest.segments if record.deleted}
    return PassageIndex.of_segments(segments, deleted, manifest)


def read_segment(index_dir: Path, record: SegmentRecord, dimension: int) -> Segment:
    import faiss

    folder = index_dir / record.name
    hint = REBUILD
    try:
        articles = StoredArticles(folder)
        # Spans of the article texts, as integers: no object per passage or sentence is made here.
        passage_table = np.load(folder / "passages.npy")
        sentence_table = np.load(folder / "sentences.npy")
        words_file = folder / "words.json"  # counted from the articles again where it is missing
        words = Counter(json.loads(words_file.read_text(encoding="utf-8"))) if words_file.exists() else None
        # Mapped, not read: a search touches only the rows of its candidates, so a million
        # passages (1.5 GB of float32) cost resident memory only for the pages they use.
        passage_vectors = np.load(folder / "passage_vectors.npy", mmap_mode="r")
        sentence_vectors = np.load(folder / "sentence_vectors.npy", mmap_mode="r")
        # Mapped too: an IVF index's codes (a byte per dimension, 384 MB at a million passages)
        # stay in the page cache, shared and reclaimable, instead of the process's own memory.
        faiss_index = faiss.read_index(str(folder / "passages.faiss"), faiss.IO_FLAG_MMAP_IFC)
        set_search_depth(faiss_index)
        lexical = LexicalIndex.load(folder / "lexical")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexCorruptError(f"the index at {index_dir} is damaged ({_short(error)}): {hint}") from None
    passages, sentences = len(passage_table), len(sentence_table)
    if (
        passage_table.shape != (record.passages, len(PASSAGE_COLUMNS))
        or sentence_table.shape != (record.sentences, len(SENTENCE_COLUMNS))
        or passage_vectors.shape != (passages, dimension)
        or sentence_vectors.shape != (sentences, dimension)
        or faiss_index.ntotal != passages
        or lexical.size != passages
        or (
            passages
            and not 0 <= int(passage_table[:, 0].min()) <= int(passage_table[:, 0].max()) < len(articles)
        )
    ):
        raise IndexCorruptError(f"the index at {index_dir} is damaged (its parts disagree in size): {hint}")
    return Segment(
        record.name,
        articles,
        passage_table,
        sentence_table,
        sentence_vectors,
        passage_vectors,
        lexical,
        faiss_index,
        words,
        ids=articles.ids,
    )


def verify_files(
    index_dir: Path, manifest: Manifest, *, every_checksum: bool, segments: Collection[str] | None = None
) -> int:
    """Hold each file of the manifest's segments (or of those named) to the size it was written
    with, and to its checksum where that is cheap (or always, with `every_checksum`); returns the
    files checked.

    Sizes catch truncation (a zero-byte .npy would otherwise be an EOFError); checksums catch
    bytes changed in place, which FAISS and numpy would read as different answers.
    """
    checked = 0
    for name, expected in manifest.files.items():
        if segments is not None and name.split("/", 1)[0] not in segments:
            continue
        checked += 1
        path = index_dir / name
        problem = None
        try:
            size = path.stat().st_size
        except OSError:
            problem = f"{name} is missing"
        else:
            if size != expected.size:
                problem = f"{name} is {size} bytes, not {expected.size}"
            elif (every_checksum or size <= CHECKSUM_ON_LOAD_BYTES) and _sha256(path) != expected.sha256:
                problem = f"{name} has changed since it was written"
        if problem:
            raise IndexCorruptError(f"the index at {index_dir} is damaged ({problem}): {REBUILD}")
    return checked


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120]}" if text else type(error).__name__


_Bytes = mmap.mmap | bytes


class StoredArticles(Sequence[Article]):
    """A segment's articles, each read from its files when asked for: its metadata from one JSON
    line, its body from a memory-mapped file of texts. Loading an archive keeps neither in memory
    (a million passages carry some 300 MB of text); the few articles a question touches are
    decoded, and the last of them kept."""

    KEPT = 64

    def __init__(self, folder: Path) -> None:
        self._table = np.load(folder / "articles.npy")
        self.ids: list[str] = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        self._lines = _mapped(folder / "articles.jsonl")
        self._texts = _mapped(folder / "texts.bin")
        # lru_cache keeps its bookkeeping safe when several threads answer at once (Telegram). It
        # wraps a function of the files, not a method: a cycle through self would keep the files
        # mapped until the garbage collector ran (a folder whose index was dropped stayed in use).
        read = partial(_read_article, folder, self._table, self._lines, self._texts)
        self._article = lru_cache(maxsize=self.KEPT)(read)
        if self._table.shape != (len(self.ids), 4):
            raise ValueError(f"{folder.name}: articles.npy and ids.json disagree")
        if len(self.ids) and (
            self._table[:, 1].max() > len(self._lines) or self._table[:, 3].max() > len(self._texts)
        ):
            raise ValueError(f"{folder.name}: articles.npy points past its files")

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, code: int) -> Article: ...

    @overload
    def __getitem__(self, code: slice) -> list[Article]: ...

    def __getitem__(self, code: int | slice) -> Article | list[Article]:
        if isinstance(code, slice):
            return [self[number] for number in range(*code.indices(len(self)))]
        if not -len(self) <= code < len(self):
            raise IndexError(code)
        return self._article(code % len(self))


def _read_article(folder: Path, table: np.ndarray, lines: _Bytes, texts: _Bytes, code: int) -> Article:
    """One article from its JSON line and its bytes of text, held to the hash it was written with:
    the text file is too large to checksum on every load, so damage is caught here, when read."""
    line_start, line_end, text_start, text_end = (int(v) for v in table[code])
    try:
        record = json.loads(bytes(lines[line_start:line_end]))
        written = record.pop("content_hash")
        article = Article(**record, text=bytes(texts[text_start:text_end]).decode("utf-8"))
    except (ValueError, TypeError, KeyError) as error:  # JSON and UTF-8 errors are ValueErrors
        raise _damaged_article(folder, code, _short(error)) from None
    if article.content_hash != written:
        raise _damaged_article(folder, code, "its text has changed since it was written")
    return article


def _damaged_article(folder: Path, code: int, problem: str) -> IndexCorruptError:
    return IndexCorruptError(
        f"the index at {folder.parent} is damaged ({folder.name}, article {code}: {problem}): {REBUILD}"
    )


def _mapped(path: Path) -> _Bytes:
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return b""  # an empty file cannot be mapped
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def _write_articles(folder: Path, articles: Sequence[Article]) -> None:
    """articles.jsonl, texts.bin, articles.npy and ids.json: see StoredArticles."""
    table = np.zeros((len(articles), 4), dtype=np.int64)
    line_at = text_at = 0
    with (folder / "articles.jsonl").open("wb") as lines, (folder / "texts.bin").open("wb") as texts:
        for code, article in enumerate(articles):
            record = {k: v for k, v in dataclasses.asdict(article).items() if k != "text"}
            line = json.dumps({**record, "content_hash": article.content_hash}, ensure_ascii=False).encode()
            text = article.text.encode("utf-8")
            lines.write(line + b"\n")
            texts.write(text)
            table[code] = (line_at, line_at + len(line), text_at, text_at + len(text))
            line_at += len(line) + 1
            text_at += len(text)
    np.save(folder / "articles.npy", table)
    ids = json.dumps([article.id for article in articles], ensure_ascii=False)
    (folder / "ids.json").write_text(ids, encoding="utf-8")


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as file:
                os.fsync(file.fileno())
