"""The persisted index: passages, sentences, their vectors, FAISS and BM25, and a manifest.

Layout of an index folder:

    manifest.json          what was built, how, from which articles; written last, atomically
    gen-<stamp>/           one generation: the manifest names the current one
        articles.jsonl     article metadata and body text (offsets refer to it)
        passages.jsonl     one passage a line: id, article, paragraph, sentence range, span, text
        sentences.jsonl    one sentence a line: article, index, paragraph, span
        passage_vectors.npy, sentence_vectors.npy
        passages.faiss     exact inner-product index over the passage vectors
        lexical/           bm25s files and document frequencies

    build.lock             held (flock) by the one build of this folder running now

A build writes a new generation beside the old one and only then replaces the manifest, so an
interrupted build leaves the previous index whole. One build at a time: each removes every
generation but its own, so two at once could leave the manifest naming a deleted one. Readers
take no lock (a build can take minutes); one that finds its generation gone reads the manifest
again.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from index.articles import Article
from index.dense import set_search_depth
from index.embed import Embedder
from index.errors import IndexCorruptError, IndexMismatchError, IndexWriteError
from index.files import atomic_write
from index.lexical import LexicalIndex
from index.manifest import MANIFEST, FileRecord, Manifest
from index.search import PassageIndex
from index.split import Passage, Sentence

log = logging.getLogger(__name__)

# Files up to this size are checksummed on every load (the bundled index in all: ~1 ms);
# `articlebot index --check` checksums the larger ones too.
CHECKSUM_ON_LOAD_BYTES = 16_000_000
# Names this module gives what it writes, so that nothing else in a folder is ever removed.
GENERATION = re.compile(r"gen-\d{8}T\d{6}-\d+-\d+")
MANIFEST_TEMPORARY = re.compile(rf"\.{re.escape(MANIFEST)}\..+\.tmp")


def save_index(index: PassageIndex, index_dir: Path) -> None:
    """Write a new generation, then point the manifest at it; older generations are removed.

    The caller holds `build_lock` (as `build_index` does): the removal takes every other
    generation, a concurrent build's too.
    """
    if index.manifest is None:
        raise ValueError("an index made in memory has no manifest to save it by")
    index_dir.mkdir(parents=True, exist_ok=True)
    generation = (
        index_dir / f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6}"
    )
    generation.mkdir()
    try:
        files = _write_generation(index, generation)
        manifest = dataclasses.replace(index.manifest, generation=generation.name, files=files)
        atomic_write(index_dir / MANIFEST, manifest.to_json())
    except OSError as error:
        # Nothing half-written stays behind, and the previous index still answers.
        shutil.rmtree(generation, ignore_errors=True)
        raise IndexWriteError(
            f"cannot save the index at {index_dir}: {_write_failure(error, index_dir)}"
        ) from None
    index.manifest = manifest
    for stale in index_dir.glob("gen-*"):
        if stale.name != generation.name and GENERATION.fullmatch(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def _write_generation(index: PassageIndex, generation: Path) -> dict[str, FileRecord]:
    """Every file of one generation, synced; their sizes and checksums, for the manifest."""
    import faiss

    _write_jsonl(generation / "articles.jsonl", (_article_record(a) for a in index.articles.values()))
    _write_jsonl(generation / "passages.jsonl", (dataclasses.asdict(p) for p in index.passages))
    _write_jsonl(
        generation / "sentences.jsonl",
        ({k: v for k, v in dataclasses.asdict(s).items() if k != "text"} for s in index.sentences),
    )
    np.save(generation / "passage_vectors.npy", index.passage_vectors)
    np.save(generation / "sentence_vectors.npy", index.sentence_vectors)
    faiss.write_index(index.faiss_index, str(generation / "passages.faiss"))
    index.lexical.save(generation / "lexical")
    _fsync_tree(generation)
    return {
        path.relative_to(generation).as_posix(): FileRecord(path.stat().st_size, _sha256(path))
        for path in sorted(generation.rglob("*"))
        if path.is_file()
    }


def _write_failure(error: OSError, index_dir: Path) -> str:
    """Why a write failed, in words; numpy reports a full disk as '… requested and … written'."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT) or "requested and" in str(error):
        free = shutil.disk_usage(index_dir).free
        return f"the disk is full ({free / 1e6:.0f} MB free): free some space and build again"
    return error.strerror or str(error)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_index(index_dir: Path, embedder: Embedder) -> PassageIndex:
    """Load the current generation, refusing a mismatched or damaged index with the reason."""
    manifest = Manifest.read(index_dir)
    try:
        return _load_generation(index_dir, manifest, embedder)
    except IndexCorruptError:
        # A build may have replaced the manifest and removed the generation it named between
        # reading the one and the other: then the index is whole, only newer. Once is enough,
        # since a build takes far longer than a load; a generation that stays bad is damage.
        try:
            latest = Manifest.read(index_dir)
        except (IndexCorruptError, IndexMismatchError, FileNotFoundError):
            latest = manifest
        if latest.generation == manifest.generation:
            raise
        log.info("the index at %s changed while it was read; reading the new one", index_dir)
        return _load_generation(index_dir, latest, embedder)


