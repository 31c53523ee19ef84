"""BM25 over a segment's passages (bm25s), with the terms index/lexical.py makes."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from index.lexical import bm25_idf, tokenize


@lru_cache(maxsize=1)
def _bm25s() -> Any:
    """bm25s, imported once; it sets its logger to DEBUG on import, so hand that back to the root's level."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


class LexicalIndex:
    """BM25 scores of a query against every passage, and document frequencies of terms."""

    def __init__(self, retriever: Any, document_frequency: dict[str, int], size: int) -> None:
        self._retriever = retriever
        self._document_frequency = document_frequency
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        corpus = tokenize(texts)
        retriever = _bm25s().BM25()
        # bm25s cannot index an empty corpus; an index of nothing scores nothing.
        if corpus:
            retriever.index(corpus, show_progress=False)
        frequency: dict[str, int] = {}
        for terms in corpus:
            for term in set(terms):
                frequency[term] = frequency.get(term, 0) + 1
        return cls(retriever, frequency, len(texts))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage, in passage order."""
        return self.scores_of(tokenize([query])[0])

    def scores_of(self, terms: Sequence[str], idf: Mapping[str, float] | None = None) -> np.ndarray:
        """BM25 score of every passage for these (tokenised) terms. With `idf`, each term counts
        with that idf instead of this index's own: the whole index's, when this is one segment."""
        if not terms or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        if idf is None:
            return np.asarray(self._retriever.get_scores(list(terms)), dtype=np.float32)
        total = np.zeros(self.size, dtype=np.float32)
        for term, count in Counter(terms).items():
            if self.document_frequency(term) == 0:
                continue  # in no passage here: nothing to score
            scores = np.asarray(self._retriever.get_scores([term]), dtype=np.float32)
            total += (count * idf[term] / self.idf(term)) * scores
        return total

    def document_frequency(self, term: str) -> int:
        return self._document_frequency.get(term, 0)

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency; an unseen term weighs the most."""
        return bm25_idf(self.size, self.document_frequency(term))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.size:
            self._retriever.save(str(folder), show_progress=False)
        (folder / "document_frequency.json").write_text(
            json.dumps({"size": self.size, "terms": self._document_frequency}), encoding="utf-8"
        )

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        bm25s = _bm25s()
        stored = json.loads((folder / "document_frequency.json").read_text(encoding="utf-8"))
        size = int(stored["size"])
        # Mapped, not read: a large index's score matrix costs memory only for the pages a query touches.
        retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False) if size else bm25s.BM25()
        return cls(retriever, stored["terms"], size)
