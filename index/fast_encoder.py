"""all-MiniLM-L6-v2 for questions without torch: the model's own weights and tokenizer, in numpy.

sentence-transformers builds the index; questions only need the same vectors, and importing
torch costs seconds where a question costs milliseconds. This is the same BERT forward pass
(6 layers, 12 heads, exact GELU, mean pooling, unit length) over `model.safetensors`, read with
`safetensors` and tokenised by the model's `tokenizer.json` through `tokenizers`; a test holds
its vectors to sentence-transformers (cosine >= 0.9999).

Why numpy rather than ONNX Runtime: exporting ONNX from torch needs the `onnx` package and an
export step to cache and keep in step with the model; a question of ten to thirty wordpieces
costs about as little in numpy as in ONNX Runtime (measured in scripts/bench.py), and building
the index stays with sentence-transformers, where long batches need a tuned runtime.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from index.embed import MODEL_DIMENSION, MODEL_NAME, model_path

log = logging.getLogger(__name__)

# sentence_bert_config.json: the model reads at most 256 wordpieces, [CLS] and [SEP] included.
MAX_SEQUENCE = 256
_LAYER_NORM_EPS = 1e-12


class FastEncoderUnavailable(RuntimeError):
    """The numpy path cannot run here (a package or a model file is missing)."""


class NumpyMiniLMEncoder:
    """The Embedder protocol for all-MiniLM-L6-v2, with numpy and `tokenizers` only."""

    model_name = MODEL_NAME
    dimension = MODEL_DIMENSION

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path or model_path()

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        # tokenizer.json ships with truncation and padding at 128; the model reads 256.
        tokenizer.enable_truncation(max_length=MAX_SEQUENCE)
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def _counting_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    @cached_property
    def _weights(self) -> BertWeights:
        from safetensors.numpy import load_file

        config = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        return BertWeights(load_file(str(self.path / "model.safetensors")), config)

    def load(self) -> NumpyMiniLMEncoder:
        """Read the weights and tokenizer now rather than on the first question."""
        _ = self._weights, self._tokenizer
        return self

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch_size = batch_size or 32
        encodings = self._tokenizer.encode_batch(list(texts))
        # Batches of similar length waste little on padding.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(encodings), self.dimension), dtype=np.float32)
        with _one_blas_thread():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self._forward([encodings[i] for i in rows])
        return out

    def count_tokens(self, text: str) -> int:
        return len(self._counting_tokenizer.encode(text, add_special_tokens=False).ids)

    def _forward(self, encodings: Sequence[Any]) -> np.ndarray:
        ids, types, mask = pad_batch(encodings)
        hidden = self._weights.forward(ids, types, mask)
        # Mean pooling over real tokens, then unit length (sentence-transformers' Pooling + Normalize).
        summed = np.einsum("bld,bl->bd", hidden, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)


def pad_batch(encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids, segment ids and attention mask of encodings (anything with `.ids` and
    `.type_ids`), padded to the longest."""
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), length), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros((len(encodings), length), dtype=np.float32)
    for row, encoding in enumerate(encodings):
        n = len(encoding.ids)
        ids[row, :n] = encoding.ids
        types[row, :n] = encoding.type_ids
        mask[row, :n] = 1.0
    return ids, types, mask


