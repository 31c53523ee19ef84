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
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from index.articles import Article
from index.embed import Embedder
from index.errors import IndexCorruptError, IndexLocationError, IndexMismatchError, IndexWriteError
from index.files import atomic_write
from index.lexical import LexicalIndex
from index.split import Passage, Sentence, SplitSettings, split_article

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BUILD_LOCK = "build.lock"
# Files up to this size are checksummed on every load (the bundled index in all: ~1 ms);
# `articlebot index --check` checksums the larger ones too.
CHECKSUM_ON_LOAD_BYTES = 16_000_000
# Names this module gives what it writes, so that nothing else in a folder is ever removed.
_GENERATION = re.compile(r"gen-\d{8}T\d{6}-\d+-\d+")
_MANIFEST_TEMPORARY = re.compile(rf"\.{re.escape(MANIFEST)}\..+\.tmp")
SEARCH_MODES = ("hybrid", "dense", "lexical")
DEFAULT_SPLIT = SplitSettings()
# Above this many passages the dense index is approximate; below it, exact (config search.ann_threshold).
DEFAULT_ANN_THRESHOLD = 200_000
IVF_TRAIN_PER_LIST = 64
# Lists a query scans: a share of them, within bounds (measured: see _approximate_index).
IVF_PROBE_SHARE = 1 / 32
IVF_PROBES = (16, 128)


@dataclass(frozen=True)
class Hit:
    """A passage found for a query, with the scores that ranked it."""

    passage: Passage
    score: float
    dense: float
    lexical: float


@dataclass(frozen=True)
class HybridWeights:
    """How meaning and words combine: each standardised over the candidates, then weighed.

    The meaning side is the passage's cosine blended with its best sentence's cosine
    (`sentence_share`), since a question usually matches one sentence, not a whole passage.
    Chosen on SQuAD v1.1 (even-numbered articles, confirmed on the odd ones): see the README.
    """

    dense: float = 0.7
    lexical: float = 0.3
    candidates: int = 50
    sentence_share: float = 0.5


@dataclass(frozen=True)
class BuildReport:
    articles: int
    passages: int
    embedded_articles: int
    removed_articles: int
    seconds: float


