"""The calibrated abstention model: how likely the best sentence answers the question.

A logistic regression over a few features of the search and the best sentence (see
`bot.answer.abstention_features`), fitted offline on SQuAD v2.0 by `scripts/fit_abstention.py`
and shipped as `bot/abstain.json`. Nothing is fitted at start-up, and only numpy is needed here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_PATH = Path(__file__).with_name("abstain.json")


@dataclass(frozen=True)
class AbstentionModel:
    """Standardise the features, then a logistic: P(the question is answered by the best sentence)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AbstentionModel:
        return cls(
            tuple(data["features"]),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            np.asarray(data["coef"], dtype=np.float64),
            float(data["intercept"]),
            float(data["threshold"]),
        )

    def probability(self, features: Mapping[str, float]) -> float:
        values = np.array([features[name] for name in self.features], dtype=np.float64)
        logit = float(self.intercept + np.dot(self.coef, (values - self.mean) / self.scale))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))


@lru_cache(maxsize=1)
def shipped_model() -> AbstentionModel | None:
    """The model shipped with the package, or None when the file is absent."""
    try:
        return AbstentionModel.from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


def confidence(features: Mapping[str, float], *, dense: bool = True) -> float:
    """How sure the bot is, in [0, 1], that the best sentence answers the question.

    The model weighs cosines; a search without the question's vector (lexical mode) has none,
    so it falls back to the mean of the best sentence's cosine and word overlap, as does a
    package without the model file.
    """
    model = shipped_model()
    if model is None or not dense:
        return max(0.0, min(1.0, 0.5 * features["sentence_cosine"] + 0.5 * features["sentence_overlap"]))
    return model.probability(features)
