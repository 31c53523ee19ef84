"""Pictures of `articlebot eval`'s figures: the abstention curve, and hit@k and answer sentence by mode.

matplotlib is an optional extra (`articlebot[plots]`): it is imported only when a picture is drawn,
and a missing one is a one-line error that says how to install it. Figures are drawn through
matplotlib's object API (no pyplot, no global state, no display needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.errors import ArticlebotError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bot.evaluation.harness import Result

INSTALL = "pip install 'articlebot[plots]' (in a checkout: .venv/bin/pip install -e '.[plots]')"
# Small files for the docs: a few tens of kilobytes each.
DPI = 100
MODE_ORDER = ("hybrid", "dense", "lexical")


class PlotsUnavailable(ArticlebotError):
    """matplotlib is not installed."""


def require_matplotlib() -> None:
    """Raise the one-line error now, before a long run whose pictures could not be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotsUnavailable(f"--plot needs matplotlib, which is not installed: {INSTALL}") from None


def plot_folder(path: str | Path) -> Path:
    """The folder pictures go to, made when missing; a path that cannot be one is a one-line error."""
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ArticlebotError(f"--plot {folder}: a file is in the way of that folder") from None
    except OSError as error:
        raise ArticlebotError(f"--plot {folder}: cannot make that folder: {error.strerror}") from None
    return folder


def new_figure(width: float = 7.0, height: float = 4.4) -> Figure:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(figure: Figure, path: Path) -> Path:
    # No creation date or software version in the file: the same figures give the same bytes.
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def abstention_curve(confidences: Sequence[float], answerable: Sequence[bool]) -> tuple[np.ndarray, ...]:
    """For every threshold a question's confidence could be held to: the share of unanswerable
    questions refused (confidence below it) and of answerable ones answered (at or above it).

    Returns (thresholds, refused, answered), thresholds rising; the first answers everything.
    """
    scores = np.asarray(confidences, dtype=np.float64)
    positive = np.asarray(answerable, dtype=bool)
    thresholds = np.unique(scores)
    if not positive.any() or positive.all():
        raise ValueError("an abstention curve needs answerable and unanswerable questions")
    # searchsorted on the sorted scores of each kind: how many fall below each threshold.
    below_pos = np.searchsorted(np.sort(scores[positive]), thresholds, side="left")
    below_neg = np.searchsorted(np.sort(scores[~positive]), thresholds, side="left")
    answered = 1.0 - below_pos / positive.sum()
    refused = below_neg / (~positive).sum()
    # Past the highest score nothing is answered: the curve ends at (1, 0).
    return (
        np.append(thresholds, np.inf),
        np.append(refused, 1.0),
        np.append(answered, 0.0),
    )


def at_threshold(
    confidences: Sequence[float], answerable: Sequence[bool], threshold: float
) -> tuple[float, float]:
    """(refused share of unanswerable, answered share of answerable) at one threshold."""
    scores = np.asarray(confidences, dtype=np.float64)
    positive = np.asarray(answerable, dtype=bool)
    return float(np.mean(scores[~positive] < threshold)), float(np.mean(scores[positive] >= threshold))


def curve_groups(
    outcomes: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str, bool], list[Mapping[str, Any]]]:
    """The outcomes an abstention curve is drawn for, by (setting, mode, reader): those of one
    retrieval mode (hybrid, the default, when it was measured), and only groups holding both
    answerable and unanswerable questions. Every mode's curves at once are a tangle of a dozen
    lines; how the modes compare is the by-mode picture's."""
    groups: dict[tuple[str, str, bool], list[Mapping[str, Any]]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome["setting"], outcome["mode"], outcome["reader"]), []).append(outcome)
    groups = {k: g for k, g in groups.items() if len({bool(o["answerable"]) for o in g}) == 2}
    modes = sorted(
        {mode for _, mode, _ in groups}, key=lambda m: MODE_ORDER.index(m) if m in MODE_ORDER else 9
    )
    return {k: g for k, g in groups.items() if k[1] == modes[0]} if modes else {}


