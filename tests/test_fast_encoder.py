"""The torch-free question encoder gives sentence-transformers' vectors, and the same answers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from hostile_input import LONG_QUESTIONS

from bot.config import Config, ModelSettings
from bot.engine import AnswerEngine
from index.embed import SentenceTransformerEmbedder
from index.fast_encoder import NumpyMiniLMEncoder, fast_query_encoder

pytestmark = pytest.mark.slow

SQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"

QUESTIONS = [
    "who was fired?",
    "Who was dismissed last week?",
    "What is the capital of France?",
    "How do I bake sourdough bread?",
    "what did Khachatrian mock?",
    "When will the opposition hold another rally?",
    "Was the U.S. involved, Mr. Smith?",
    "“Attempted military coup” — whose words were those?",
    "Ünïcödé, accents: café, naïve, Zürich, Ереван",
    "numbers 44 days, 3.5% and 2021-03-01",
    "?",
    "a",
]
# Over the bundled article: answerable ones, and two that must abstain.
ANSWER_QUESTIONS = [
    "who was fired?",
    "who was dismissed last week?",
    "what did the protesters break into?",
    "how many days did the fighting last?",
    "who refused to sign the order?",
    "what did the officers sign?",
    "What did Pashinian call the move?",
    "were there any injuries?",
    "which districts did Armenia cede?",
    "What is the capital of France?",
    "How do I bake sourdough bread?",
]
# Longer than the model's 256 wordpieces: both sides must truncate the same way.
LONG_TEXT = " ".join(["Armenia's prime minister faced protests in Yerevan after the war."] * 40)


@pytest.fixture(scope="module")
def fast() -> NumpyMiniLMEncoder:
    encoder = fast_query_encoder(load=True)
    assert encoder is not None, "the fast encoder should run wherever the project's packages are installed"
    return encoder


def _squad_questions(count: int) -> list[str]:
    if not SQUAD_DEV.exists():
        return []
    data = json.loads(SQUAD_DEV.read_text(encoding="utf-8"))["data"]
    questions = [qa["question"] for article in data for p in article["paragraphs"] for qa in p["qas"]]
    return questions[:: max(1, len(questions) // count)][:count]


def test_vectors_match_sentence_transformers(
    fast: NumpyMiniLMEncoder, embedder: SentenceTransformerEmbedder
) -> None:
    texts = QUESTIONS + list(LONG_QUESTIONS) + _squad_questions(200) + [LONG_TEXT]
    ours = fast.encode(texts)
    reference = embedder.encode(texts)
    assert ours.shape == reference.shape == (len(texts), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(ours * reference, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine[worst] >= 0.9999, f"cosine {cosine[worst]:.6f} for {texts[worst][:60]!r}"


def test_batching_does_not_change_vectors(fast: NumpyMiniLMEncoder) -> None:
    """Padding a short question beside a long one must not move its vector."""
    alone = np.stack([fast.encode([text])[0] for text in QUESTIONS[:6]])
    together = fast.encode([*QUESTIONS[:6], LONG_TEXT], batch_size=7)[:6]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_empty_input_and_token_counts(
    fast: NumpyMiniLMEncoder, embedder: SentenceTransformerEmbedder
) -> None:
    assert fast.encode([]).shape == (0, 384)
    for text in (*QUESTIONS, LONG_TEXT):
        assert fast.count_tokens(text) == embedder.count_tokens(text)


def test_engine_uses_the_fast_encoder_by_default(
    bundled_config: Config, embedder: SentenceTransformerEmbedder
) -> None:
    assert isinstance(AnswerEngine(bundled_config, embedder=embedder).query_encoder, NumpyMiniLMEncoder)
    reference = AnswerEngine(
        bundled_config.replace(model=ModelSettings(query_encoder="sentence-transformers")), embedder=embedder
    )
    assert reference.query_encoder is embedder


def test_fast_path_gives_the_reference_answers(
    engine: AnswerEngine, embedder: SentenceTransformerEmbedder
) -> None:
    assert isinstance(engine.query_encoder, NumpyMiniLMEncoder)
    reference = AnswerEngine(engine.config, embedder=embedder, query_encoder=embedder, status=lambda m: None)
    for question in ANSWER_QUESTIONS:
        fast_answer, slow_answer = engine.ask(question), reference.ask(question)
        assert fast_answer.answered == slow_answer.answered, question
        assert (fast_answer.sentence and fast_answer.sentence.text) == (
            slow_answer.sentence and slow_answer.sentence.text
        ), question
        fast_ids = [p.passage.id for p in fast_answer.passages]
        assert fast_ids == [p.passage.id for p in slow_answer.passages], question
        assert [p.score for p in fast_answer.passages] == pytest.approx(
            [p.score for p in slow_answer.passages], abs=1e-4
        ), question


def test_auto_device_is_cuda_only_when_torch_sees_a_gpu() -> None:
    import torch

    from index.embed import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_falling_back_to_torch_is_said_once_at_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A cold start going from half a second to six without a word is a bug report waiting to happen."""
    from index import fast_encoder

    monkeypatch.setattr(fast_encoder, "model_path", lambda: tmp_path)  # no model files there
    monkeypatch.setattr(fast_encoder, "_fallback_said", False)
    with caplog.at_level(logging.WARNING, logger="index.fast_encoder"):
        assert fast_query_encoder() is None
        assert fast_query_encoder() is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    said = record.getMessage()
    assert "missing model.safetensors" in said and "sentence-transformers" in said
