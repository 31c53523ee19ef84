"""scripts/fit_choice.py: the grid's accuracy follows the weights, and the dev sets are refused."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from project_scripts import load_script

from bot.reader import Reading
from index.split import Passage
from index.store import Hit


def test_accuracy_counts_the_questions_whose_chosen_passage_is_right() -> None:
    fit = load_script("fit_choice")
    passage = Passage("p", "a", 0, 0, 0, 0, 1, "x")
    # The likelier passage holds a weak short answer and is wrong; the other is right.
    readings = [Reading(2.0, (0, 1), 0.0), Reading(1.0, (0, 1), 8.0)]
    hits = [Hit(passage, 0.0, 0.0, 0.0), Hit(passage, 0.0, 0.0, 0.0)]
    reads = [fit.Read(readings, hits, np.array([False, True]))] * 3
    assert fit.accuracy(reads, 0.0, 0.0) == 0.0
    assert fit.accuracy(reads, 0.3, 0.0) == 1.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["../shared/data/squad/dev-v1.1.json"], "the dev sets only measure"),
        (["train.json", "--articles", "ten"], "give start:stop"),
        (["no-such-train.json"], "no-such-train.json does not exist"),
    ],
)
def test_bad_input_is_one_line(monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str) -> None:
    fit = load_script("fit_choice")
    monkeypatch.setattr(sys, "argv", ["fit_choice.py", *arguments])
    with pytest.raises(SystemExit, match=message):
        fit.main()