def _load_generation(index_dir: Path, manifest: Manifest, embedder: Embedder) -> PassageIndex:
    import faiss

    manifest.check_compatible(embedder, index_dir)
    generation = index_dir / (manifest.generation or "")
    hint = "rebuild with 'articlebot index --rebuild'"
    verify_files(index_dir, manifest, every_checksum=False)
    try:
        articles = [_article_from_record(r) for r in _read_jsonl(generation / "articles.jsonl")]
        by_id = {article.id: article for article in articles}
        passages = [Passage(**record) for record in _read_jsonl(generation / "passages.jsonl")]
        sentences = [
            Sentence(**record, text=by_id[record["article_id"]].text[record["start"] : record["end"]])
            for record in _read_jsonl(generation / "sentences.jsonl")
        ]
        # Mapped, not read: a search touches only the rows of its candidates, so a million
        # passages (1.5 GB of float32) cost resident memory only for the pages they use.
        passage_vectors = np.load(generation / "passage_vectors.npy", mmap_mode="r")
        sentence_vectors = np.load(generation / "sentence_vectors.npy", mmap_mode="r")
        faiss_index = faiss.read_index(str(generation / "passages.faiss"))
        set_search_depth(faiss_index)
        lexical = LexicalIndex.load(generation / "lexical")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexCorruptError(f"the index at {index_dir} is damaged ({_short(error)}): {hint}") from None
    if (
        len(passages) != manifest.passage_count
        or passage_vectors.shape != (len(passages), embedder.dimension)
        or sentence_vectors.shape != (len(sentences), embedder.dimension)
        or faiss_index.ntotal != len(passages)
        or lexical.size != len(passages)
    ):
        raise IndexCorruptError(f"the index at {index_dir} is damaged (its parts disagree in size): {hint}")
    return PassageIndex(
        articles, sentences, passages, sentence_vectors, passage_vectors, lexical, manifest, faiss_index
    )


def verify_files(index_dir: Path, manifest: Manifest, *, every_checksum: bool) -> int:
    """Hold each file of the manifest's generation to the size it was written with, and to its
    checksum where that is cheap (or always, with `every_checksum`); returns the files checked.

    Sizes catch truncation (a zero-byte .npy would otherwise be an EOFError); checksums catch
    bytes changed in place, which FAISS and numpy would read as different answers.
    """
    generation = index_dir / (manifest.generation or "")
    for name, expected in manifest.files.items():
        path = generation / name
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
            raise IndexCorruptError(
                f"the index at {index_dir} is damaged ({problem}): rebuild with 'articlebot index --rebuild'"
            )
    return len(manifest.files)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120]}" if text else type(error).__name__


def _article_record(article: Article) -> dict[str, Any]:
    return {**dataclasses.asdict(article), "content_hash": article.content_hash}


def _article_from_record(record: dict[str, Any]) -> Article:
    record = dict(record)
    record.pop("content_hash", None)
    return Article(**record)


def _write_jsonl(path: Path, records: Iterator[dict[str, Any]] | Any) -> None:
    with path.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False))
            file.write("\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as file:
                os.fsync(file.fileno())