class BertWeights:
    """BertModel weights laid out for numpy matrix products, and the forward pass over them."""

    def __init__(self, tensors: dict[str, np.ndarray], config: dict[str, Any]) -> None:
        plain = config.get("position_embedding_type", "absolute") == "absolute"
        if config.get("hidden_act", "gelu") != "gelu" or not plain:
            raise FastEncoderUnavailable("the model is not a plain BERT with GELU and absolute positions")
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", _LAYER_NORM_EPS))
        t = {name.removeprefix("bert."): value for name, value in tensors.items()}
        self.word = t["embeddings.word_embeddings.weight"]
        self.position = t["embeddings.position_embeddings.weight"]
        self.token_type = t["embeddings.token_type_embeddings.weight"]
        self.embedding_norm = (t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            attention = p + "attention.self."
            # One (hidden, 3*hidden) product gives queries, keys and values together.
            qkv_weight = np.concatenate(
                [t[attention + "query.weight"], t[attention + "key.weight"], t[attention + "value.weight"]]
            ).T.copy()
            qkv_bias = np.concatenate(
                [t[attention + "query.bias"], t[attention + "key.bias"], t[attention + "value.bias"]]
            )
            self.layers.append(
                (
                    qkv_weight,
                    qkv_bias,
                    t[p + "attention.output.dense.weight"].T.copy(),
                    t[p + "attention.output.dense.bias"],
                    (t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"]),
                    t[p + "intermediate.dense.weight"].T.copy(),
                    t[p + "intermediate.dense.bias"],
                    t[p + "output.dense.weight"].T.copy(),
                    t[p + "output.dense.bias"],
                    (t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"]),
                )
            )

    def forward(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length][None, :, :] + self.token_type[types]
        x = _layer_norm(x, *self.embedding_norm, self.eps)
        hidden = x.shape[-1]
        head = hidden // self.heads
        scale = np.float32(1.0 / np.sqrt(head))
        # Padding gets no attention: the same large negative bias transformers adds.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :].astype(np.float32)
        for qkv_w, qkv_b, out_w, out_b, norm1, in_w, in_b, ff_w, ff_b, norm2 in self.layers:
            qkv = x @ qkv_w + qkv_b
            qkv = qkv.reshape(batch, length, 3, self.heads, head).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = _layer_norm(context @ out_w + out_b + x, *norm1, self.eps)
            inner = _gelu(x @ in_w + in_b)
            x = _layer_norm(inner @ ff_w + ff_b + x, *norm2, self.eps)
        return np.asarray(x, dtype=np.float32)


@lru_cache(maxsize=1)
def _thread_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[Any]:
    """A question's products are small: one BLAS thread is as fast alone and far steadier beside
    other work (measured on 2 busy cores: p50 13.7 ms with one thread, 34-51 ms with two)."""
    controller = _thread_controller()
    if controller is None:
        return nullcontext()
    return cast(AbstractContextManager[Any], controller.limit(limits=1, user_api="blas"))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return np.asarray(centred / np.sqrt(variance + eps) * weight + bias, dtype=np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Φ(x), with erf to float32 precision."""
    return np.asarray(0.5 * x * (1.0 + _erf(x * np.float32(1 / np.sqrt(2)))), dtype=np.float32)


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: below float32 resolution of the activations,
    # and it spares importing scipy for one function.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)), dtype=np.float32)


_fallback_said = False


def fast_query_encoder(*, load: bool = False) -> NumpyMiniLMEncoder | None:
    """The torch-free encoder, or None when it cannot run here (then use sentence-transformers).

    Without `load`, only cheap checks run (the packages are installed, the model files exist),
    so an engine can be made without reading 90 MB of weights it may never use.
    """
    from importlib.util import find_spec

    try:
        encoder = NumpyMiniLMEncoder()
        missing = [name for name in ("safetensors", "tokenizers") if find_spec(name) is None]
        files = ("model.safetensors", "tokenizer.json", "config.json")
        missing += [name for name in files if not (encoder.path / name).is_file()]
        if missing:
            raise FastEncoderUnavailable(f"missing {', '.join(missing)}")
        return encoder.load() if load else encoder
    except (ImportError, OSError, KeyError, ValueError, FastEncoderUnavailable) as error:
        global _fallback_said
        if not _fallback_said:
            # Seconds more per cold start (torch is imported): worth a line, once a process.
            log.warning(
                "the fast question encoder cannot run (%s): questions go through sentence-transformers, "
                "which imports torch (a cold start takes seconds longer)",
                error,
            )
            _fallback_said = True
        return None