def plot_abstention(
    outcomes: Iterable[Mapping[str, Any]], thresholds: Callable[[bool], float], title: str, path: Path
) -> Path | None:
    """The abstention curve of every setting and reader of one mode (`curve_groups`), each with its
    shipped threshold marked; None when no group holds unanswerable questions."""
    groups = curve_groups(outcomes)
    if not groups:
        return None
    figure = new_figure(6.4, 5.0)
    axes = figure.add_subplot()
    axes.plot([0, 1], [1, 0], color="0.8", linewidth=1, linestyle=":", label="chance")
    ordered = sorted(groups.items(), key=lambda item: (not item[0][2], item[0]))
    for n, ((setting, mode, reader), group) in enumerate(ordered):
        scores = [float(o["confidence"]) for o in group]
        labels = [bool(o["answerable"]) for o in group]
        _, refused, answered = abstention_curve(scores, labels)
        name = f"{'reader' if reader else 'without the reader'}, {mode}, {setting}"
        (line,) = axes.plot(refused, answered, linewidth=1.8 if reader else 1.2, label=name)
        threshold = thresholds(reader)
        x, y = at_threshold(scores, labels, threshold)
        axes.plot([x], [y], marker="o", color=line.get_color(), markersize=7)
        axes.annotate(  # stacked one under another: two settings' points often all but coincide
            f"threshold {threshold:.3g}: {y:.0%} answered, {x:.0%} refused",
            (x, y),
            xytext=(-150, -16 * (n + 1)),
            textcoords="offset points",
            fontsize=7,
            color=line.get_color(),
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("unanswerable questions refused (share)")
    axes.set_ylabel("answerable questions answered (share)")
    axes.set_title(title, fontsize=10)
    axes.grid(color="0.92")
    axes.legend(fontsize=8, loc="lower left")
    return save(figure, path)


def plot_by_mode(results: Sequence[Result], title: str, path: Path) -> Path:
    """hit@1, hit@3, hit@5 and the answer sentence (with the reader and without) for each retrieval
    mode, one panel per setting."""
    settings = list(dict.fromkeys(r.setting for r in results))
    figure = new_figure(3.6 * len(settings) + 1.4, 4.2)
    panels = figure.subplots(1, len(settings), sharey=True, squeeze=False)[0]
    for axes, setting in zip(panels, settings, strict=True):
        mine = [r for r in results if r.setting == setting]
        modes = sorted({r.mode for r in mine}, key=lambda m: MODE_ORDER.index(m) if m in MODE_ORDER else 9)
        bars: list[tuple[str, list[float]]] = []
        first = {m: next(r for r in mine if r.mode == m) for m in modes}  # hits do not depend on the reader
        for name, attribute in (("hit@1", "hit1"), ("hit@3", "hit3"), ("hit@5", "hit5")):
            bars.append((name, [getattr(first[m], attribute) for m in modes]))
        for reader, name in ((True, "answer sentence, reader"), (False, "answer sentence, without")):
            values = [
                next((r.sentence_accuracy for r in mine if r.mode == m and r.reader is reader), np.nan)
                for m in modes
            ]
            if not np.all(np.isnan(values)):
                bars.append((name, values))
        width = 0.8 / len(bars)
        positions = np.arange(len(modes))
        for n, (name, values) in enumerate(bars):
            drawn = axes.bar(positions + (n - (len(bars) - 1) / 2) * width, values, width, label=name)
            axes.bar_label(drawn, labels=[_share(v) for v in values], fontsize=6, padding=1)
        axes.set_xticks(positions, modes)
        axes.set_ylim(0, 1.05)
        axes.set_title(setting, fontsize=10)
        axes.grid(axis="y", color="0.92")
        axes.set_axisbelow(True)
    panels[0].set_ylabel("share of answerable questions")
    panels[-1].legend(fontsize=7, loc="lower right")
    figure.suptitle(title, fontsize=10)
    return save(figure, path)


def _share(value: float) -> str:
    """.85 as the tables write it; nothing for a figure not measured."""
    if np.isnan(value):
        return ""
    return "1" if value >= 1 else f"{value:.2f}".removeprefix("0")


def write_eval_plots(
    folder: Path,
    file: Path,
    results: Sequence[Result],
    outcomes: Sequence[Mapping[str, Any]],
    thresholds: Callable[[bool], float],
    questions: int,
) -> list[Path]:
    """Every picture `eval --plot` draws, named after the file measured."""
    title = f"{file.name}: {questions:,} questions"
    written = [plot_by_mode(results, title, folder / f"{file.stem}-by-mode.png")]
    curve = plot_abstention(outcomes, thresholds, title, folder / f"{file.stem}-abstention.png")
    return written + ([curve] if curve is not None else [])