class PassageIndex:
    """Everything a search needs, loaded into memory."""

    def __init__(
        self,
        articles: Sequence[Article],
        sentences: Sequence[Sentence],
        passages: Sequence[Passage],
        sentence_vectors: np.ndarray,
        passage_vectors: np.ndarray,
        lexical: LexicalIndex,
        manifest: dict[str, Any],
        faiss_index: Any = None,
    ) -> None:
        self.articles = {article.id: article for article in articles}
        self.sentences = list(sentences)
        self.passages = list(passages)
        self.sentence_vectors = sentence_vectors
        self.passage_vectors = passage_vectors
        self.lexical = lexical
        self.manifest = manifest
        self.faiss_index = faiss_index if faiss_index is not None else _flat_index(passage_vectors)
        self._passage_rows = {passage.id: row for row, passage in enumerate(self.passages)}
        self._sentence_rows: dict[tuple[str, int], int] = {
            (sentence.article_id, sentence.index): row for row, sentence in enumerate(self.sentences)
        }
        self.paragraph_counts: dict[str, int] = {}
        for sentence in self.sentences:
            count = self.paragraph_counts.get(sentence.article_id, 0)
            self.paragraph_counts[sentence.article_id] = max(count, sentence.paragraph)

    # Lookups -----------------------------------------------------------------------------

    @cached_property
    def passage_counts(self) -> Counter[str]:
        """Passages per article id."""
        return Counter(passage.article_id for passage in self.passages)

    def passage(self, passage_id: str) -> Passage | None:
        row = self._passage_rows.get(passage_id)
        return None if row is None else self.passages[row]

    def sentence_rows(self, passage: Passage) -> list[int]:
        """Rows of `sentences` and `sentence_vectors` for the sentences of `passage`."""
        return [self._sentence_rows[(passage.article_id, index)] for index in passage.sentence_ids]

    def paragraph_span(self, article_id: str, paragraph: int) -> tuple[int, int]:
        """Character span of a whole paragraph of an article."""
        rows = [
            row
            for (article, _), row in self._sentence_rows.items()
            if article == article_id and self.sentences[row].paragraph == paragraph
        ]
        if not rows:
            raise KeyError(f"{article_id} has no paragraph {paragraph}")
        return self.sentences[min(rows)].start, self.sentences[max(rows)].end

    # Search ------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        query_vector: np.ndarray | None,
        k: int = 5,
        mode: str = "hybrid",
        weights: HybridWeights = HybridWeights(),
    ) -> list[Hit]:
        """The `k` best passages for a query, best first."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode {mode!r}: choose one of {', '.join(SEARCH_MODES)}")
        count = len(self.passages)
        if count == 0 or k <= 0:
            return []
        if mode == "lexical":
            lexical = self.lexical.scores(query)
            rows = _top(lexical, k)
            dense = self._dense_scores(query_vector, rows)
            return [
                self._hit(row, float(lexical[row]), float(d), float(lexical[row]))
                for row, d in zip(rows, dense, strict=True)
            ]
        if query_vector is None:
            raise ValueError(f"{mode} search needs the query's vector")
        depth = min(count, max(k, weights.candidates))
        _, found = self.faiss_index.search(query_vector.reshape(1, -1).astype(np.float32), depth)
        dense_rows = [int(row) for row in found[0] if row >= 0]
        if mode == "dense":
            # Exact cosines of the candidates: an approximate index only proposes them.
            exact = self._dense_scores(query_vector, dense_rows)
            lexical = self.lexical.scores(query)
            return [
                self._hit(dense_rows[i], float(exact[i]), float(exact[i]), float(lexical[dense_rows[i]]))
                for i in np.argsort(-exact, kind="stable")[:k]
            ]
        lexical = self.lexical.scores(query)
        candidates = list(dict.fromkeys([*dense_rows, *_top(lexical, depth)]))
        dense = self._dense_scores(query_vector, candidates)
        bm25 = lexical[candidates]
        meaning = dense
        if weights.sentence_share > 0:
            best_sentence = self._best_sentence_cosines(query_vector, candidates)
            meaning = (1 - weights.sentence_share) * dense + weights.sentence_share * best_sentence
        # Standard scores, not min-max: one outlier no longer squeezes every other candidate together.
        combined = weights.dense * _standardise(meaning) + weights.lexical * _standardise(bm25)
        order = np.argsort(-combined, kind="stable")[:k]
        return [self._hit(candidates[i], float(combined[i]), float(dense[i]), float(bm25[i])) for i in order]

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


def _flat_index(vectors: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1] if vectors.ndim == 2 else 0)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def dense_index(vectors: np.ndarray, ann_threshold: int = DEFAULT_ANN_THRESHOLD) -> Any:
    """Exact inner product up to `ann_threshold` passages; above it, an approximate index."""
    if len(vectors) < ann_threshold:
        return _flat_index(vectors)
    return _approximate_index(vectors)


def _approximate_index(vectors: np.ndarray) -> Any:
    """IVF over 8-bit scalar-quantised vectors: a quarter of the memory of exact search.

    Chosen by measurement at 1,000,000 x 384 (scripts/bench.py --scale): against exact search,
    recall@10 and latency met their bounds with about 0.4 GB, where HNSW over float vectors needs
    over 1.5 GB and HNSW over 8-bit codes took minutes longer to build for no better recall.
    """
    import faiss

    count, dimension = vectors.shape
    lists = _ivf_lists(count)
    index = faiss.index_factory(dimension, f"IVF{lists},SQ8", faiss.METRIC_INNER_PRODUCT)
    # k-means needs some 40-256 points a list; a sample trains as well as the whole set, faster.
    size = min(count, IVF_TRAIN_PER_LIST * lists)
    sample = np.sort(np.random.default_rng(0).choice(count, size=size, replace=False))
    index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for start in range(0, count, 100_000):
        index.add(np.ascontiguousarray(vectors[start : start + 100_000], dtype=np.float32))
    _set_search_depth(index)
    return index


def _ivf_lists(count: int) -> int:
    """About 4 * sqrt(n) inverted lists, the usual rule, as a power of two; k-means wants
    at least 39 points a list, so a small collection gets fewer."""
    lists = int(2 ** round(np.log2(max(1.0, 4 * np.sqrt(count)))))
    return max(1, min(lists, count // 39))


def _set_search_depth(index: Any) -> None:
    """Lists scanned per query: a share of them, so recall holds as the collection grows; at least
    16, since a small index is cheap to scan, and at most 128 (about 2 ms at a million passages)."""
    import faiss

    if isinstance(index, faiss.IndexFlat):
        return
    ivf = faiss.extract_index_ivf(index)
    low, high = IVF_PROBES
    ivf.nprobe = min(ivf.nlist, max(low, min(high, round(ivf.nlist * IVF_PROBE_SHARE))))


def describe_dense_index(index: Any) -> str:
    """'flat' for exact search, else the FAISS factory string of the approximate index."""
    import faiss

    if isinstance(index, faiss.IndexFlat):
        return "flat"
    ivf = faiss.extract_index_ivf(index)
    return f"IVF{ivf.nlist},SQ8 nprobe={ivf.nprobe}"


# Building ----------------------------------------------------------------------------------


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
    on_wait: Callable[[str], None] | None = None,
) -> tuple[PassageIndex, BuildReport]:
    """Bring the index at `index_dir` up to date with `articles`, embedding only what changed.

    When another process is building the same folder, waits for it (saying so through
    `on_wait`, else the log), then updates what it built.
    """
    _refuse_foreign_folder(index_dir)
    with build_lock(index_dir, on_wait):
        _remove_leftovers(index_dir)
        return _build_index(
            articles, embedder, index_dir, settings, rebuild, progress, on_article, ann_threshold
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
    if name == BUILD_LOCK or _MANIFEST_TEMPORARY.fullmatch(name):
        return True
    return entry.is_dir() and _GENERATION.fullmatch(name) is not None


def _remove_leftovers(index_dir: Path) -> None:
    """Under the lock: generations no manifest names and manifest temporaries are a crashed or
    failed build's (a full disk, kill -9 while saving); each retry would otherwise add one."""
    try:
        current = read_manifest(index_dir).get("generation")
    except (FileNotFoundError, IndexCorruptError):
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
) -> tuple[PassageIndex, BuildReport]:
    started = time.perf_counter()
    previous: PassageIndex | None = None
    if not rebuild and (index_dir / MANIFEST).exists():
        previous = load_index(index_dir, embedder)
        if previous.manifest.get("split") != dataclasses.asdict(settings):
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

    manifest = {
        "format_version": FORMAT_VERSION,
        "model": embedder.model_name,
        "dimension": dimension,
        "passage_count": len(passages),
        "sentence_count": len(sentences),
        "articles": {article.id: article.content_hash for article in articles},
        "split": dataclasses.asdict(settings),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": _library_versions(),
        "dense_index": describe_dense_index(faiss_index),
    }
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


