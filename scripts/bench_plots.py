"""Pictures of scripts/bench.py's figures (`--plot DIR`): how long answers take, and search time and
memory against the number of passages.

bench.py hands over what it measured: `samples` maps a label to the seconds each answer took
(answer-times.png draws each as a distribution), and `scale` holds one point per collection size
of the scale section (scale.png). matplotlib comes from the optional extra `articlebot[plots]`;
bot/evaluation/plots.py draws `articlebot eval`'s pictures the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bot.evaluation.plots import new_figure, save


def plot_answer_times(samples: Mapping[str, Sequence[float]], title: str, path: Path) -> Path:
    """Each label's answer times as a histogram (milliseconds, a log axis), p50 and p95 marked."""
    figure = new_figure(7.0, 4.2)
    from matplotlib.ticker import FuncFormatter

    axes = figure.add_subplot()
    every = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples.values()]) * 1000
    low, high = max(every.min() * 0.8, 0.1), every.max() * 1.25
    bins = np.geomspace(low, high, 40)
    for label, seconds in samples.items():
        times = np.asarray(seconds, dtype=np.float64) * 1000
        _, _, patches = axes.hist(times, bins=bins, alpha=0.55, label=f"{label} ({len(times)} answers)")
        color = patches[0].get_facecolor()
        for q, style in ((50, "-"), (95, "--")):
            value = float(np.percentile(times, q))
            axes.axvline(value, color=color, linestyle=style, linewidth=1.2, alpha=1.0)
            axes.annotate(
                f"p{q} {value:.0f} ms",
                (value, 1),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12 if q == 50 else -24),
                textcoords="offset points",
                fontsize=7,
                color=color[:3],
            )
    axes.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.xaxis.set_major_formatter(plain)
    axes.xaxis.set_minor_formatter(plain)
    axes.tick_params(axis="x", which="minor", labelsize=7)
    axes.set_xlabel("time to answer (ms, log scale)")
    axes.set_ylabel("answers")
    axes.set_title(title, fontsize=9)
    axes.grid(color="0.92")
    axes.set_axisbelow(True)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, 0.88))
    return save(figure, path)


def plot_scale(points: Sequence[Mapping[str, float]], title: str, path: Path) -> Path:
    """Search time (p50 and p95 by mode) and memory (dense index, process RSS) against passages."""
    ordered = sorted(points, key=lambda point: point["passages"])
    passages = [point["passages"] for point in ordered]
    figure = new_figure(9.0, 3.8)
    from matplotlib.ticker import NullFormatter

    timing, memory = figure.subplots(1, 2)
    for mode, marker in (("hybrid", "o"), ("dense", "s"), ("lexical", "^")):
        if f"{mode}_p50_ms" not in ordered[0]:
            continue
        (line,) = timing.plot(
            passages, [p[f"{mode}_p50_ms"] for p in ordered], marker=marker, label=f"{mode} p50"
        )
        timing.plot(
            passages,
            [p[f"{mode}_p95_ms"] for p in ordered],
            marker=marker,
            linestyle="--",
            color=line.get_color(),
            alpha=0.6,
            label=f"{mode} p95",
        )
    timing.set_ylabel("search time beyond encoding (ms)")
    timing.set_title("search", fontsize=9)
    for key, label, marker in (
        ("rss_mb", "process RSS, index loaded", "o"),
        ("dense_mb", "dense index", "s"),
    ):
        memory.plot(passages, [p[key] for p in ordered], marker=marker, label=label)
    memory.set_ylabel("MB")
    memory.set_title("memory", fontsize=9)
    for axes in (timing, memory):
        axes.set_xscale("log")
        axes.set_xticks(passages, [_count(n) for n in passages])
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("passages (log scale)")
        axes.grid(color="0.92")
        axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    return save(figure, path)


def _count(number: float) -> str:
    """100000 as 100k, 1000000 as 1M."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if number >= size:
            return f"{number / size:g}{suffix}"
    return f"{number:g}"


def write_bench_plots(
    folder: Path,
    samples: Mapping[str, Sequence[float]],
    scale: Sequence[Mapping[str, float]],
    command: str,
) -> list[Path]:
    """The pictures of what this run measured: answer times when the warm rows ran, the scale
    picture when the scale section did."""
    written = []
    if samples:
        written.append(plot_answer_times(samples, command, folder / "answer-times.png"))
    if scale:
        written.append(plot_scale(scale, command, folder / "scale.png"))
    return written
