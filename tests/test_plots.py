"""Pictures of the figures (`eval --plot`, `bench.py --plot`): the curves are right, the files are
PNGs, and without matplotlib `--plot` is one line saying how to install it, before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from project_scripts import load_script

from bot.cli import main
from bot.evaluation.plots import abstention_curve, at_threshold, curve_groups, plot_abstention

INSTALL_HINT = "pip install 'articlebot[plots]'"


def test_the_abstention_curve_runs_from_answering_everything_to_nothing() -> None:
    confidences = [0.9, 0.8, 0.6, 0.3, 0.2, 0.1]
    answerable = [True, False, True, True, False, False]
    thresholds, refused, answered = abstention_curve(confidences, answerable)
    assert (refused[0], answered[0]) == (0.0, 1.0)  # the lowest threshold answers everything
    assert (refused[-1], answered[-1]) == (1.0, 0.0)
    assert np.all(np.diff(refused) >= 0) and np.all(np.diff(answered) <= 0)
    # Held at 0.5: two of three answerable answered (0.9, 0.6), two of three unanswerable refused.
    assert at_threshold(confidences, answerable, 0.5) == pytest.approx((2 / 3, 2 / 3))
    at = list(thresholds).index(0.6)
    assert (refused[at], answered[at]) == pytest.approx((2 / 3, 2 / 3))


def test_the_abstention_picture_draws_one_mode_hybrid_first() -> None:
    """Twelve curves (3 modes, 2 settings, reader on and off) are a tangle: one mode is drawn."""
    outcomes = [
        {"setting": setting, "mode": mode, "reader": reader, "answerable": answerable, "confidence": 0.5}
        for setting in ("per-article", "pooled")
        for mode in ("lexical", "dense", "hybrid")
        for reader in (True, False)
        for answerable in (True, False)
    ]
    assert {(s, m, r) for s, m, r in curve_groups(outcomes)} == {
        (s, "hybrid", r) for s in ("per-article", "pooled") for r in (True, False)
    }
    without_hybrid = [o for o in outcomes if o["mode"] != "hybrid"]
    assert {m for _, m, _ in curve_groups(without_hybrid)} == {"dense"}
    # A group with answerable questions only has no curve.
    assert curve_groups([o for o in outcomes if o["answerable"]]) == {}


def test_no_abstention_curve_without_unanswerable_questions(tmp_path: Path) -> None:
    outcomes = [
        {"setting": "pooled", "mode": "hybrid", "reader": True, "answerable": True, "confidence": c}
        for c in (0.2, 0.9)
    ]
    assert plot_abstention(outcomes, lambda reader: 0.3, "t", tmp_path / "a.png") is None
    assert not (tmp_path / "a.png").exists()


def test_the_bench_draws_answer_times_and_scale(tmp_path: Path) -> None:
    plots = load_script("bench_plots")
    rng = np.random.default_rng(0)
    samples = {
        "fast encoder, end to end": list(rng.lognormal(-1.6, 0.2, 170)),
        "one answer, 1 thread": [0.3] * 51,
    }
    scale = [
        {"passages": n, "dense_mb": n / 2500, "rss_mb": 300 + n / 1000}
        | {f"{mode}_p{q}_ms": n / 1e5 * q / 10 for mode in ("hybrid", "dense", "lexical") for q in (50, 95)}
        for n in (1_000_000, 100_000)
    ]
    written = plots.write_bench_plots(tmp_path, samples, scale, "scripts/bench.py --plot docs")
    assert [p.name for p in written] == ["answer-times.png", "scale.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n") and p.stat().st_size < 200_000 for p in written)
    assert plots.write_bench_plots(tmp_path / "none", {}, [], "c") == []


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if matplotlib were not installed: importing it fails."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_eval_plot_without_matplotlib_is_one_line_before_any_work(
    no_matplotlib: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The file does not even exist: the missing extra is said first, not after an hour of questions.
    status = main(["eval", str(tmp_path / "squad.json"), "--plot", str(tmp_path / "pictures")])
    err = capsys.readouterr().err.strip()
    assert status == 1
    assert err.startswith("articlebot: error: --plot needs matplotlib") and INSTALL_HINT in err
    assert "\n" not in err and not (tmp_path / "pictures").exists()


def test_bench_plot_without_matplotlib_is_one_line_before_any_work(
    no_matplotlib: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_script("bench")
    skip_all = ["--skip", *bench.SECTIONS]
    assert bench.main([*skip_all, "--plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench.py: --plot needs matplotlib") and INSTALL_HINT in err and "\n" not in err


def test_a_plot_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("a file")
    status = main(["eval", str(tmp_path / "squad.json"), "--plot", str(tmp_path / "taken")])
    assert status == 1
    assert (
        capsys.readouterr().err.strip()
        == f"articlebot: error: --plot {tmp_path / 'taken'}: a file is in the way of that folder"
    )


def test_plot_is_for_squad_files_not_chain_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chains = Path(__file__).parent / "data" / "conversations.jsonl"
    status = main(["eval", str(chains), "--plot", str(tmp_path)])
    assert status == 2
    assert "--plot applies to SQuAD files" in capsys.readouterr().err