def index_is_current(index_dir: Path, articles: Sequence[Article], settings: SplitSettings) -> bool:
    """True when the saved manifest matches these articles and passage settings exactly."""
    try:
        manifest = read_manifest(index_dir)
    except (IndexCorruptError, FileNotFoundError):
        return False
    return manifest.get("articles") == {a.id: a.content_hash for a in articles} and manifest.get(
        "split"
    ) == dataclasses.asdict(settings)


@dataclass
class _ArticlePart:
    sentences: list[Sentence]
    passages: list[Passage]
    sentence_vectors: np.ndarray
    passage_vectors: np.ndarray


def _reusable(previous: PassageIndex, articles: Sequence[Article]) -> dict[str, _ArticlePart]:
    """The parts of the previous index whose article is unchanged."""
    hashes = previous.manifest.get("articles", {})
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


# Saving and loading ------------------------------------------------------------------------


def save_index(index: PassageIndex, index_dir: Path) -> None:
    """Write a new generation, then point the manifest at it; older generations are removed.

    The caller holds `build_lock` (as `build_index` does): the removal takes every other
    generation, a concurrent build's too.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    generation = (
        index_dir / f"gen-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6}"
    )
    generation.mkdir()
    try:
        files = _write_generation(index, generation)
        manifest = {**index.manifest, "generation": generation.name, "files": files}
        atomic_write(index_dir / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    except OSError as error:
        # Nothing half-written stays behind, and the previous index still answers.
        shutil.rmtree(generation, ignore_errors=True)
        raise IndexWriteError(
            f"cannot save the index at {index_dir}: {_write_failure(error, index_dir)}"
        ) from None
    index.manifest = manifest
    for stale in index_dir.glob("gen-*"):
        if stale.name != generation.name and _GENERATION.fullmatch(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def _write_generation(index: PassageIndex, generation: Path) -> dict[str, dict[str, Any]]:
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
        path.relative_to(generation).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
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


def read_manifest(index_dir: Path) -> dict[str, Any]:
    path = index_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:
        raise IndexCorruptError(
            f"the index manifest {path} cannot be read ({error}): rebuild with 'articlebot index --rebuild'"
        ) from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(
            f"the index manifest {path} is not a JSON object: rebuild with 'articlebot index --rebuild'"
        )
    return manifest


def check_compatible(manifest: dict[str, Any], embedder: Embedder, index_dir: Path) -> None:
    """Refuse an index built by another format, model or dimension, saying which."""
    expected = {
        "format_version": FORMAT_VERSION,
        "model": embedder.model_name,
        "dimension": embedder.dimension,
    }
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise IndexMismatchError(
                f"the index at {index_dir} was built with {key} {manifest.get(key)!r}, not {value!r}: "
                "rebuild it with 'articlebot index --rebuild'"
            )


def load_index(index_dir: Path, embedder: Embedder) -> PassageIndex:
    """Load the current generation, refusing a mismatched or damaged index with the reason."""
    manifest = read_manifest(index_dir)
    try:
        return _load_generation(index_dir, manifest, embedder)
    except IndexCorruptError:
        # A build may have replaced the manifest and removed the generation it named between
        # reading the one and the other: then the index is whole, only newer. Once is enough,
        # since a build takes far longer than a load; a generation that stays bad is damage.
        try:
            latest = read_manifest(index_dir)
        except (IndexCorruptError, FileNotFoundError):
            latest = manifest
        if latest.get("generation") == manifest.get("generation"):
            raise
        log.info("the index at %s changed while it was read; reading the new one", index_dir)
        return _load_generation(index_dir, latest, embedder)


def _load_generation(index_dir: Path, manifest: dict[str, Any], embedder: Embedder) -> PassageIndex:
    import faiss

    check_compatible(manifest, embedder, index_dir)
    generation = index_dir / str(manifest.get("generation", ""))
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
        _set_search_depth(faiss_index)
        lexical = LexicalIndex.load(generation / "lexical")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexCorruptError(f"the index at {index_dir} is damaged ({_short(error)}): {hint}") from None
    if (
        len(passages) != manifest.get("passage_count")
        or passage_vectors.shape != (len(passages), embedder.dimension)
        or sentence_vectors.shape != (len(sentences), embedder.dimension)
        or faiss_index.ntotal != len(passages)
        or lexical.size != len(passages)
    ):
        raise IndexCorruptError(f"the index at {index_dir} is damaged (its parts disagree in size): {hint}")
    return PassageIndex(
        articles, sentences, passages, sentence_vectors, passage_vectors, lexical, manifest, faiss_index
    )


def verify_files(index_dir: Path, manifest: dict[str, Any], *, every_checksum: bool) -> int:
    """Hold each file of the manifest's generation to the size it was written with, and to its
    checksum where that is cheap (or always, with `every_checksum`); returns the files checked.

    Sizes catch truncation (a zero-byte .npy would otherwise be an EOFError); checksums catch
    bytes changed in place, which FAISS and numpy would read as different answers.
    """
    generation = index_dir / str(manifest.get("generation", ""))
    files = manifest.get("files")
    if not isinstance(files, dict):
        return 0  # written before manifests listed their files
    for name, expected in files.items():
        path = generation / name
        problem = None
        try:
            size = path.stat().st_size
        except OSError:
            problem = f"{name} is missing"
        else:
            if size != expected.get("size"):
                problem = f"{name} is {size} bytes, not {expected.get('size')}"
            elif (every_checksum or size <= CHECKSUM_ON_LOAD_BYTES) and _sha256(path) != expected.get(
                "sha256"
            ):
                problem = f"{name} has changed since it was written"
        if problem:
            raise IndexCorruptError(
                f"the index at {index_dir} is damaged ({problem}): rebuild with 'articlebot index --rebuild'"
            )
    return len(files)


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
