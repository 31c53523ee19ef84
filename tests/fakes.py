"""A deterministic stand-in for the model, for fast tests of storage and updates.

Beside, never instead of, the tests that use the real model: `HashEmbedder` gives each word a
fixed random vector (seeded by a hash of the word) and a text the normalised sum of its words',
so texts that share words are close, the same text always gets the same vector, and nothing
loads a model. It counts what it is asked to embed, so a test can say what an update embedded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

DIMENSION = 384


class HashEmbedder:
    model_name = "tests/hash-embedder"
    dimension = DIMENSION

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.encoded.extend(texts)
        vectors = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row] += _word_vector(word)
            norm = float(np.linalg.norm(vectors[row]))
            vectors[row] = vectors[row] / norm if norm else _word_vector("")
        return vectors

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))


def _word_vector(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)
