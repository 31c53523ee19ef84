"""BM25 over passages (bm25s, Snowball stemming), plus the idf the answer step weighs words by."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed terms: the one tokenisation used everywhere."""
    import bm25s

    tokens: list[list[str]] = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False
    )
    return tokens


class LexicalIndex:
    """BM25 scores of a query against every passage, and document frequencies of terms."""

    def __init__(self, retriever: Any, document_frequency: dict[str, int], size: int) -> None:
        self._retriever = retriever
        self._document_frequency = document_frequency
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        import bm25s

        corpus = tokenize(texts)
        retriever = bm25s.BM25()
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
        terms = tokenize([query])[0]
        if not terms or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(terms), dtype=np.float32)

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency; an unseen term weighs the most."""
        seen = self._document_frequency.get(term, 0)
        return math.log(1 + (self.size - seen + 0.5) / (seen + 0.5))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.size:
            self._retriever.save(str(folder), show_progress=False)
        (folder / "document_frequency.json").write_text(
            json.dumps({"size": self.size, "terms": self._document_frequency}), encoding="utf-8"
        )

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s

        stored = json.loads((folder / "document_frequency.json").read_text(encoding="utf-8"))
        size = int(stored["size"])
        retriever = bm25s.BM25.load(str(folder), show_progress=False) if size else bm25s.BM25()
        return cls(retriever, stored["terms"], size)
