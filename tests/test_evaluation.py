"""The evaluation's arithmetic on hand-made cases, and a small real run of the harness."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bot.answer import AnswerSettings
from bot.cli import main
from bot.evaluation import harness
from bot.evaluation.metrics import (
    answered_rates,
    auroc,
    contains_answer,
    exact_match,
    first_hit_rank,
    hit_at,
    mrr_at,
    normalize_answer,
    token_f1,
)
from bot.evaluation.squad import SquadFormatError, load_squad
from bot.reader import Reader
from index.embed import SentenceTransformerEmbedder
from index.split import SplitSettings
from index.store import SearchSettings


def test_normalisation_is_the_official_squads() -> None:
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("Theory of the 'Anthem'") == "theory of anthem"
    assert normalize_answer("1,000") == "1000"


def test_an_answer_is_found_as_whole_words_only() -> None:
    assert contains_answer("It was built in 1990, by the Romans.", ["1990"])
    assert contains_answer("Won by the Denver Broncos.", ["denver broncos", "Carolina"])
    assert not contains_answer("It was built in the 1990s.", ["1990"])
    assert not contains_answer("Nothing here.", ["Paris", ""])
    # Typographic quotes and dashes are punctuation too, as ASCII's are.
    quoted = "He called it “an attempted military coup” on Monday."
    assert contains_answer(quoted, ["an attempted military coup"])
    assert contains_answer("It ended 24–10.", ["24–10"])
    assert not contains_answer("He called it “an attempted coup”.", ["military coup"])


def test_exact_match_and_f1_are_the_official_scripts() -> None:
    assert exact_match("the Denver Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0
    # Precision 1/1, recall 1/2: F1 2/3; the best gold answer counts.
    assert token_f1("Denver", ["Denver Broncos", "Carolina"]) == pytest.approx(2 / 3)
    assert token_f1("Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert token_f1("Carolina Panthers", ["Denver Broncos"]) == 0.0
    assert token_f1("", ["Denver"]) == 0.0
    # Repeated words count as often as both sides hold them.
    assert token_f1("the the cat cat", ["cat"]) == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_a_sample_spreads_over_every_article() -> None:
    from bot.evaluation.squad import SquadArticle, SquadQuestion

    squad = [
        SquadArticle(f"a{a}", ("p",), tuple(SquadQuestion(f"{a}-{q}", "q?", ("x",), 0) for q in range(10)))
        for a in range(4)
    ]
    chosen = harness.select_questions(squad, None, sample=8)
    assert [len(group) for group in chosen] == [2, 2, 2, 2]
    assert [len(group) for group in harness.select_questions(squad, 3)] == [3, 0, 0, 0]
    assert sum(len(g) for g in harness.select_questions(squad, None, sample=100)) == 40


def test_hit_at_k_and_mrr_count_the_first_hit() -> None:
    ranks = [
        first_hit_rank(h) for h in ([True, False], [False, False, True], [False] * 4, [False, True, True])
    ]
    assert ranks == [1, 3, None, 2]
    assert hit_at(ranks, 1) == pytest.approx(1 / 4)
    assert hit_at(ranks, 3) == pytest.approx(3 / 4)
    assert mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    # A first hit beyond the cut-off earns nothing.
    assert mrr_at([2, 11], 10) == pytest.approx(0.25)
    assert math.isnan(hit_at([], 1))


def test_auroc_is_the_chance_a_positive_outscores_a_negative() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    # One of the four positive-negative pairs is misordered: 3/4.
    assert auroc([0.9, 0.3, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.75)
    # A tie counts half.
    assert auroc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert math.isnan(auroc([0.1, 0.2], [True, True]))


def test_answered_rates_treat_an_answerable_question_as_positive() -> None:
    rates = answered_rates([True, True, False, False, True], [True, False, False, True, True])
    assert rates["accuracy"] == pytest.approx(3 / 5)
    assert rates["precision"] == pytest.approx(2 / 3)
    assert rates["recall"] == pytest.approx(2 / 3)


def test_a_file_that_is_not_squad_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"articles": []}), encoding="utf-8")
    with pytest.raises(SquadFormatError, match="not SQuAD-format"):
        load_squad(path)
    with pytest.raises(SquadFormatError, match="does not exist"):
        load_squad(tmp_path / "missing.json")


def _squad_file(tmp_path: Path) -> Path:
    """Two small articles in SQuAD v2.0 layout, one question unanswerable."""
    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "Bridges",
                "paragraphs": [
                    {
                        "context": "The Golden Gate Bridge opened in 1937. "
                        "It spans the strait at San Francisco. Its towers are 227 meters tall.",
                        "qas": [
                            {
                                "id": "b1",
                                "question": "When did the Golden Gate Bridge open?",
                                "answers": [{"text": "1937"}],
                                "is_impossible": False,
                            },
                            {
                                "id": "b2",
                                "question": "How tall are the towers of the bridge?",
                                "answers": [{"text": "227 meters"}],
                                "is_impossible": False,
                            },
                        ],
                    },
                    {
                        "context": "The Brooklyn Bridge crosses the East River. John Roebling designed it.",
                        "qas": [
                            {
                                "id": "b3",
                                "question": "Who designed the Brooklyn Bridge?",
                                "answers": [{"text": "John Roebling"}],
                                "is_impossible": False,
                            },
                            {
                                "id": "b4",
                                "question": "Who painted the Brooklyn Bridge red in 1990?",
                                "answers": [],
                                "is_impossible": True,
                            },
                        ],
                    },
                ],
            },
            {
                "title": "Rivers",
                "paragraphs": [
                    {
                        "context": "The Nile flows north through Egypt into the Mediterranean Sea.",
                        "qas": [
                            {
                                "id": "r1",
                                "question": "Into which sea does the Nile flow?",
                                "answers": [{"text": "Mediterranean Sea"}],
                                "is_impossible": False,
                            },
                        ],
                    }
                ],
            },
        ],
    }
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.slow
def test_the_harness_answers_a_small_squad_file_with_the_real_model(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    squad = load_squad(_squad_file(tmp_path))
    corpus = harness.prepare(squad, embedder, SplitSettings())
    questions = harness.select_questions(squad, None)
    asked = [q for group in questions for q in group]
    vectors = dict(zip([q.id for q in asked], embedder.encode([q.text for q in asked]), strict=True))
    outcomes: list[dict[str, object]] = []
    results = harness.evaluate(
        corpus,
        questions,
        vectors,
        SearchSettings(),
        AnswerSettings(),
        ["per-article", "pooled"],
        ["hybrid", "lexical"],
        [Reader().load(), None],
        outcomes_out=outcomes,
    )
    assert [(r.setting, r.mode, r.reader) for r in results] == [
        (setting, mode, reader)
        for setting in ("per-article", "pooled")
        for mode in ("hybrid", "lexical")
        for reader in (True, False)
    ]
    for result in results:
        assert (result.questions, result.answerable) == (5, 4)
        assert result.hit5 == 1.0  # every answer is within a tiny index's five passages
        assert result.hit1 >= 0.75
        assert result.auroc is not None
    read, baseline = results[0], results[1]
    assert read.sentence_accuracy >= 0.75 and baseline.sentence_accuracy >= 0.75
    # The reader's short answers match the gold ones far better than whole sentences do.
    assert read.f1 >= 0.75 and read.f1 > baseline.f1 and baseline.exact == 0.0
    assert len(outcomes) == 5 * len(results)
    assert {o["answerable"] for o in outcomes} == {True, False}


@pytest.mark.slow
def test_the_eval_command_prints_a_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _squad_file(tmp_path)
    cache = tmp_path / "embeddings"
    pictures = tmp_path / "pictures"
    options = ["--setting", "per-article", "--mode", "hybrid", "--cache-dir", str(cache)]
    status = main(["eval", str(path), *options, "--plot", str(pictures)])
    table = capsys.readouterr().out
    assert status == 0
    assert "per-article" in table and "hit@1" in table and "AUROC" in table and "F1" in table
    assert list(cache.glob("*.npy")), "the embedding cache was not written"
    # The file holds an unanswerable question, so the abstention curve is drawn beside the modes.
    drawn = sorted(pictures.iterdir())
    assert [p.name for p in drawn] == ["tiny-squad-abstention.png", "tiny-squad-by-mode.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n") and p.stat().st_size < 200_000 for p in drawn)
    status = main(
        ["eval", str(path), "--limit", "3", "--mode", "lexical", "--json", "--cache-dir", str(cache)]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["questions"] == 3
    assert {(r["setting"], r["mode"], r["reader"]) for r in report["results"]} == {
        ("per-article", "lexical", True),
        ("per-article", "lexical", False),
        ("pooled", "lexical", True),
        ("pooled", "lexical", False),
    }


def test_the_eval_command_refuses_a_missing_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["eval", str(tmp_path / "nope.json")])
    assert status == 1
    assert capsys.readouterr().err.strip().startswith("articlebot: error:")
