"""The answer reader: how likely each passage answers a question, and the short answer inside it.

A small BERT trained here from all-MiniLM-L6-v2 on the SQuAD v1.1 training set
(scripts/train_reader.py; its model card is bot/models/reader/README.md). It reads
`[CLS] question [SEP] passage [SEP]` (bot/reader_format.py) and gives a probability from [CLS]
and start/end scores for every passage token. It runs on the numpy BERT forward pass of the
question encoder, so answering never imports torch; tests/test_reader.py holds it to torch.

The shipped file leaves out the word embeddings, which training kept frozen: they are read from
the installed base model, which keeps the file at about 21 MB.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bot.reader_format import MAX_ANSWER_TOKENS, PairEncoding, encode_pairs, load_tokenizer
from index.errors import ArticlebotError
from index.fast_encoder import pad_batch

READER_DIR = Path(__file__).parent / "models" / "reader"
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
# Answer when the reader's probability is at least this: keeps 98% of SQuAD v2.0's answerable
# questions answered (scripts/fit_threshold.py, folds grouped by article: 98.0% out of fold).
# The only figure chosen on a dev set.
ABSTAIN_THRESHOLD = 0.322


class ReaderError(ArticlebotError):
    """The reader's weights are missing or damaged."""


@dataclass(frozen=True)
class Reading:
    """What the reader makes of one passage for one question."""

    logit: float  # of the probability that the passage answers the question
    span: tuple[int, int]  # the likeliest short answer: characters in the passage
    span_score: float  # its start plus end score

    @property
    def probability(self) -> float:
        return _sigmoid(self.logit)


class Reader:
    """The trained reader over numpy: `read(question, passages)` → one Reading per passage."""

    def __init__(self, directory: Path = READER_DIR, base: Path | None = None) -> None:
        self.directory = directory
        self._base = base

    @property
    def base(self) -> Path:
        from index.embed import model_path

        return self._base or model_path()

    def load(self) -> Reader:
        """Read and check the weights now rather than on the first question."""
        _ = self._model
        return self

    @cached_property
    def _tokenizer(self) -> Any:
        return load_tokenizer(self.base)

    @cached_property
    def _model(self) -> _ReaderWeights:
        return _ReaderWeights.load(self.directory, self.base)

    def read(self, question: str, passages: Sequence[str]) -> list[Reading]:
        if not passages:
            return []
        model = self._model
        encodings = encode_pairs(self._tokenizer, question, passages)
        starts, ends, answerable = model.forward(*pad_batch(encodings))
        readings = []
        for row, encoding in enumerate(encodings):
            first, last = best_span(starts[row], ends[row], encoding)
            begin, finish = encoding.offsets[first] or (0, 0), encoding.offsets[last] or (0, 0)
            score = float(starts[row][first] + ends[row][last])
            readings.append(Reading(float(answerable[row]), (begin[0], finish[1]), score))
        return readings


class _ReaderWeights:
    """The BERT body (the question encoder's numpy forward pass) and the two heads."""

    def __init__(
        self, body: Any, span: tuple[np.ndarray, np.ndarray], answerable: tuple[np.ndarray, np.ndarray]
    ):
        self.body = body
        self.span = span
        self.answerable = answerable

    @classmethod
    def load(cls, directory: Path, base: Path) -> _ReaderWeights:
        from safetensors import SafetensorError, safe_open
        from safetensors.numpy import load

        from index.fast_encoder import BertWeights, FastEncoderUnavailable

        weights_file = directory / "model.safetensors"
        fix = "reinstall articlebot, or retrain it with scripts/train_reader.py"
        try:
            config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
            expected = config["reader"]["sha256"]
            blob = weights_file.read_bytes()
        except FileNotFoundError as error:
            raise ReaderError(f"the reader model is missing ({error.filename}); {fix}") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ReaderError(f"the reader model in {directory} cannot be read ({error}); {fix}") from None
        if hashlib.sha256(blob).hexdigest() != expected:
            raise ReaderError(f"the reader model {weights_file} is damaged (checksum differs); {fix}")
        try:
            tensors = {name: value.astype(np.float32) for name, value in load(blob).items()}
            # Only the one shared tensor is read from the base model's file.
            with safe_open(str(base / "model.safetensors"), framework="numpy") as base_file:
                plain = WORD_EMBEDDINGS.removeprefix("bert.")
                name = plain if plain in base_file.keys() else WORD_EMBEDDINGS  # noqa: SIM118
                tensors[WORD_EMBEDDINGS] = base_file.get_tensor(name)
            body = BertWeights(tensors, config["bert"])
            span = (tensors["span.weight"].T.copy(), tensors["span.bias"])
            answerable = (tensors["answerable.weight"].T.copy(), tensors["answerable.bias"])
        except (OSError, KeyError, ValueError, SafetensorError, FastEncoderUnavailable) as error:
            raise ReaderError(f"the reader model in {directory} cannot be loaded ({error}); {fix}") from None
        return cls(body, span, answerable)

    def forward(
        self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start and end scores per token, and the answerable logit per row."""
        hidden = self.body.forward(ids, types, mask)
        span = hidden @ self.span[0] + self.span[1]
        answerable = hidden[:, 0] @ self.answerable[0] + self.answerable[1]
        return span[..., 0], span[..., 1], answerable[:, 0]


def best_span(start: np.ndarray, end: np.ndarray, encoding: PairEncoding) -> tuple[int, int]:
    """The passage tokens (first, last) maximising start + end score, at most MAX_ANSWER_TOKENS long."""
    allowed = np.array([offset is not None for offset in encoding.offsets[: len(start)]])
    allowed = np.pad(allowed, (0, len(start) - len(allowed)))
    s = np.where(allowed, start, -np.inf)
    e = np.where(allowed, end, -np.inf)
    n = len(s)
    upper = np.triu(np.ones((n, n), dtype=bool))
    window = upper & ~np.triu(np.ones((n, n), dtype=bool), MAX_ANSWER_TOKENS)
    total = np.where(window, s[:, None] + e[None, :], -np.inf)
    first, last = np.unravel_index(int(np.argmax(total)), total.shape)
    return int(first), int(last)


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))
