"""The answer reader: numpy against torch, ONNX against numpy, short answers, garbled questions,
damaged weights, the cascade and reads gathered across threads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hostile_input import LONG_QUESTIONS
from project_scripts import load_script

from bot.config import BUNDLED_ARTICLES
from bot.engine import AnswerEngine
from bot.reader import (
    ONNX_FILE,
    ONNX_INT8_FILE,
    ONNX_INT8_MANIFEST,
    ONNX_MANIFEST,
    READER_DIR,
    Reader,
    ReaderError,
    _length_groups,
)
from bot.reader_format import MAX_LENGTH, MAX_QUESTION_TOKENS, encode_pairs
from index.fast_encoder import pad_batch

pytestmark = pytest.mark.slow

QUESTION = "who was fired?"
PASSAGES = [
    "On Thursday, Pashinian immediately fired Onik Gasparian, the chief of the military's General Staff.",
    "The cease-fire ended 44 days of fierce fighting.",
    "Short.",
]


# How far the shipped ONNX file may land from the numpy reference. It holds the fp16 weights the
# numpy pass reads, in float32: scripts/export_reader_onnx.py --check measured at most 3e-5 on the
# bundled articles.
ONNX_TOLERANCE = 1e-3
# The int8 file (answer.reader = "onnx-int8"), outliers smoothed: at most 0.45 on a logit and 0.93
# on a start or end score there; plain int8 (no smoothing) moves them by 0.84 and 1.8.
INT8_LOGIT_TOLERANCE, INT8_SCORE_TOLERANCE = 0.5, 1.0


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader().load()


@pytest.fixture(scope="module")
def reference() -> Reader:
    return Reader(runtime="numpy").load()


def test_numpy_reader_gives_torch_outputs(reference: Reader) -> None:
    """The shipped weights through the training script's torch model and through numpy agree."""
    import torch

    training = load_script("train_reader")
    model = training.make_model("cpu")
    training.start_from(model, READER_DIR, "cpu")  # how a further training pass starts from them
    model.eval()
    encodings = encode_pairs(reference._tokenizer, QUESTION, PASSAGES)
    ids, types, mask = pad_batch(encodings)
    with torch.no_grad():
        expected = [
            t.numpy() for t in model(*(torch.from_numpy(a) for a in (ids, types, mask.astype(np.int64))))
        ]
    got = reference._model.forward(ids, types, mask)
    for row, e in enumerate(encodings):
        for theirs, ours in zip(expected[:2], got[:2], strict=True):
            np.testing.assert_allclose(ours[row, : len(e)], theirs[row, : len(e)], atol=2e-3)
    np.testing.assert_allclose(got[2], expected[2], atol=2e-3)


def test_the_onnx_reader_gives_the_numpy_readers_outputs(reader: Reader, reference: Reader) -> None:
    """What answers (ONNX Runtime) against the reference (numpy), on every passage of the bundled
    article, padded together as a batch of questions is."""
    assert reader.runtime == "onnx"
    _held_to(reference, reader, ONNX_TOLERANCE, ONNX_TOLERANCE)
    for a, b in zip(reader.read(QUESTION, PASSAGES), reference.read(QUESTION, PASSAGES), strict=True):
        assert a.span == b.span and a.logit == pytest.approx(b.logit, abs=ONNX_TOLERANCE)


def _held_to(reference: Reader, reader: Reader, logit_tolerance: float, score_tolerance: float) -> None:
    """`reader`'s scores within the tolerances of the reference's on the bundled article's
    passages, and the same passage answering where one does."""
    from index.articles import load_articles
    from index.split import split_article

    [article] = load_articles([BUNDLED_ARTICLES])
    passages = [p.text for p in split_article(article)[1]]
    for question in ("who was fired?", "What is the capital of France?"):
        encodings = encode_pairs(reader._tokenizer, question, passages)
        batch = pad_batch(encodings)
        ours, theirs = reader._model.forward(*batch), reference._model.forward(*batch)
        np.testing.assert_allclose(ours[2], theirs[2], atol=logit_tolerance)
        if theirs[2].max() > 0:
            assert np.argmax(ours[2]) == np.argmax(theirs[2])
        for row, e in enumerate(encodings):
            for a, b in zip(ours[:2], theirs[:2], strict=True):
                np.testing.assert_allclose(a[row, : len(e)], b[row, : len(e)], atol=score_tolerance)


