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


@dataclass(frozen=True)
class ReaderTokenizer:
    """The base model's own `tokenizer.json`, loaded twice: `pairs` truncates only the passage of
    a question–passage pair; `questions` never truncates, to measure a question alone. (Truncating
    only the second sequence fails on a lone sequence over MAX_LENGTH wordpieces, "Truncation
    error: Second sequence not provided": 999 CJK characters are 999 wordpieces.)"""

    pairs: Any
    questions: Any


def load_tokenizer(model_dir: Path) -> ReaderTokenizer:
    """The reader's tokenizers, from the base model's `tokenizer.json`."""
    from tokenizers import Tokenizer

    pairs = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pairs.no_padding()
    pairs.enable_truncation(max_length=MAX_LENGTH, strategy="only_second")
    questions = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    questions.no_padding()
    questions.no_truncation()
    return ReaderTokenizer(pairs, questions)


def encode_pairs(tokenizer: ReaderTokenizer, question: str, passages: Sequence[str]) -> list[PairEncoding]:
    """The reader's inputs for one question against each passage."""
    question = _clip_question(tokenizer, question)
    encodings = tokenizer.pairs.encode_batch([(question, passage) for passage in passages])
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


def _clip_question(tokenizer: ReaderTokenizer, question: str) -> str:
    """A long question keeps its first MAX_QUESTION_TOKENS wordpieces, so the passage is never cut
    to make room for it."""
    offsets = tokenizer.questions.encode(question, add_special_tokens=False).offsets
    if len(offsets) <= MAX_QUESTION_TOKENS:
        return question
    return str(question[: offsets[MAX_QUESTION_TOKENS - 1][1]])
