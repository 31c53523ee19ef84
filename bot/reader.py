"""The answer reader: how likely each passage answers a question, and the short answer inside it.

A small BERT trained here from all-MiniLM-L6-v2 on the SQuAD v1.1 training set
(scripts/train_reader.py; its model card is bot/models/reader/README.md). It reads
`[CLS] question [SEP] passage [SEP]` (bot/reader_format.py) and gives a probability from [CLS]
and start/end scores for every passage token. It answers on ONNX Runtime, by default from
`reader-int8.onnx` (int8 linear layers), else from `reader.onnx` (float32), both exported from the
weights by scripts/export_reader_onnx.py; the numpy BERT forward pass of the question
encoder over `model.safetensors` is the reference, which tests/test_reader.py holds to torch and
the ONNX file to. Answering never imports torch.

The shipped files leave out the word embeddings, which training kept frozen: they are read from
the installed base model, which keeps the weights at about 21 MB.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bot.reader_format import MAX_ANSWER_TOKENS, PairEncoding, encode_pairs, load_tokenizer
from index.errors import ArticlebotError
from index.fast_encoder import pad_batch

READER_DIR = Path(__file__).parent / "models" / "reader"
ONNX_FILE = "reader.onnx"
# What the ONNX file was exported from and its checksum (scripts/export_reader_onnx.py writes it).
ONNX_MANIFEST = "onnx.json"
# The same graph with int8 linear layers (`export_reader_onnx.py --int8`): about half the time,
# the same quality within .002 on SQuAD's whole dev sets (the model card's figures); the bot's
# default, `answer.reader = "onnx-int8"`.
ONNX_INT8_FILE = "reader-int8.onnx"
ONNX_INT8_MANIFEST = "onnx-int8.json"
MANIFESTS = {"onnx": ONNX_MANIFEST, "onnx-int8": ONNX_INT8_MANIFEST}
# The runtimes a config may choose; the numpy reference besides is for tests and the exporter.
READER_CHOICES = tuple(MANIFESTS)
RUNTIMES = (*READER_CHOICES, "numpy")
# Passages read in one pass are padded to the longest of them: ones whose lengths differ by more
# than this many wordpieces go in separate passes (bot/reader.py, _length_groups).
PADDING_SLACK = 16
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


Scores = tuple[np.ndarray, np.ndarray, float]  # one passage's start and end scores, and its logit


class Reader:
    """The trained reader: `read(question, passages)` → one Reading per passage.

    `runtime` "onnx" (float32, this class's default), "onnx-int8" (int8 linear layers: about half
    the time; the bot's default, `answer.reader`) or "numpy" (the reference); `threads` is ONNX
    Runtime's (0: its own choice, one per core)."""

    def __init__(
        self, directory: Path = READER_DIR, base: Path | None = None, runtime: str = "onnx", threads: int = 0
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime is {runtime!r}: use one of {', '.join(RUNTIMES)}")
        self.directory = directory
        self._base = base
        self.runtime = runtime
        self.threads = threads
        # Set by `gather`: reads from several threads go through one pass.
        self._gatherer: Any = None

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
    def _model(self) -> _ReaderWeights | _OnnxReader:
        if self.runtime == "numpy":
            return _ReaderWeights.load(self.directory, self.base)
        try:
            return _OnnxReader.load(self.directory, self.base, self.threads, MANIFESTS[self.runtime])
        except ReaderError as error:
            if self.runtime == "onnx":
                raise
            raise ReaderError(f'{error}; or answer with the float32 reader: answer.reader = "onnx"') from None

    def gather(self, window: float, others: Callable[[], int]) -> None:
        """From now on, reads asked from several threads at once go through one forward pass: the
        first waits up to `window` seconds for the others while `others()` says more are coming."""
        from bot.read_batch import Gatherer

        if self._gatherer is None:
            self._gatherer = Gatherer(self.scores, window, others)

    def close(self) -> None:
        if self._gatherer is not None:
            self._gatherer.close()
            self._gatherer = None

    def read(self, question: str, passages: Sequence[str]) -> list[Reading]:
        if not passages:
            return []
        encodings = encode_pairs(self._tokenizer, question, passages)
        gatherer = self._gatherer
        scores = gatherer.scores(encodings) if gatherer is not None else self.scores(encodings)
        readings = []
        for (starts, ends, logit), encoding in zip(scores, encodings, strict=True):
            first, last = best_span(starts, ends, encoding)
            begin, finish = encoding.offsets[first] or (0, 0), encoding.offsets[last] or (0, 0)
            readings.append(Reading(logit, (begin[0], finish[1]), float(starts[first] + ends[last])))
        return readings

    def scores(self, encodings: Sequence[PairEncoding]) -> list[Scores]:
        """Each input's start and end scores (over its own tokens) and answerable logit, read in
        passes of similar length, so that little is padded."""
        model = self._model
        out: list[Scores | None] = [None] * len(encodings)
        for rows in _length_groups([len(e) for e in encodings]):
            starts, ends, logits = model.forward(*pad_batch([encodings[row] for row in rows]))
            for i, row in enumerate(rows):
                n = len(encodings[row])
                out[row] = (starts[i, :n], ends[i, :n], float(logits[i]))
        return [scores for scores in out if scores is not None]


def _length_groups(lengths: Sequence[int], slack: int = PADDING_SLACK) -> list[list[int]]:
    """Indices of `lengths` in groups of similar length (longest minus shortest <= slack)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] - lengths[groups[-1][0]] <= slack:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


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
        from safetensors import SafetensorError
        from safetensors.numpy import load

        from index.fast_encoder import BertWeights, FastEncoderUnavailable

        config = _config(directory)
        blob = _checked(directory / "model.safetensors", config, ("reader", "sha256"))
        try:
            tensors = {name: value.astype(np.float32) for name, value in load(blob).items()}
            tensors[WORD_EMBEDDINGS] = _word_embeddings(base)
            body = BertWeights(tensors, config["bert"])
            span = (tensors["span.weight"].T.copy(), tensors["span.bias"])
            answerable = (tensors["answerable.weight"].T.copy(), tensors["answerable.bias"])
        except (OSError, KeyError, ValueError, SafetensorError, FastEncoderUnavailable) as error:
            raise ReaderError(f"the reader model in {directory} cannot be loaded ({error}); {FIX}") from None
        return cls(body, span, answerable)

    def forward(
        self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start and end scores per token, and the answerable logit per row."""
        hidden = self.body.forward(ids, types, mask)
        span = hidden @ self.span[0] + self.span[1]
        answerable = hidden[:, 0] @ self.answerable[0] + self.answerable[1]
        return span[..., 0], span[..., 1], answerable[:, 0]


class _OnnxReader:
    """The reader's exported graph on ONNX Runtime, fed the word vectors looked up here.

    An int8 graph (`quantization` in its manifest) scales each layer's activations by the range
    of the whole input, so it reads every passage alone, unpadded: a passage's scores then never
    depend on which passages, or whose questions, were read beside it."""

    def __init__(self, session: Any, words: np.ndarray, alone: bool = False) -> None:
        self.session = session
        self.words = words
        self.alone = alone

    @classmethod
    def load(
        cls, directory: Path, base: Path, threads: int = 0, manifest_name: str = ONNX_MANIFEST
    ) -> _OnnxReader:
        config = _config(directory)
        try:
            manifest = json.loads((directory / manifest_name).read_text(encoding="utf-8"))
            graph = directory / manifest["file"]
            if manifest["exported_from"] != config["reader"]["sha256"]:
                raise ReaderError(
                    f"the reader's ONNX file {graph} was exported from other weights than "
                    f"{directory / 'model.safetensors'}; export it again with scripts/export_reader_onnx.py"
                )
        except FileNotFoundError as error:
            raise ReaderError(f"the reader model is missing ({error.filename}); {FIX}") from None
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ReaderError(f"the reader model in {directory} cannot be read ({error}); {FIX}") from None
        blob = _checked(graph, manifest, ("sha256",))
        try:
            import onnxruntime
        except ImportError:
            raise ReaderError(
                "the reader needs onnxruntime, which is not installed: reinstall articlebot"
                " (pip install -e .), or pip install onnxruntime"
            ) from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no notes about the fused ops on every start
        # Threads that spin between passes would take the cores from the search and the event loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
            words = _word_embeddings(base)
        except Exception as error:  # onnxruntime raises its own types for a graph it cannot run
            raise ReaderError(f"the reader model {graph} cannot be loaded ({error}); {FIX}") from None
        return cls(session, words, alone=manifest.get("quantization") is not None)

    def forward(
        self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start and end scores per token (0 on padding), and the answerable logit per row."""
        if not self.alone:
            return self._run(ids, types, mask)
        start, end = np.zeros(ids.shape, np.float32), np.zeros(ids.shape, np.float32)
        answerable = np.zeros(len(ids), np.float32)
        for row, n in enumerate(mask.sum(axis=1).astype(int)):
            one = slice(row, row + 1), slice(0, n)
            start[one], end[one], answerable[row : row + 1] = self._run(ids[one], types[one], mask[one])
        return start, end, answerable

    def _run(
        self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        feed = {"words": self.words[ids], "types": types, "mask": mask.astype(np.int64)}
        start, end, answerable = self.session.run(None, feed)
        return start, end, answerable


FIX = "reinstall articlebot, or retrain it with scripts/train_reader.py"


def _config(directory: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((directory / "config.json").read_text(encoding="utf-8")))
    except FileNotFoundError as error:
        raise ReaderError(f"the reader model is missing ({error.filename}); {FIX}") from None
    except (OSError, ValueError) as error:
        raise ReaderError(f"the reader model in {directory} cannot be read ({error}); {FIX}") from None


def _checked(file: Path, record: dict[str, Any], key: tuple[str, ...]) -> bytes:
    """The file's bytes, when their sha256 is the one `record` holds under `key`."""
    try:
        expected: Any = record
        for part in key:
            expected = expected[part]
        blob = file.read_bytes()
    except FileNotFoundError as error:
        raise ReaderError(f"the reader model is missing ({error.filename}); {FIX}") from None
    except (OSError, KeyError, TypeError) as error:
        raise ReaderError(f"the reader model {file} cannot be read ({error}); {FIX}") from None
    if hashlib.sha256(blob).hexdigest() != expected:
        raise ReaderError(f"the reader model {file} is damaged (checksum differs); {FIX}")
    return blob


def _word_embeddings(base: Path) -> np.ndarray:
    """The one tensor the reader shares with the base model, read from the base model's file."""
    from safetensors import safe_open

    with safe_open(str(base / "model.safetensors"), framework="numpy") as base_file:
        plain = WORD_EMBEDDINGS.removeprefix("bert.")
        name = plain if plain in base_file.keys() else WORD_EMBEDDINGS  # noqa: SIM118
        return np.asarray(base_file.get_tensor(name), dtype=np.float32)


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