def test_an_int8_graph_reads_each_passage_alone_and_unpadded(reader: Reader) -> None:
    """An int8 graph's activation scales span its whole input, so it is run one passage at a time
    (bot/reader.py, _OnnxReader.alone); the shipped float graph gives the same scores either way."""
    from bot.reader import _OnnxReader

    batched = reader._model
    assert isinstance(batched, _OnnxReader) and not batched.alone  # the shipped file is float32
    alone = _OnnxReader(batched.session, batched.words, alone=True)
    encodings = encode_pairs(reader._tokenizer, QUESTION, PASSAGES)
    batch = pad_batch(encodings)
    ours, theirs = alone.forward(*batch), batched.forward(*batch)
    np.testing.assert_allclose(ours[2], theirs[2], atol=1e-4)
    for row, e in enumerate(encodings):
        for a, b in zip(ours[:2], theirs[:2], strict=True):
            np.testing.assert_allclose(a[row, : len(e)], b[row, : len(e)], atol=1e-4)
            assert not a[row, len(e) :].any()  # padding scores nothing


def test_the_int8_reader_stays_near_the_numpy_readers_outputs(reference: Reader) -> None:
    """The int8 file reads each passage alone, and lands within what was measured for it."""
    from bot.reader import _OnnxReader

    int8 = Reader(runtime="onnx-int8").load()
    assert isinstance(int8._model, _OnnxReader) and int8._model.alone
    _held_to(reference, int8, INT8_LOGIT_TOLERANCE, INT8_SCORE_TOLERANCE)


@pytest.mark.parametrize("manifest_name", [ONNX_MANIFEST, ONNX_INT8_MANIFEST])
def test_the_onnx_file_was_exported_from_the_shipped_weights(manifest_name: str) -> None:
    """After new weights, scripts/export_reader_onnx.py must run again: the bot refuses a stale file."""
    import json

    config = json.loads((READER_DIR / "config.json").read_text(encoding="utf-8"))
    manifest = json.loads((READER_DIR / manifest_name).read_text(encoding="utf-8"))
    assert manifest["exported_from"] == config["reader"]["sha256"], "run scripts/export_reader_onnx.py"


