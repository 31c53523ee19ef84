"""The figures `articlebot eval` reports, each a small pure function."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, no punctuation, no a/an/the, single spaces."""
    text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """True when a normalised gold answer occurs in the normalised text as whole words. Unlike
    EM/F1's official normalisation, every Unicode punctuation mark goes, not only ASCII's: an
    answer in curly quotes is still in the sentence."""
    padded = f" {_words(text)} "
    return any(f" {gold} " in padded for gold in (_words(a) for a in answers) if gold)


def _words(text: str) -> str:
    return normalize_answer("".join(c for c in text if not unicodedata.category(c).startswith("P")))


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when the prediction equals a gold answer after normalisation (the official script)."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(gold) for gold in answers))


def token_f1(prediction: str, answers: Iterable[str]) -> float:
    """The best word-overlap F1 against the gold answers, as the official SQuAD script counts it."""
    predicted = normalize_answer(prediction).split()
    best = 0.0
    for gold in answers:
        truth = normalize_answer(gold).split()
        common = sum((Counter(predicted) & Counter(truth)).values())
        if common:
            precision, recall = common / len(predicted), common / len(truth)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def first_hit_rank(hits: Sequence[bool]) -> int | None:
    """1-based rank of the first hit, or None when nothing ranked holds an answer."""
    return next((rank for rank, hit in enumerate(hits, start=1) if hit), None)


def hit_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions whose first hit ranks within the top k."""
    if not ranks:
        return float("nan")
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def mrr_at(ranks: Sequence[int | None], k: int = 10) -> float:
    """Mean reciprocal rank of the first hit, counting 0 beyond rank k."""
    if not ranks:
        return float("nan")
    return sum(1.0 / rank for rank in ranks if rank is not None and rank <= k) / len(ranks)


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative (ties: half)."""
    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    # Average ranks over ties (1-based), then the Mann-Whitney U statistic.
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def answered_rates(answered: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float]:
    """Accuracy, precision and recall of answering, an answerable question being the positive case."""
    said = np.asarray(answered, dtype=bool)
    truth = np.asarray(answerable, dtype=bool)
    true_pos = int((said & truth).sum())
    return {
        "accuracy": float((said == truth).mean()) if len(said) else float("nan"),
        "precision": true_pos / int(said.sum()) if said.any() else float("nan"),
        "recall": true_pos / int(truth.sum()) if truth.any() else float("nan"),
    }
