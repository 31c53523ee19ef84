"""How the reader sees a question and a passage: the one input format training and answering share.

The reader is BERT over `[CLS] question [SEP] passage [SEP]`. Training (scripts/train_reader.py,
torch) and answering (bot/reader.py, numpy) both build their inputs here, so a change to the
format cannot reach one side only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A passage is at most 120 words (~160 wordpieces); 256 leaves room for the question.
MAX_LENGTH = 256
MAX_QUESTION_TOKENS = 48
# SQuAD answers are short: 30 wordpieces covers all but a sliver of them.
MAX_ANSWER_TOKENS = 30


@dataclass(frozen=True)
class PairEncoding:
    """One question–passage input: token ids, segment ids, and where each passage token lies."""

    ids: list[int]
    type_ids: list[int]
    # Character span in the passage of each token; None for [CLS], [SEP] and question tokens.
    offsets: list[tuple[int, int] | None]

    def __len__(self) -> int:
        return len(self.ids)


def load_tokenizer(model_dir: Path) -> Any:
    """The base model's own `tokenizer.json`, truncating only the passage."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_LENGTH, strategy="only_second")
    return tokenizer


def encode_pairs(tokenizer: Any, question: str, passages: Sequence[str]) -> list[PairEncoding]:
    """The reader's inputs for one question against each passage."""
    question = _clip_question(tokenizer, question)
    encodings = tokenizer.encode_batch([(question, passage) for passage in passages])
    return [
        PairEncoding(
            ids=list(e.ids),
            type_ids=list(e.type_ids),
            offsets=[
                offset if sequence == 1 else None
                for offset, sequence in zip(e.offsets, e.sequence_ids, strict=True)
            ],
        )
        for e in encodings
    ]


def _clip_question(tokenizer: Any, question: str) -> str:
    """A long question keeps its first MAX_QUESTION_TOKENS wordpieces, so the passage is never cut
    to make room for it."""
    offsets = tokenizer.encode(question, add_special_tokens=False).offsets
    if len(offsets) <= MAX_QUESTION_TOKENS:
        return question
    return str(question[: offsets[MAX_QUESTION_TOKENS - 1][1]])