def test_a_stale_or_damaged_onnx_file_is_refused(tmp_path: Path) -> None:
    import json

    copy = tmp_path / "reader"
    shutil.copytree(READER_DIR, copy)
    manifest = json.loads((copy / ONNX_MANIFEST).read_text(encoding="utf-8"))
    (copy / ONNX_MANIFEST).write_text(json.dumps({**manifest, "exported_from": "0" * 64}), encoding="utf-8")
    with pytest.raises(ReaderError, match=r"exported from other weights.*export_reader_onnx\.py"):
        Reader(copy).load()
    (copy / ONNX_MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    graph = copy / ONNX_FILE
    data = bytearray(graph.read_bytes())
    data[len(data) // 3] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ReaderError, match="damaged"):
        Reader(copy).load()
    graph.unlink()
    with pytest.raises(ReaderError, match=r"the reader model is missing \(.*reader.onnx\)"):
        Reader(copy).load()
    Reader(copy, runtime="numpy").load()  # the reference needs only the weights
    Reader(copy, runtime="onnx-int8").load()  # and the int8 file is a file of its own
    (copy / ONNX_INT8_FILE).write_bytes(b"not a graph")
    with pytest.raises(ReaderError, match=r'damaged.*answer\.reader = "onnx"'):
        Reader(copy, runtime="onnx-int8").load()


def test_passages_are_read_in_groups_of_similar_length() -> None:
    assert _length_groups([150, 40, 152, 45, 200]) == [[1, 3], [0, 2], [4]]
    assert _length_groups([]) == []
    assert sorted(i for g in _length_groups([5] * 7) for i in g) == list(range(7))


def test_reads_from_several_threads_are_gathered_into_one_pass() -> None:
    """Questions asked at once are read together, and each gets what it would get alone."""
    from concurrent.futures import ThreadPoolExecutor

    questions = ["who was fired?", "how many days did the fighting last?", "who signed a letter?"] * 3
    alone = Reader().load()
    expected = [alone.read(q, PASSAGES) for q in questions]
    together = Reader().load()
    together.gather(0.2, lambda: len(questions))
    try:
        with ThreadPoolExecutor(len(questions)) as pool:
            got = list(pool.map(lambda q: together.read(q, PASSAGES), questions))
        gatherer = together._gatherer
        assert gatherer.requests == len(questions) and gatherer.passes < len(questions)
    finally:
        together.close()
    for mine, theirs in zip(got, expected, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert a.span == b.span and a.logit == pytest.approx(b.logit, abs=1e-4)
    assert together.read(QUESTION, PASSAGES)[0].span == expected[0][0].span  # closed: read directly


def test_a_read_that_fails_fails_only_its_own_question() -> None:
    """Gathered with a read that raises, the others still get their scores (a fake forward pass:
    the real one has no input that fails)."""
    import threading

    from bot.read_batch import Gatherer

    def forward(encodings):  # type: ignore[no-untyped-def]
        if any(e == "bad" for e in encodings):
            raise ValueError("bad input")
        return [f"read {e}" for e in encodings]

    gatherer = Gatherer(forward, 0.5, lambda: 3)
    results: dict[str, object] = {}

    def ask(name: str) -> None:
        try:
            results[name] = gatherer.scores([name])  # type: ignore[list-item]
        except ValueError as error:
            results[name] = error

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("a", "bad", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gatherer.close()
    assert results["a"] == ["read a"] and results["b"] == ["read b"]
    assert isinstance(results["bad"], ValueError)
    assert gatherer.scores(["c"]) == ["read c"]  # type: ignore[list-item]  # closed: read directly


def test_the_cascade_stops_after_the_best_passage_when_the_reader_is_sure(
    engine: AnswerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    scores = engine.reader.scores

    def counting(encodings):  # type: ignore[no-untyped-def]
        read.append(len(encodings))
        return scores(encodings)

    monkeypatch.setattr(engine.reader, "scores", counting)
    monkeypatch.setattr("bot.answer.CASCADE_STOP", 0.5)
    sure = engine.ask("who was fired?")
    assert read == [1] and sure.answered and sure.sentence is not None
    assert "Onik Gasparian" in sure.sentence.text
    read.clear()
    unsure = engine.ask("What is the capital of France?")
    assert read == [1, 4] and not unsure.answered
    monkeypatch.setattr("bot.answer.CASCADE_STOP", 1.1)  # never sure enough: all five read
    read.clear()
    same = sure.sentence.text, sure.sentence.short  # its score depends on the passages read beside it
    again = engine.ask("who was fired?").sentence
    assert again is not None and (again.text, again.short) == same and read == [1, 4]
    monkeypatch.setattr("bot.answer.CASCADE_STOP", None)  # off: the five read at once
    read.clear()
    again = engine.ask("who was fired?").sentence
    assert again is not None and (again.text, again.short) == same and read == [5]


def test_made_up_unanswerable_questions_ask_what_their_passage_does_not_say() -> None:
    """The training script's "not here" questions: each changes the question so that its own
    passage no longer answers it, and leaves it alone when it cannot."""
    import random

    training = load_script("train_reader")
    rng = random.Random(0)
    article = (BUNDLED_ARTICLES / "armenia-2021-03-01.txt").read_text(encoding="utf-8")
    passage = next(p for p in article.split("\n\n") if "fired" in p and "chief" in p)
    question = "Who fired the chief of the General Staff?"
    swapped = training._swap_word(question, article, passage, rng)
    assert swapped is not None and swapped != question
    (new_word,) = set(swapped.rstrip("?").split()) - set(question.rstrip("?").split())
    assert new_word in article.split() and new_word not in passage.lower().split()
    assert training._negate("What did Pashinian call the move?", article, "He called it a coup.", rng) == (
        "What didn't Pashinian call the move?"
    )
    assert training._negate("What did Pashinian call the move?", article, "He did not.", rng) is None
    assert training._oppose("Who was the first ruler?", article, "The last ruler was Ashot.", rng) is None
    assert training._oppose("Who was the first ruler?", article, "Ashot was ruler.", rng) == (
        "Who was the last ruler?"
    )


def test_grouped_training_reads_a_question_beside_the_passages_ranked_next_to_its_answer() -> None:
    """--group-size: a question's passages train side by side, those holding its answer marked, and
    the ranking loss is lowest when the passage that answers scores highest."""
    import itertools
    import random

    import torch

    from index.articles import Article
    from index.split import split_article

    training = load_script("train_reader")
    text = (BUNDLED_ARTICLES / "armenia-2021-03-01.txt").read_text(encoding="utf-8")
    article = Article(id="a", path="", title="Armenia", text=text)
    _, passages = split_article(article)
    start = text.index("Onik Gasparian")
    question = {"question": "Who did Pashinian fire?", "start": start, "end": start + len("Onik Gasparian")}
    kinds = set()
    for seed, share in itertools.product(range(4), (0.0, 1.0)):
        group = training.build_groups([(article, passages, [question])], 10, 4, random.Random(seed), share)
        if not group:
            continue  # an altered question that its passage could not be made to miss
        answered = any(e.answer for e in group)
        assert len(group) == (4 if answered else 1) and len({e.group for e in group}) == 1
        assert len({e.question for e in group}) == 1
        for e in group:
            if e.answer is not None:
                assert e.passage[e.answer[0] : e.answer[1]] == "Onik Gasparian"
            elif e.kind == "hard":
                assert "Onik Gasparian" not in e.passage
        assert answered == (share == 0.0)
        kinds.add("answer" if answered else "altered")
    assert kinds == {"answer", "altered"}

    encoded = [([0] * length, None, group) for length, group in [(9, 0), (3, -1), (9, 0), (5, 1), (5, 1)]]
    plan = training.batches(encoded, 4, random.Random(0))
    assert sorted(i for batch in plan for i in batch) == list(range(5))
    assert all(len(batch) <= 4 for batch in plan)
    assert any({0, 2} <= set(batch) for batch in plan) and any({3, 4} <= set(batch) for batch in plan)

    labels, groups = torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([0, 0, 0, 1])
    right = training.group_loss(torch.tensor([3.0, 0.0, 0.0, 9.0]), labels, groups)
    wrong = training.group_loss(torch.tensor([0.0, 3.0, 0.0, -9.0]), labels, groups)
    assert 0 < right < wrong  # group 1 holds no answer and adds nothing

    # Shared normalisation: the gold start and end (row 0, tokens 2 and 3) against every passage
    # token of the group; a strong score in the other passage of the group costs, outside it not.
    passage = torch.tensor([[False, True, True, True]] * 3)
    spans = torch.tensor([2, 0, 0]), torch.tensor([3, 0, 0])
    labels, groups = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0, 0, -1])
    gold = torch.zeros(3, 4)
    gold[0, 2] = gold[0, 3] = 5.0

    def shared(start: torch.Tensor, end: torch.Tensor) -> float:
        return float(training.shared_span_loss(start, end, passage, *spans, labels, groups))

    rival = gold.clone()
    rival[1, 2] = 5.0  # the other passage of the group scores as high
    stranger = gold.clone()
    stranger[2, 2] = 5.0  # a passage of no group
    assert shared(gold, gold) < shared(rival, gold) and shared(gold, gold) == shared(stranger, gold)
    assert float(training.shared_span_loss(gold, gold, passage, *spans, labels * 0, groups)) == 0.0


def test_the_reader_finds_the_short_answer_and_prefers_the_passage_that_holds_it(reader: Reader) -> None:
    readings = reader.read(QUESTION, PASSAGES)
    assert len(readings) == len(PASSAGES)
    start, end = readings[0].span
    assert "Onik Gasparian" in PASSAGES[0][start:end]
    assert end - start < len(PASSAGES[0]) // 2  # a short answer, not the whole sentence
    assert readings[0].probability > max(r.probability for r in readings[1:])


@pytest.mark.parametrize(
    ("question", "short"),
    [
        ("who was fired?", "Onik Gasparian"),
        ("who was dismissed last week?", "Tiran Khachatrian"),
        ("how many days did the fighting last?", "44"),
        ("who is the chief of the general staff", "Onik Gasparian"),
        ("What did Pashinian call the officers' move?", "an attempted military coup"),
    ],
)
def test_answers_carry_the_short_answer_inside_the_sentence(
    engine: AnswerEngine, question: str, short: str
) -> None:
    answer = engine.ask(question)
    assert answer.answered and answer.sentence is not None
    found = answer.sentence.short
    assert found is not None and short in found.text
    article = engine.index.articles[answer.sentence.sentence.article_id]
    assert article.text[found.start : found.end] == found.text
    sentence = answer.sentence.sentence
    assert sentence.start <= found.start < found.end <= sentence.end
    # The quoted passage marks the same short answer inside its highlighted sentence.
    quoted = answer.passages[0]
    assert quoted.short is not None and quoted.highlight is not None
    assert quoted.text[quoted.short[0] : quoted.short[1]] == found.text
    assert quoted.highlight[0] <= quoted.short[0] and quoted.short[1] <= quoted.highlight[1]


def _garbled(question: str) -> list[str]:
    """What people type: no capitals or question mark, doubled punctuation, one letter lost."""
    words = question.rstrip("?").split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    typo = [*words[:longest], word[:2] + word[3:], *words[longest + 1 :]]
    return [question.lower().rstrip("?"), question.rstrip("?") + "??", " ".join(typo) + "?"]


GARBLED = [
    ("wh0 was fird??", "immediately fired Onik Gasparian"),
    *[
        (variant, phrase)
        for question, phrase in [
            ("who was fired?", "immediately fired Onik Gasparian"),
            ("who was dismissed last week?", "dismissed Tiran Khachatrian"),
            ("who refused to sign the order?", "has refused to sign the order"),
            ("how many days did the fighting last?", "44 days of fierce fighting"),
            ("what did the officers sign?", "signed a letter accusing"),
            ("which districts did Armenia cede?", "all seven surrounding districts"),
        ]
        for variant in _garbled(question)
    ],
]


@pytest.mark.parametrize(("question", "phrase"), GARBLED)
def test_a_garbled_clear_question_is_still_answered(engine: AnswerEngine, question: str, phrase: str) -> None:
    answer = engine.ask(question)
    assert answer.answered, f"abstained (confidence {answer.confidence:.2f})"
    assert answer.sentence is not None and phrase in answer.sentence.text


def test_missing_weights_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match=r"the reader model is missing \(.*config.json\)"):
        Reader(tmp_path).load()


def test_damaged_weights_are_refused_before_use(tmp_path: Path) -> None:
    copy = tmp_path / "reader"
    shutil.copytree(READER_DIR, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    # The numpy reference reads these weights; the ONNX file has its own checksum (below).
    with pytest.raises(ReaderError, match="damaged"):
        Reader(copy, runtime="numpy").load()
    weights.write_bytes(b"")
    with pytest.raises(ReaderError, match="damaged"):
        Reader(copy, runtime="numpy").load()


def test_a_missing_reader_is_one_line_from_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through `main`, as a user meets it: one line naming the fix, no traceback."""
    from bot.cli import main

    monkeypatch.setattr("bot.engine.Reader", lambda runtime: Reader(tmp_path / "gone", runtime=runtime))
    code = main(["ask", "who was fired?", "--index-dir", str(tmp_path / "index")])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("articlebot: error:")]
    assert len(lines) == 1 and "reader model is missing" in lines[0], err
    assert "Traceback" not in err


def test_answers_never_depend_on_reading_order(reader: Reader) -> None:
    """Batching pads shorter passages; a passage read alone scores the same."""
    together = reader.read(QUESTION, PASSAGES)
    alone = [reader.read(QUESTION, [p])[0] for p in PASSAGES]
    for a, b in zip(together, alone, strict=True):
        assert a.span == b.span
        assert a.probability == pytest.approx(b.probability, abs=1e-4)
        assert a.span_score == pytest.approx(b.span_score, abs=1e-3)


@pytest.mark.parametrize("question", LONG_QUESTIONS, ids=["cjk", "cyrillic", "made-up-words", "hangul"])
def test_a_long_question_is_cut_and_the_passage_keeps_its_room(reader: Reader, question: str) -> None:
    """A question of hundreds of wordpieces is read by its first MAX_QUESTION_TOKENS; the passage is
    read whole, exactly as beside a short question."""
    passage = PASSAGES[0]
    [long] = encode_pairs(reader._tokenizer, question, [passage])
    [short] = encode_pairs(reader._tokenizer, QUESTION, [passage])
    assert len(long) <= MAX_LENGTH
    assert 0 < long.type_ids.count(0) - 2 <= MAX_QUESTION_TOKENS  # [CLS] and [SEP] aside
    assert [o for o in long.offsets if o] == [o for o in short.offsets if o]
    [reading] = reader.read(question, [passage])
    assert 0 <= reading.span[0] < reading.span[1] <= len(passage)
