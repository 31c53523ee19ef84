"""The approximate dense index: chosen above a size, close to exact search, saved and loaded."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from bot.config import BUNDLED_ARTICLES, ConfigError, load_config
from index.articles import load_articles
from index.embed import SentenceTransformerEmbedder
from index.local.build import build_index
from index.local.dense import dense_index, describe_dense_index
from index.local.storage import load_index


def _clustered(count: int, dimension: int = 64, centres: int = 300, seed: int = 0) -> np.ndarray:
    """Unit vectors around random topics, as embeddings of news text are; uniform noise has no neighbours."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((centres, dimension)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    points = topics[rng.integers(0, centres, count)]
    points = points + rng.standard_normal((count, dimension)).astype(np.float32) * (0.7 / np.sqrt(dimension))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_exact_below_the_threshold_approximate_above() -> None:
    vectors = _clustered(2_000)
    assert describe_dense_index(dense_index(vectors, ann_threshold=2_001)) == "flat"
    approximate = dense_index(vectors, ann_threshold=2_000)
    assert describe_dense_index(approximate).startswith("IVF")
    assert approximate.ntotal == len(vectors)


def test_approximate_search_recalls_what_exact_search_finds() -> None:
    points = _clustered(40_200)
    vectors, queries = points[:40_000], points[40_000:]
    exact = dense_index(vectors, ann_threshold=len(vectors) + 1)
    approximate = dense_index(vectors, ann_threshold=1)
    _, truth = exact.search(queries, 10)
    scores, found = approximate.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9, f"recall@10 {recall:.3f}"
    # Scores are inner products of 8-bit codes: close to the exact cosine, best first.
    exact_scores = np.einsum("qd,qkd->qk", queries, vectors[found])
    np.testing.assert_allclose(scores, exact_scores, atol=0.02)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_tiny_collections_still_build_an_approximate_index() -> None:
    for count in (1, 7, 100):
        index = dense_index(_clustered(count), ann_threshold=1)
        assert index.ntotal == count
        _, rows = index.search(_clustered(1), 1)
        assert 0 <= rows[0][0] < count


@pytest.mark.slow
def test_approximate_index_round_trip(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    articles = load_articles([BUNDLED_ARTICLES])
    exact, _ = build_index(articles, embedder, tmp_path / "exact")
    built, _ = build_index(articles, embedder, tmp_path / "ann", ann_threshold=1)
    assert built.manifest is not None and built.manifest.dense_index.startswith("IVF")
    assert exact.manifest is not None and exact.manifest.dense_index == "flat"
    loaded = load_index(tmp_path / "ann", embedder)
    assert not isinstance(loaded.segments[0].faiss_index, faiss.IndexFlat)
    # Vectors are mapped from disk, not read whole.
    assert isinstance(loaded.passage_vectors, np.memmap)
    question = embedder.encode(["who was fired?"])[0]
    for index in (built, loaded):
        hits = index.search("who was fired?", question, k=3)
        want = exact.search("who was fired?", question, k=3)
        assert [h.passage.id for h in hits] == [h.passage.id for h in want]
        assert [h.dense for h in hits] == pytest.approx([h.dense for h in want], abs=1e-5)


def test_threshold_is_configurable(tmp_path: Path) -> None:
    config_file = tmp_path / "articlebot.toml"
    config_file.write_text("[search]\nann_threshold = 5000\n", encoding="utf-8")
    assert load_config(config_file, environ={}).search.ann_threshold == 5000
    config_file.write_text("[search]\nann_threshold = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"search\.ann_threshold"):
        load_config(config_file, environ={})
